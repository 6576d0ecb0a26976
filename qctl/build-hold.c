/*
 * build-hold.c - a failed build kept for a while, and shells in it.
 *
 * When a step fails and the build was given a hold (build_opts.hold_ms),
 * or its last step passed and the hold is for any outcome (hold_always),
 * the VM stays up in PH_HOLD instead of going on to its artifacts: the
 * network stays closed (the step's window closed as it ended), the limits
 * keep counting (a limit, the wall time or a cancel ends the hold at
 * once), and the hold ends by itself when its time is up.  Meanwhile its
 * owner (qctl run --shell-on-failure, or serve's ssh sessions) opens
 * shells in /src with the failed step's environment through the agent's
 * PTY and stdin execution (agent protocol 2).  After the hold the build
 * collects its artifacts and ends as it would have: with the failed
 * step's result (or as passed).  The result's "hold" records the hold and each session.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "build-int.h"
#include "json-util.h"

/* A shell or command of a held build, from its EXEC to its EXIT. */
struct build_shell {
	struct build_shell *next;
	unsigned sid;
	bool started;
	/* NULL once its owner closed it or it was told it ended: its job
	 * may still send frames until its EXIT, which are dropped */
	const struct build_shell_ops *ops;
	void *opaque;
	bool pty;
	bool killed;	/* SIGKILL sent to its job */
	/* EXIT (or ERROR in place of STARTED) came: kept until the build
	 * ends, because a STDIN, WINSIZE or SIGNAL that crossed the end on
	 * the wire is answered with ERROR ESRCH after it */
	bool gone;
	int64_t t0;
	json_t *rec;	/* its entry in the result's hold.sessions */
};

#define SHELL_SCRIPT                                                     \
	"if command -v bash >/dev/null 2>&1; then exec bash -i; fi; "    \
	"exec sh -i"

static struct build_shell *
find_shell(struct build *b, unsigned sid)
{
	struct build_shell *s;

	for (s = b->shells; s; s = s->next)
		if (s->sid == sid)
			return s;
	return NULL;
}

static void
unlink_shell(struct build *b, struct build_shell *s)
{
	struct build_shell **pp;

	for (pp = &b->shells; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	json_decref(s->rec);
	free(s);
}

/* Tell the owner its session is over (once), recording how. */
static void
shell_ended(struct build *b, struct build_shell *s, int code, int sig,
	    const char *why)
{
	const struct build_shell_ops *ops = s->ops;

	if (s->rec) {
		json_object_set_new(s->rec, "duration_ms",
				    json_integer(now_ms() - s->t0));
		json_object_set_new(s->rec, "exit_code",
				    why || sig ? json_null()
					       : json_integer(code));
		json_object_set_new(s->rec, "signal",
				    sig ? json_integer(sig) : json_null());
		json_object_set_new(s->rec, "ended",
				    json_string_lossy(why ? why : "exited"));
	}
	s->ops = NULL;
	if (b->n_shells_live)
		b->n_shells_live--;
	if (ops && ops->ended)
		ops->ended(s->opaque, code, sig, why);
}

bool
build_held(const struct build *b)
{
	return b->phase == PH_HOLD;
}

int64_t
build_hold_left_ms(const struct build *b)
{
	int64_t left = b->hold_until - now_ms();

	return b->phase == PH_HOLD ? (left > 0 ? left : 0) : 0;
}

static void
on_hold_expired(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_hold = NULL;
	build_hold_end(b, "the hold expired");
}

void
build_hold_start(struct build *b)
{
	int64_t ms = b->opts.hold_ms;

	b->phase = PH_HOLD;
	b->hold_t0 = now_ms();
	b->hold_until = b->hold_t0 + ms;
	b->res.hold = json_pack("{s:I, s:I, s:n, s:n, s:[]}", "max_ms",
				(json_int_t)ms, "started_ms",
				(json_int_t)build_since_start(b),
				"duration_ms", "ended", "sessions");
	b->t_hold = loop_timer_at(b->loop, b->hold_until, on_hold_expired, b);
	build_say(b, 1, "holding the %s build's VM for %.0fs "
		  "(network closed, limits counting)",
		  b->res.status == BUILD_PASSED ? "passed" : "failed",
		  ms / 1000.0);
	build_emit(b, "BUILD_HELD",
		   json_pack("{s:s, s:I, s:b}", "step",
			     b->recipe->steps[b->step].name, "hold_ms",
			     (json_int_t)ms, "passed",
			     b->res.status == BUILD_PASSED));
}

/* Every session is told the hold is over; their jobs are killed. */
static void
end_sessions(struct build *b, const char *why)
{
	struct build_shell *s, *next;

	for (s = b->shells; s; s = next) {
		next = s->next;
		if (b->agent_up && !b->agent.dead && !s->killed && !s->gone)
			agent_send(&b->agent, AGENT_SIGNAL,
				   SHELL_ID_BASE + s->sid,
				   (const unsigned char[]){ SIGKILL, 0, 0, 0 },
				   4, NULL);
		s->killed = true;
		if (s->ops)
			shell_ended(b, s, -1, 0, why);
	}
}

static void
hold_record_end(struct build *b, const char *why)
{
	if (!b->res.hold ||
	    !json_is_null(json_object_get(b->res.hold, "ended")))
		return;
	json_object_set_new(b->res.hold, "duration_ms",
			    json_integer(now_ms() - b->hold_t0));
	json_object_set_new(b->res.hold, "ended", json_string_lossy(why));
}

void
build_hold_end(struct build *b, const char *why)
{
	/* an owner told of the end may call this again: once is enough */
	if (b->phase != PH_HOLD || b->hold_ending)
		return;
	b->hold_ending = true;
	loop_timer_cancel(b->t_hold);
	b->t_hold = NULL;
	hold_record_end(b, why);
	build_say(b, 1, "hold over: %s", why);
	build_emit(b, "HOLD_ENDED", json_pack("{s:s}", "reason", why));
	end_sessions(b, why);
	build_start_artifacts(b);
}

void
build_hold_release(struct build *b, const char *why)
{
	struct build_shell *s;

	b->hold_ending = true;
	loop_timer_cancel(b->t_hold);
	b->t_hold = NULL;
	if (b->res.hold)
		hold_record_end(b, why);
	end_sessions(b, why);
	while ((s = b->shells))
		unlink_shell(b, s);
}

int
build_shell_open(struct build *b, const struct build_shell_req *req,
		 const struct build_shell_ops *ops, void *opaque,
		 unsigned *sid, struct error *err)
{
	const struct recipe_step *st = &b->recipe->steps[b->step];
	struct build_shell *s;
	char *argv[1];
	char **env;
	size_t n_env;
	uint32_t flags = AGENT_EXEC_SHELL | AGENT_EXEC_STDIN;
	int rc;

	if (b->phase != PH_HOLD)
		return error_set(err, EAGAIN, "the build is not held");
	if (b->n_shells_live >= BUILD_SHELLS_MAX)
		return error_set(err, EAGAIN, "%d sessions are open already",
				 BUILD_SHELLS_MAX);
	if (b->next_sid >= BUILD_SHELLS_TOTAL)
		return error_set(err, EAGAIN, "this build had %d sessions "
				 "already", BUILD_SHELLS_TOTAL);
	if (req->pty)
		flags |= AGENT_EXEC_PTY;
	/* the failed step's environment, with the network it has now */
	env = build_step_env(b, st, false, &n_env);
	env = xrealloc(env, (n_env + 2) * sizeof(*env));
	if (req->pty)
		env[n_env++] = xasprintf("TERM=%s",
					 req->term && *req->term ? req->term
								 : "xterm");
	env[n_env++] = xstrdup("QCTL_HOLD=1");
	argv[0] = (char *)(req->command ? req->command : SHELL_SCRIPT);
	s = xcalloc(1, sizeof(*s));
	s->sid = ++b->next_sid;
	rc = agent_send_exec(&b->agent, SHELL_ID_BASE + s->sid, flags, "/src",
			     argv, 1, env, n_env, err);
	build_free_env(env, n_env);
	if (rc == 0 && req->pty && (req->rows || req->cols))
		rc = agent_send_winsize(&b->agent, SHELL_ID_BASE + s->sid,
					req->rows ? req->rows : 24,
					req->cols ? req->cols : 80, err);
	if (rc < 0) {
		free(s);
		return -1;
	}
	s->ops = ops;
	s->opaque = opaque;
	s->pty = req->pty;
	s->t0 = now_ms();
	s->rec = json_pack("{s:I, s:s, s:o, s:b, s:I, s:n, s:n, s:n, s:n}",
			   "session", (json_int_t)s->sid, "who",
			   req->who ? req->who : "", "command",
			   req->command ? json_string_lossy(req->command)
					: json_null(),
			   "pty", req->pty, "started_ms",
			   (json_int_t)build_since_start(b), "duration_ms",
			   "exit_code", "signal", "ended");
	json_array_append(json_object_get(b->res.hold, "sessions"), s->rec);
	s->next = b->shells;
	b->shells = s;
	b->n_shells_live++;
	*sid = s->sid;
	build_say(b, 1, "hold: session %u opened by %s: %s", s->sid,
		  req->who ? req->who : "?",
		  req->command ? "a command" : "a shell");
	build_update_watches(b);
	return 0;
}

static struct build_shell *
live_shell(struct build *b, unsigned sid, struct error *err)
{
	struct build_shell *s = find_shell(b, sid);

	if (!s || !s->ops) {
		error_set(err, ESRCH, "no session %u", sid);
		return NULL;
	}
	return s;
}

/* Input the agent has not taken yet, above which more is refused. */
#define SHELL_INPUT_QUEUE_MAX (4u << 20)

int
build_shell_input(struct build *b, unsigned sid, const void *p, size_t n,
		  struct error *err)
{
	if (!live_shell(b, sid, err))
		return -1;
	if (agent_pending(&b->agent) + n > SHELL_INPUT_QUEUE_MAX)
		return error_set(err, ENOBUFS, "the guest is not reading "
				 "the session's input");
	if (agent_send_stdin(&b->agent, SHELL_ID_BASE + sid, p, n, err) < 0)
		return -1;
	build_update_watches(b);
	return 0;
}

int
build_shell_eof(struct build *b, unsigned sid, struct error *err)
{
	if (!live_shell(b, sid, err))
		return -1;
	if (agent_send_stdin_end(&b->agent, SHELL_ID_BASE + sid, err) < 0)
		return -1;
	build_update_watches(b);
	return 0;
}

int
build_shell_winsize(struct build *b, unsigned sid, unsigned rows,
		    unsigned cols, struct error *err)
{
	struct build_shell *s = live_shell(b, sid, err);

	if (!s)
		return -1;
	if (!s->pty)
		return 0;
	if (agent_send_winsize(&b->agent, SHELL_ID_BASE + sid, rows, cols,
			       err) < 0)
		return -1;
	build_update_watches(b);
	return 0;
}

int
build_shell_signal(struct build *b, unsigned sid, int signo,
		   struct error *err)
{
	unsigned char pl[4];

	if (!live_shell(b, sid, err))
		return -1;
	agent_put_u32(pl, (uint32_t)signo);
	if (agent_send(&b->agent, AGENT_SIGNAL, SHELL_ID_BASE + sid, pl,
		       sizeof(pl), err) < 0)
		return -1;
	build_update_watches(b);
	return 0;
}

void
build_shell_close(struct build *b, unsigned sid)
{
	struct build_shell *s = find_shell(b, sid);

	if (!s || !s->ops)
		return;
	/* its owner went away: the job goes, no callback */
	s->ops = NULL;
	if (b->n_shells_live)
		b->n_shells_live--;
	if (s->rec) {
		json_object_set_new(s->rec, "duration_ms",
				    json_integer(now_ms() - s->t0));
		json_object_set_new(s->rec, "ended",
				    json_string("closed by its client"));
	}
	if (b->agent_up && !b->agent.dead && !s->gone) {
		agent_send(&b->agent, AGENT_SIGNAL, SHELL_ID_BASE + sid,
			   (const unsigned char[]){ SIGKILL, 0, 0, 0 }, 4,
			   NULL);
		s->killed = true;
		build_update_watches(b);
	}
}

int
build_shell_frame(struct build *b, const struct agent_hdr *h, const void *p,
		  struct error *err)
{
	struct build_shell *s = find_shell(b, h->id - SHELL_ID_BASE);
	char msg[512];
	int32_t code, sig;

	if (!s || (s->gone && h->type != AGENT_ERROR))
		return error_set(err, EPROTO, "agent: unexpected %s frame "
				 "(type %u, %u bytes) for id %u%s",
				 agent_type_name(h->type), h->type, h->len,
				 h->id, s ? " after its end" : "");
	switch (h->type) {
	case AGENT_STARTED:
		if (s->started || h->len != 4)
			return error_set(err, EPROTO, "agent: %s STARTED "
					 "(%u bytes) for id %u",
					 s->started ? "second" : "malformed",
					 h->len, h->id);
		s->started = true;
		return 0;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		if (!s->started)
			break;
		if (s->ops && s->ops->output)
			s->ops->output(s->opaque,
				       h->type == AGENT_STDERR ? 2 : 1, p,
				       h->len);
		return 0;
	case AGENT_EXIT:
		if (!s->started)
			break;
		if (agent_decode_exit(p, h->len, &code, &sig, err) < 0)
			return -1;
		s->gone = true;
		if (s->ops)
			shell_ended(b, s, code, sig, NULL);
		return 0;
	case AGENT_ERROR:
		if (agent_decode_status(p, h->len, &code, msg, sizeof(msg),
					err) < 0)
			return -1;
		/* in place of STARTED it ends the EXEC; after it, it answers
		 * a STDIN, STDIN_END or WINSIZE the job no longer takes (a
		 * race with its end) and ends nothing */
		if (s->started || s->gone)
			return 0;
		s->gone = true;
		if (s->ops)
			shell_ended(b, s, -1, 0, msg);
		return 0;
	default:
		break;
	}
	return error_set(err, EPROTO, "agent: unexpected %s frame (type %u, "
			 "%u bytes) for id %u%s", agent_type_name(h->type),
			 h->type, h->len, h->id,
			 s->started ? "" : " before STARTED");
}

/*
 * serve-int.h - what serve.c shares with serve-ssh.c: the scheduler's
 * state and its log.  Private to those two; the API is serve.h.
 */
#ifndef QCTL_SERVE_INT_H
#define QCTL_SERVE_INT_H

#include <time.h>

#include "image.h"
#include "peer.h"
#include "serve.h"

struct serve_ssh;

enum sb_state { SB_QUEUED, SB_RUNNING, SB_FINISHED };

struct access_job;

/* One submitted build. */
struct sbuild {
	struct serve *s;
	struct sbuild *next;	/* submission order */
	char id[24];
	enum sb_state state;
	struct ctl_peer peer;	/* who submitted it */
	struct recipe *recipe;	/* until the engine's build is freed */
	char *source;		/* build-submit's "source", or NULL */
	struct peer_creds creds;	/* the submitter's rights */
	struct image img;	/* a client-named image, opened as the client */
	bool have_img;
	struct build *b;	/* the engine's build, until freed */
	FILE *out;		/* its progress, to the server log */
	bool release;		/* b ended: free it on the next work round */
	bool paused;
	char *run_dir;
	struct state_rec *kept;	/* names run_dir once the engine let go */
	json_t *result;		/* once finished */
	time_t submitted;
	int64_t t_submit, t_start, t_end;
};

struct serve {
	struct loop *loop;
	struct serve_opts o;
	const struct serve_backend *be;
	struct ctl *ctl;
	struct sbuild *builds;
	unsigned next_id;
	int n_queued, n_running, n_finished;
	struct loop_timer *t_work, *t_quit, *t_grace;
	struct access_job *jobs;	/* submissions reading client files */
	bool stopping;
	char why[128];
	struct serve_ssh *ssh;	/* ssh into held builds (serve-ssh.c) */
};

/* One line to the server log (controls made harmless). */
void serve_log(struct serve *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The build of that id, or NULL with err saying so. */
struct sbuild *sb_find(struct serve *s, const char *id, struct error *err);

/* serve-ssh.c */

/* The hold a build of recipe r gets here (0: none). */
int64_t serve_ssh_hold(const struct serve *s, const struct recipe *r);
void serve_ssh_free(struct serve *s);

#endif

/*
 * build-net.c - a build's network, for recipes with a fetch step.
 *
 * Its own namespace with one tap, the nftables helper inside it (the
 * window closed), and the proxy on the tap's address; the window opens
 * for a fetch step (once the proxy is ready) and closes after it.  What
 * the proxy relays is recorded in network.jsonl and the result; the
 * traffic is counted against the recipe's net_bytes.
 */
#include "build-int.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>

#include "netfilter.h"
#include "proxy.h"
#include "rundir.h"
#include "state.h"

/* ---- network --------------------------------------------------------- */

static void
on_proxy_record(const struct proxy_record *r, void *opaque)
{
	struct build *b = opaque;
	json_t *j = proxy_record_to_json(r);
	char *line;

	build_say(b, 1, "net: %s %s:%u %s%s%s", r->method, r->host, r->port,
		  r->allowed ? "allowed" : "REFUSED", r->reason ? ": " : "",
		  r->reason ? r->reason : "");
	if (!b->res.network)
		b->res.network = json_array();
	/* A runaway build must not grow the result without bound. */
	if (json_array_size(b->res.network) < 10000)
		json_array_append(b->res.network, j);
	line = json_dumps(j, JSON_COMPACT);
	if (line && b->net_log_fd >= 0) {
		if (write_in_full(b->net_log_fd, line, strlen(line)) < 0 ||
		    write_in_full(b->net_log_fd, "\n", 1) < 0)
			(void)0;
	}
	free(line);
	json_decref(j);
}

/* A fetch step that started before the proxy was ready gets its window
 * now (see build_net_window). */
static void
net_proxy_ready(struct build *b)
{
	const struct recipe_step *s;
	struct error err = { 0 };

	loop_timer_cancel(b->t_proxy);
	b->t_proxy = NULL;
	build_say(b, 2, "network: proxy ready");
	if (b->phase != PH_STEP)
		return;
	s = &b->recipe->steps[b->step];
	if (!s->fetch || b->window_open)
		return;
	if (build_net_window(b, true, s->name, &err) < 0)
		build_fail(b, BUILD_ERROR, "opening the network for \"%s\": %s",
			   s->name, err.msg);
}

static void
on_proxy_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };
	bool was_ready = proxy_ready(b->proxy);

	(void)l;
	(void)fd;
	(void)events;
	if (proxy_handle_io(b->proxy, on_proxy_record, b, &err) < 0) {
		loop_unwatch(b->w_proxy);
		b->w_proxy = NULL;
		loop_timer_cancel(b->t_proxy);
		b->t_proxy = NULL;
		if (b->phase < PH_SHUTDOWN)
			build_fail(b, BUILD_ERROR, "%s%s",
				   was_ready ? "proxy lost: " : "", err.msg);
		return;
	}
	if (!was_ready && proxy_ready(b->proxy))
		net_proxy_ready(b);
	/* fresh byte counts: check the budget now, not at the next tick */
	build_net_sample(b);
}

/* The proxy did not say "ready" in time: a stuck start fails the build
 * rather than leaving its fetch steps waiting. */
static void
on_proxy_deadline(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	b->t_proxy = NULL;
	if (!b->w_proxy)
		return;
	/* What is already queued counts. */
	on_proxy_io(l, -1, 0, b);
	if (b->w_proxy && !proxy_ready(b->proxy) && b->phase < PH_SHUTDOWN)
		build_fail(b, BUILD_ERROR, "proxy: not ready after %d ms",
			   PROXY_START_TIMEOUT_MS);
}

static void
on_nf_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	(void)fd;
	(void)events;
	/* The helper only ever answers requests: anything unasked-for is
	 * its death (EOF) or a broken helper.  Fail closed. */
	loop_unwatch(b->w_nf);
	b->w_nf = NULL;
	if (b->phase < PH_SHUTDOWN)
		build_fail(b, BUILD_ERROR, "network helper died (pid %d)",
			   (int)nf_pid(b->nf));
}

/* Guest and proxy byte counts; ends the build past net_bytes. */
void
build_net_sample(struct build *b)
{
	struct nf_counters c;
	struct error err = { 0 };
	uint64_t up = 0, down = 0, total;
	uint64_t max = b->recipe->limits.net_bytes;

	if (!b->net || !b->nf || b->phase >= PH_SHUTDOWN)
		return;
	if (nf_read_counters(b->nf, &c, &err) < 0) {
		build_fail(b, BUILD_ERROR, "network helper: %s", err.msg);
		return;
	}
	if (b->proxy)
		proxy_totals(b->proxy, &up, &down);
	/* from the guest's point of view */
	b->res.stats.net_tx_bytes = c.rx_bytes;
	b->res.stats.net_rx_bytes = c.tx_bytes;
	total = c.rx_bytes + c.tx_bytes;
	if (up + down > total)
		total = up + down;
	if (c.quota_used > total)
		total = c.quota_used;
	/* The proxy stops relaying when its share reaches the budget: the
	 * build then wanted more than it may have. */
	if (max && (total > max || up + down >= max))
		build_limit_exceeded(b, "net_bytes", total, max, "bytes",
				     "network traffic exceeded %llu bytes",
				     (unsigned long long)max);
}

int
build_net_window(struct build *b, bool open, const char *step,
		 struct error *err)
{
	int r;

	if (!b->net || b->window_open == open)
		return 0;
	if (open && !proxy_ready(b->proxy)) {
		/* No door opens before the proxy behind it is confined and
		 * serving: net_proxy_ready opens it then.  Until then the
		 * guest's connection attempts are dropped (and retried). */
		build_say(b, 1, "network: waiting for the proxy to be ready");
		return 0;
	}
	if (open) {
		r = proxy_set_window(b->proxy, true, step, err);
		if (r == 0)
			r = nf_open_window(b->nf, err);
		if (r == 0) {
			b->window_open = true;
			build_emit(b, "NET_WINDOW",
				   json_pack("{s:s, s:b}", "step", step, "open",
					     1));
		}
		return r;
	}
	/* Close the kernel's door first: it is the one that matters. */
	r = nf_close_window(b->nf, err);
	if (r == 0) {
		b->window_open = false;
		build_emit(b, "NET_WINDOW",
			   json_pack("{s:s, s:b}", "step",
				     b->recipe->steps[b->step].name, "open",
				     0));
	}
	if (b->proxy && proxy_set_window(b->proxy, false, NULL,
					 r < 0 ? NULL : err) < 0 && r == 0)
		r = -1;
	build_net_sample(b);
	return r;
}

/*
 * The builder's network: its own namespace with one tap, the nftables
 * helper inside it (window closed), and the proxy on the tap's address.
 */
int
build_net_start(struct build *b, struct error *err)
{
	_cleanup_free_ char *name = xasprintf("qctl-%s",
					      strrchr(b->run_dir, '/') + 1);
	_cleanup_free_ char *helper = helper_path("QCTL_NETFILTER",
							"qctl-netfilter");
	_cleanup_free_ char *proxy = helper_path("QCTL_PROXY",
						       "qctl-proxy");
	_cleanup_free_ char *logp = xasprintf("%s/network.jsonl", b->run_dir);
	struct proxy_config pc = { 0 };
	int r;

	state_note_str(b->state, "netns", name);
	r = netns_create(name, &b->ns, err);
	if (r < 0)
		return r;
	r = nf_start(helper, b->ns.fd, &b->nf, err);
	if (r == 0)
		state_note_pid(b->state, "helper", nf_pid(b->nf));
	if (r == 0)
		r = nf_setup(b->nf, NETNS_TAP, NETNS_HOST_IP, NETNS_GUEST_IP,
			     NETNS_PROXY_PORT, b->recipe->limits.net_bytes,
			     b->ssh ? 22 : 0, err);
	if (r < 0) {
		error_prefix(err, "network helper");
		return r;
	}
	pc.path = proxy;
	pc.listen_fd = b->ns.listen_fd;
	pc.allow = b->allow;
	pc.n_allow = b->n_allow;
	pc.max_bytes = b->recipe->limits.net_bytes;
	/* Returns at once: "ready" comes through on_proxy_io, within the
	 * deadline, and no window opens before it. */
	r = proxy_start(&pc, &b->proxy, err);
	if (r < 0)
		return r;
	state_note_pid(b->state, "proxy", proxy_pid(b->proxy));
	b->t_proxy = loop_timer_at(b->loop, now_ms() + PROXY_START_TIMEOUT_MS,
				   on_proxy_deadline, b);
	/* Only the proxy needs the listener. */
	close(b->ns.listen_fd);
	b->ns.listen_fd = -1;
	r = rundir_open_file(b->dir_fd, "network.jsonl", O_WRONLY,
			     &b->net_log_fd, err);
	if (r < 0)
		return r;
	b->res.net_log = steal_pointer(&logp);
	b->w_nf = loop_watch_fd(b->loop, nf_fd(b->nf), EPOLLIN, on_nf_io, b);
	b->w_proxy = loop_watch_fd(b->loop, proxy_fd(b->proxy), EPOLLIN,
				   on_proxy_io, b);
	if (!b->w_nf || !b->w_proxy)
		return error_sys(err, errno, "epoll");
	build_say(b, 2, "network: namespace %s, helper pid %d, proxy pid %d",
		  b->ns.name, (int)nf_pid(b->nf), (int)proxy_pid(b->proxy));
	return 0;
}

void
build_net_stop(struct build *b)
{
	struct error err = { 0 };

	loop_unwatch(b->w_nf);
	loop_unwatch(b->w_proxy);
	b->w_nf = b->w_proxy = NULL;
	loop_timer_cancel(b->t_proxy);
	b->t_proxy = NULL;
	if (b->proxy) {
		/* a last look at what it counted */
		proxy_handle_io(b->proxy, on_proxy_record, b, NULL);
		proxy_stop(b->proxy);
		b->proxy = NULL;
	}
	if (b->nf) {
		/* QEMU is gone: deleting the table opens nothing. */
		if (nf_alive(b->nf))
			nf_teardown(b->nf, &err);
		nf_stop(b->nf);
		b->nf = NULL;
	}
	netns_destroy(&b->ns);
	if (b->net_log_fd >= 0)
		close(b->net_log_fd);
	b->net_log_fd = -1;
}

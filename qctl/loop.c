/* loop.c - epoll event loop with deadline timers */
#include "loop.h"
#include "util.h"

#include <sys/epoll.h>

struct loop_watch {
	struct loop *loop;
	int fd;
	uint32_t events;
	loop_fd_fn fn;
	void *opaque;
	bool dead;
	struct loop_watch *next;
};

struct loop_timer {
	int64_t deadline;
	loop_timer_fn fn;
	void *opaque;
	bool dead;
	struct loop_timer *next;
};

struct loop {
	int epfd;
	struct loop_watch *watches;
	struct loop_timer *timers;
	bool quit;
	int status;
};

struct loop *
loop_new(void)
{
	struct loop *l;
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->epfd = fd;
	return l;
}

static void
loop_reap(struct loop *l)
{
	struct loop_watch **wp = &l->watches;
	struct loop_timer **tp = &l->timers;

	while (*wp) {
		struct loop_watch *w = *wp;

		if (w->dead) {
			*wp = w->next;
			free(w);
		} else {
			wp = &w->next;
		}
	}
	while (*tp) {
		struct loop_timer *t = *tp;

		if (t->dead) {
			*tp = t->next;
			free(t);
		} else {
			tp = &t->next;
		}
	}
}

void
loop_free(struct loop *l)
{
	if (!l)
		return;
	for (struct loop_watch *w = l->watches; w; w = w->next)
		w->dead = true;
	for (struct loop_timer *t = l->timers; t; t = t->next)
		t->dead = true;
	loop_reap(l);
	close(l->epfd);
	free(l);
}

struct loop_watch *
loop_watch_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn,
	      void *opaque)
{
	struct loop_watch *w = xcalloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->loop = l;
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->opaque = opaque;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(w);
		return NULL;
	}
	w->next = l->watches;
	l->watches = w;
	return w;
}

int
loop_watch_set(struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->events == events)
		return 0;
	if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

void
loop_unwatch(struct loop_watch *w)
{
	if (!w || w->dead)
		return;
	epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	/* freed after the current dispatch round; events for it are skipped */
	w->dead = true;
}

struct loop_timer *
loop_timer_at(struct loop *l, int64_t deadline_ms, loop_timer_fn fn,
	      void *opaque)
{
	struct loop_timer *t = xcalloc(1, sizeof(*t));

	t->deadline = deadline_ms;
	t->fn = fn;
	t->opaque = opaque;
	t->next = l->timers;
	l->timers = t;
	return t;
}

void
loop_timer_cancel(struct loop_timer *t)
{
	if (t)
		t->dead = true;
}

int
loop_run_once(struct loop *l, int max_wait_ms)
{
	struct epoll_event evs[32];
	int64_t now = now_ms(), next = -1;
	int timeout = max_wait_ms, n;

	for (struct loop_timer *t = l->timers; t; t = t->next)
		if (!t->dead && (next < 0 || t->deadline < next))
			next = t->deadline;
	if (next >= 0) {
		int64_t d = next > now ? next - now : 0;

		if (timeout < 0 || d < timeout)
			timeout = d > 86400000 ? 86400000 : (int)d;
	}
	n = epoll_wait(l->epfd, evs, ARRAY_SIZE(evs), timeout);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;

		if (!w->dead)
			w->fn(l, w->fd, evs[i].events, w->opaque);
	}
	now = now_ms();
	/* Timers added by callbacks run on a later round: no starvation. */
	for (struct loop_timer *t = l->timers; t; t = t->next) {
		if (!t->dead && t->deadline <= now) {
			t->dead = true;
			t->fn(l, t->opaque);
		}
	}
	loop_reap(l);
	return 0;
}

int
loop_run(struct loop *l)
{
	while (!l->quit) {
		int r = loop_run_once(l, -1);

		if (r < 0)
			return r;
	}
	return l->status;
}

void
loop_quit(struct loop *l, int status)
{
	l->quit = true;
	l->status = status;
}

bool
loop_quitting(const struct loop *l)
{
	return l->quit;
}

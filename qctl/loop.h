/* loop.h - the manager's single event loop (epoll + deadlines) */
#ifndef QCTL_LOOP_H
#define QCTL_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;
struct loop_timer;

typedef void (*loop_fd_fn)(struct loop *l, int fd, uint32_t events,
			   void *opaque);
typedef void (*loop_timer_fn)(struct loop *l, void *opaque);

/* Create a loop; NULL with errno set on failure. */
struct loop *loop_new(void);
void loop_free(struct loop *l);
/* Watch fd for events (EPOLLIN/EPOLLOUT); fd stays owned by the caller. */
struct loop_watch *loop_watch_fd(struct loop *l, int fd, uint32_t events,
				 loop_fd_fn fn, void *opaque);
/* Change the event mask of a watch. */
int loop_watch_set(struct loop_watch *w, uint32_t events);
/* Stop watching; safe from inside callbacks.  NULL is ignored. */
void loop_unwatch(struct loop_watch *w);
/* Call fn once at the absolute deadline (now_ms() clock). */
struct loop_timer *loop_timer_at(struct loop *l, int64_t deadline_ms,
				 loop_timer_fn fn, void *opaque);
/* Cancel a pending timer; safe from inside callbacks.  NULL is ignored. */
void loop_timer_cancel(struct loop_timer *t);
/* Run one iteration, waiting at most max_wait_ms (-1: until an event). */
int loop_run_once(struct loop *l, int max_wait_ms);
/* Run until loop_quit; returns the value given to loop_quit. */
int loop_run(struct loop *l);
void loop_quit(struct loop *l, int status);
bool loop_quitting(const struct loop *l);

#endif

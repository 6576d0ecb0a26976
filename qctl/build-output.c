/*
 * build-output.c - what a build shows and records of itself.
 *
 * Progress messages (to opts.out and build.log), the live status line on
 * a terminal, events for the caller, the running step's output assembled
 * into lines (to opts.out and build.log), and the guest's console (to
 * console.log).  Guest bytes reach a terminal only with their controls
 * made visible; what the guest writes is capped.
 */
#include "build-int.h"

#include <string.h>

/* Progress for the user: on opts.out at verbosity >= level, and the log. */
void
build_say(struct build *b, int level, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	msg[n] = '\0';
	if (b->opts.verbosity >= level && b->opts.out) {
		struct buf vis = { 0 };

		/* messages carry guest-chosen text (artifact names, agent
		 * errors): the terminal gets it with controls made visible */
		term_sanitize(msg, n - 1, &vis);
		build_statusline_clear(b);
		fprintf(b->opts.out, "qctl: %s\n", vis.data);
		fflush(b->opts.out);
		buf_free(&vis);
	}
	if (b->log_fd >= 0 && write_in_full(b->log_fd, msg, n) < 0)
		(void)0;
}

/* Wipe the live status line before anything else is printed. */
void
build_statusline_clear(struct build *b)
{
	if (b->status_shown) {
		fputs("\r\033[K", b->opts.out);
		b->status_shown = false;
	}
}

/* One compact line, redrawn in place: step, time and resource use. */
void
build_statusline_draw(struct build *b)
{
	const char *what = b->phase == PH_STEP
				   ? b->recipe->steps[b->step].name
				   : b->phase == PH_BOOT ? "booting"
							 : b->phase < PH_STEP
								   ? "setup"
								   : "ending";

	/* a held build's terminal belongs to its shell */
	if (!b->tty || b->opts.verbosity < 1 || b->phase == PH_DONE ||
	    b->phase == PH_HOLD)
		return;
	fprintf(b->opts.out,
		"\r\033[K[%s] %.0fs  cpu %.1fs  mem %lluM  disk %lluM  "
		"net %lluK  log %lluK",
		what, build_since_start(b) / 1000.0,
		b->res.stats.cpu_usec / 1e6,
		(unsigned long long)(b->res.stats.mem_peak_bytes >> 20),
		(unsigned long long)(b->res.stats.disk_written_bytes >> 20),
		(unsigned long long)((b->res.stats.net_rx_bytes +
				      b->res.stats.net_tx_bytes) >>
				     10),
		(unsigned long long)(b->res.stats.log_bytes >> 10));
	fflush(b->opts.out);
	b->status_shown = true;
}

void
build_emit(struct build *b, const char *event, json_t *data)
{
	if (b->opts.event)
		b->opts.event(b, event, data, b->opts.event_opaque);
	json_decref(data);
}

/* ---- output ---------------------------------------------------------- */

static void
emit_line(struct build *b, int stream, const char *s, size_t n)
{
	const char *name = b->recipe->steps[b->step].name;
	struct buf out = { 0 }, vis = { 0 };

	buf_append(&out, name, strlen(name));
	buf_append(&out, "| ", 2);
	buf_append(&out, s, n);
	(void)stream;
	if (b->opts.verbosity >= 1 && b->opts.out) {
		/* A CR that ends the line (CRLF, as dpkg and apt write when
		 * they think of a terminal) hides nothing: not shown.  Any
		 * other is shown as a control, so that no guest text can
		 * overwrite another on the screen. */
		size_t len = out.len;

		if (n && s[n - 1] == '\r')
			len--;
		/* Guest bytes never reach a terminal raw: ESC and C1 (raw or
		 * UTF-8 encoded) sequences could rewrite the screen or worse.
		 * build.log keeps them as they were: it is the record. */
		term_sanitize(out.data, len, &vis);
		buf_append(&vis, "\n", 1);
		build_statusline_clear(b);
		fwrite(vis.data, 1, vis.len, b->opts.out);
		fflush(b->opts.out);
		buf_free(&vis);
	}
	buf_append(&out, "\n", 1);
	if (b->log_fd >= 0 && write_in_full(b->log_fd, out.data, out.len) < 0)
		(void)0;
	buf_free(&out);
}

void
build_flush_lines(struct build *b)
{
	for (int s = 0; s < 2; s++) {
		if (b->line[s].len)
			emit_line(b, s, b->line[s].data, b->line[s].len);
		b->line[s].len = 0;
	}
}

void
build_step_output(struct build *b, int stream, const char *p, size_t n)
{
	struct buf *l = &b->line[stream];
	uint64_t max = b->recipe->limits.log_bytes;

	b->res.stats.log_bytes += n;
	if (max && (uint64_t)b->res.stats.log_bytes > max) {
		/* Keep the log at the cap: only the part that fits. */
		size_t over = b->res.stats.log_bytes - max;

		n = over >= n ? 0 : n - over;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			emit_line(b, stream, l->data ? l->data : "", l->len);
			l->len = 0;
		} else {
			buf_append(l, &p[i], 1);
			if (l->len >= LINE_MAX_BYTES) {
				emit_line(b, stream, l->data, l->len);
				l->len = 0;
			}
		}
	}
	if (max && (uint64_t)b->res.stats.log_bytes > max) {
		build_flush_lines(b);
		build_limit_exceeded(b, "log_bytes", b->res.stats.log_bytes,
				     max, "bytes", "step \"%s\" wrote more "
				     "than %llu bytes of output",
				     b->recipe->steps[b->step].name,
				     (unsigned long long)max);
	}
}

/* ---- console --------------------------------------------------------- */

void
build_on_console(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	char tmp[16384];
	ssize_t n;

	(void)l;
	(void)events;
	n = read(fd, tmp, sizeof(tmp));
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			loop_unwatch(b->w_console);
			b->w_console = NULL;
		}
		return;
	}
	/* The console is guest-controlled: keep only the first MiB. */
	if (b->console_log_fd >= 0 && b->console_bytes < CONSOLE_LOG_MAX) {
		size_t keep = CONSOLE_LOG_MAX - b->console_bytes;

		if ((size_t)n < keep)
			keep = n;
		if (write_in_full(b->console_log_fd, tmp, keep) < 0)
			(void)0;
	}
	b->console_bytes += n;
}

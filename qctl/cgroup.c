/*
 * cgroup.c - cgroup v2: one cgroup per VM, limits, stats, freeze, kill.
 *
 * The hierarchy is found at run time (/sys/fs/cgroup on a pure v2 host,
 * /sys/fs/cgroup/unified on a hybrid one) and whatever controllers it
 * offers are used; a missing controller is reported, never fatal, and the
 * limit it would have enforced is left to polling (see limit.c).  The
 * root is a parameter and the parsers take buffers, so the unit tests run
 * against a fake tree in a temporary directory.
 */
#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Controllers qctl asks for, by name, in CG_* bit order. */
static const struct {
	const char *name;
	unsigned bit;
} controllers[] = {
	{"cpu", CG_CPU},
	{"memory", CG_MEMORY},
	{"pids", CG_PIDS},
	{"io", CG_IO},
};

#define CG_WANTED (CG_CPU | CG_MEMORY | CG_PIDS | CG_IO)
/* Kernel-written interface files are small; these caps only bound us. */
#define CG_FILE_MAX (64u * 1024)
#define CG_PROCS_MAX (4u * 1024 * 1024)
#define MOUNTINFO_MAX (16u * 1024 * 1024)

/* ---- lexing ---------------------------------------------------------- */

/* Next line of *p as [*line, *len) without its '\n'; false at the end. */
static bool
next_line(const char **p, const char **line, size_t *len)
{
	const char *s = *p, *nl;

	if (!*s)
		return false;
	nl = strchr(s, '\n');
	*line = s;
	*len = nl ? (size_t)(nl - s) : strlen(s);
	*p = nl ? nl + 1 : s + *len;
	return true;
}

/* Next blank-separated token within [*p, end); false when none is left. */
static bool
next_tok(const char **p, const char *end, const char **tok, size_t *len)
{
	const char *s = *p;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end)
		return false;
	*tok = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	*len = s - *tok;
	*p = s;
	return true;
}

static bool
tok_is(const char *tok, size_t len, const char *word)
{
	return strlen(word) == len && !memcmp(tok, word, len);
}

/* "12.34" (the kernel prints %lu.%02lu) as a percentage 0..100. */
static int
parse_avg(const char *s, size_t n, double *out)
{
	const char *dot = memchr(s, '.', n);
	uint64_t ip, fp;
	size_t il, fl;
	double scale = 1;

	if (!dot)
		return -EINVAL;
	il = dot - s;
	fl = n - il - 1;
	if (il < 1 || il > 3 || fl < 1 || fl > 6 || parse_u64_dec(s, il, &ip) < 0 ||
	    parse_u64_dec(dot + 1, fl, &fp) < 0)
		return -EINVAL;
	for (size_t i = 0; i < fl; i++)
		scale *= 10;
	*out = (double)ip + (double)fp / scale;
	return *out > 100.0 ? -ERANGE : 0;
}

/* A parse error: ERANGE for a number too large, EBADMSG for the rest. */
static int
bad_line(struct error *err, int code, const char *what, unsigned lineno,
	 const char *line, size_t len)
{
	if (code != ERANGE)
		code = EBADMSG;
	return error_set(err, code, "%s line %u: %s: \"%.*s\"", what, lineno,
			 code == ERANGE ? "number out of range" : "malformed",
			 (int)(len > 80 ? 80 : len), line);
}

/* ---- pure parsers ---------------------------------------------------- */

int
cgroup_parse_keyed(const char *buf, const char *const *keys, uint64_t *vals,
		   size_t n, unsigned *found, struct error *err)
{
	const char *p = buf, *line, *end, *key, *val, *extra;
	size_t len, klen, vlen, xlen;
	unsigned seen = 0, lineno = 0;

	if (n > 32)
		return error_set(err, EINVAL, "too many keys");
	while (next_line(&p, &line, &len)) {
		size_t i;
		int r;

		lineno++;
		end = line + len;
		if (!next_tok(&line, end, &key, &klen))
			continue;
		for (i = 0; i < n; i++)
			if (tok_is(key, klen, keys[i]))
				break;
		/* Keys the kernel added after this was written are fine. */
		if (i == n)
			continue;
		if (seen & (1u << i))
			return error_set(err, EBADMSG,
					 "line %u: duplicate key %s", lineno,
					 keys[i]);
		if (!next_tok(&line, end, &val, &vlen) ||
		    next_tok(&line, end, &extra, &xlen))
			return bad_line(err, EBADMSG, keys[i], lineno, key,
					end - key);
		r = parse_u64_dec(val, vlen, &vals[i]);
		if (r < 0)
			return bad_line(err, -r, keys[i], lineno, key,
					end - key);
		seen |= 1u << i;
	}
	*found = seen;
	return 0;
}

/* Parse keys into vals; every key whose bit is in need must be there. */
static int
parse_need(const char *buf, const char *what, const char *const *keys,
	   uint64_t *vals, size_t n, unsigned need, unsigned *found,
	   struct error *err)
{
	int r = cgroup_parse_keyed(buf, keys, vals, n, found, err);

	if (r < 0) {
		error_prefix(err, "%s", what);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		if ((need & (1u << i)) && !(*found & (1u << i)))
			return error_set(err, EBADMSG, "%s: no %s", what,
					 keys[i]);
	return 0;
}

int
cgroup_parse_cpu_stat(const char *buf, struct cgroup_stats *st,
		      struct error *err)
{
	static const char *const keys[] = {"usage_usec", "user_usec",
					   "system_usec", "nr_throttled",
					   "throttled_usec"};
	uint64_t v[ARRAY_SIZE(keys)] = {0};
	unsigned found;
	int r;

	r = parse_need(buf, "cpu.stat", keys, v, ARRAY_SIZE(keys), 7, &found,
		       err);
	if (r < 0)
		return r;
	st->cpu_usec = v[0];
	st->user_usec = v[1];
	st->system_usec = v[2];
	st->have |= CGS_CPU;
	/* Throttling appears only where the cpu controller is enabled. */
	if ((found & 24) == 24) {
		st->nr_throttled = v[3];
		st->throttled_usec = v[4];
		st->have |= CGS_THROTTLE;
	}
	return 0;
}

int
cgroup_parse_memory_stat(const char *buf, struct cgroup_stats *st,
			 struct error *err)
{
	static const char *const keys[] = {"anon", "file", "shmem", "kernel"};
	uint64_t v[ARRAY_SIZE(keys)] = {0};
	unsigned found;
	int r;

	/* "kernel" is 5.18+; older kernels leave it 0. */
	r = parse_need(buf, "memory.stat", keys, v, ARRAY_SIZE(keys), 7, &found,
		       err);
	if (r < 0)
		return r;
	st->anon = v[0];
	st->file = v[1];
	st->shmem = v[2];
	st->kernel = v[3];
	st->have |= CGS_MEM_STAT;
	return 0;
}

int
cgroup_parse_memory_events(const char *buf, struct cgroup_stats *st,
			   struct error *err)
{
	static const char *const keys[] = {"max", "oom", "oom_kill"};
	uint64_t v[ARRAY_SIZE(keys)] = {0};
	unsigned found;
	int r;

	r = parse_need(buf, "memory.events", keys, v, ARRAY_SIZE(keys), 7,
		       &found, err);
	if (r < 0)
		return r;
	st->mem_max_events = v[0];
	st->oom = v[1];
	st->oom_kill = v[2];
	st->have |= CGS_MEM_EVENTS;
	return 0;
}

/* One "some ..." or "full ..." line after its first word. */
static int
parse_psi_line(const char *p, const char *end, double avg[3], uint64_t *total)
{
	static const char *const keys[] = {"avg10", "avg60", "avg300", "total"};
	const char *tok;
	size_t len;
	unsigned seen = 0;

	while (next_tok(&p, end, &tok, &len)) {
		const char *eq = memchr(tok, '=', len);
		size_t i, klen;
		int r;

		if (!eq)
			return -EINVAL;
		klen = eq - tok;
		for (i = 0; i < ARRAY_SIZE(keys); i++)
			if (tok_is(tok, klen, keys[i]))
				break;
		if (i == ARRAY_SIZE(keys))
			continue;
		if (seen & (1u << i))
			return -EINVAL;
		seen |= 1u << i;
		if (i == 3)
			r = parse_u64_dec(eq + 1, len - klen - 1, total);
		else
			r = parse_avg(eq + 1, len - klen - 1, &avg[i]);
		if (r < 0)
			return r;
	}
	return seen == 15 ? 0 : -EINVAL;
}

int
cgroup_parse_pressure(const char *buf, struct cgroup_psi *psi,
		      struct error *err)
{
	struct cgroup_psi out = {0};
	const char *p = buf, *line, *end, *word;
	size_t len, wlen;
	unsigned lineno = 0;
	bool some = false;

	while (next_line(&p, &line, &len)) {
		double avg[3];
		uint64_t total;
		bool is_some;
		int r;

		lineno++;
		end = line + len;
		if (!next_tok(&line, end, &word, &wlen))
			continue;
		if (tok_is(word, wlen, "some"))
			is_some = true;
		else if (tok_is(word, wlen, "full"))
			is_some = false;
		else
			return bad_line(err, EBADMSG, "pressure", lineno, word,
					end - word);
		if (is_some ? some : out.has_full)
			return error_set(err, EBADMSG,
					 "pressure line %u: second \"%s\" line",
					 lineno, is_some ? "some" : "full");
		r = parse_psi_line(line, end, avg, &total);
		if (r < 0)
			return bad_line(err, -r, "pressure", lineno, word,
					end - word);
		if (is_some) {
			out.some_avg10 = avg[0];
			out.some_avg60 = avg[1];
			out.some_avg300 = avg[2];
			out.some_total = total;
			some = true;
		} else {
			out.full_avg10 = avg[0];
			out.full_avg60 = avg[1];
			out.full_avg300 = avg[2];
			out.full_total = total;
			out.has_full = true;
		}
	}
	if (!some)
		return error_set(err, EBADMSG, "pressure: no \"some\" line");
	*psi = out;
	return 0;
}

/* "MAJ:MIN" */
static bool
is_devnum(const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);
	uint64_t v;

	return colon && parse_u64_dec(s, colon - s, &v) == 0 && v <= UINT32_MAX &&
	       parse_u64_dec(colon + 1, n - (colon - s) - 1, &v) == 0 &&
	       v <= UINT32_MAX;
}

int
cgroup_parse_io_stat(const char *buf, struct cgroup_stats *st,
		     struct error *err)
{
	const char *p = buf, *line, *end, *tok;
	size_t len, tlen;
	uint64_t sum[2] = {0, 0};
	unsigned lineno = 0;

	while (next_line(&p, &line, &len)) {
		const char *start = line;
		unsigned seen = 0;

		lineno++;
		end = line + len;
		if (!next_tok(&line, end, &tok, &tlen))
			continue;
		if (!is_devnum(tok, tlen))
			return bad_line(err, EBADMSG, "io.stat", lineno, start,
					len);
		while (next_tok(&line, end, &tok, &tlen)) {
			const char *eq = memchr(tok, '=', tlen);
			uint64_t v;
			int i, r;

			if (!eq)
				return bad_line(err, EBADMSG, "io.stat", lineno,
						start, len);
			if (tok_is(tok, eq - tok, "rbytes"))
				i = 0;
			else if (tok_is(tok, eq - tok, "wbytes"))
				i = 1;
			else
				continue;
			r = parse_u64_dec(eq + 1, tlen - (eq - tok) - 1, &v);
			if (r == 0 &&
			    ((seen & (1u << i)) || v > UINT64_MAX - sum[i]))
				r = -ERANGE;
			if (r < 0)
				return bad_line(err, -r, "io.stat", lineno,
						start, len);
			sum[i] += v;
			seen |= 1u << i;
		}
		if (seen != 3)
			return bad_line(err, EBADMSG, "io.stat", lineno, start,
					len);
	}
	st->io_rbytes = sum[0];
	st->io_wbytes = sum[1];
	st->have |= CGS_IO;
	return 0;
}

int
cgroup_parse_u64(const char *buf, uint64_t *val, struct error *err)
{
	size_t n = strlen(buf);
	int r;

	if (n && buf[n - 1] == '\n')
		n--;
	if (n == 3 && !memcmp(buf, "max", 3)) {
		*val = UINT64_MAX;
		return 0;
	}
	r = parse_u64_dec(buf, n, val);
	if (r < 0)
		return error_set(err, -r, "%s: \"%.*s\"",
				 r == -ERANGE ? "number out of range"
					      : "not a number",
				 (int)(n > 40 ? 40 : n), buf);
	return 0;
}

int
cgroup_parse_controllers(const char *buf, unsigned *mask, struct error *err)
{
	const char *p = buf, *line, *end, *tok;
	size_t len, tlen;
	unsigned m = 0, lines = 0;

	while (next_line(&p, &line, &len)) {
		if (++lines > 1 && len)
			return error_set(
				err, EBADMSG,
				"cgroup.controllers: more than one line");
		end = line + len;
		while (next_tok(&line, end, &tok, &tlen))
			for (size_t i = 0; i < ARRAY_SIZE(controllers); i++)
				if (tok_is(tok, tlen, controllers[i].name))
					m |= controllers[i].bit;
	}
	*mask = m;
	return 0;
}

int
cgroup_parse_pids(const char *buf, pid_t **out, size_t *n, struct error *err)
{
	const char *p = buf, *line;
	size_t len, cap = 0, cnt = 0;
	_cleanup_free_ pid_t *pids = NULL;
	unsigned lineno = 0;

	while (next_line(&p, &line, &len)) {
		uint64_t v;

		lineno++;
		if (!len)
			continue;
		if (parse_u64_dec(line, len, &v) < 0 || v == 0 || v > INT_MAX)
			return bad_line(err, EBADMSG, "cgroup.procs", lineno,
					line, len);
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			pids = xrealloc(pids, cap * sizeof(*pids));
		}
		pids[cnt++] = (pid_t)v;
	}
	*n = cnt;
	*out = cnt ? steal_pointer(&pids) : NULL;
	return 0;
}

/* Undo mountinfo's octal escapes (\040 space, \011 tab, \012, \134);
 * NULL if that would make a NUL. */
static char *
unescape(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' &&
		    s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
		    s[i + 3] >= '0' && s[i + 3] <= '7') {
			*o = (char)((s[i + 1] - '0') << 6 |
				    (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
			if (!*o++) {
				free(out);
				return NULL;
			}
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

int
cgroup_find_mount(const char *mountinfo, char **path, struct error *err)
{
	/* 0: /sys/fs/cgroup (pure v2), 1: .../unified (hybrid), 2: other */
	char *slot[3] = {NULL, NULL, NULL};
	const char *p = mountinfo, *line;
	size_t len;
	unsigned lineno = 0;
	int r = 0;

	while (next_line(&p, &line, &len)) {
		const char *end = line + len, *tok[32], *q = line;
		size_t tl[32], nt = 0, dash = 0;
		char *mp;
		int s;

		lineno++;
		while (nt < ARRAY_SIZE(tok) &&
		       next_tok(&q, end, &tok[nt], &tl[nt]))
			nt++;
		if (nt == 0)
			continue;
		/* id parent maj:min root mountpoint opts [optional...] -
		 * fstype source superopts */
		for (size_t i = 6; i < nt; i++)
			if (tok_is(tok[i], tl[i], "-")) {
				dash = i;
				break;
			}
		if (!dash || dash + 1 >= nt) {
			r = bad_line(err, EBADMSG, "mountinfo", lineno, line,
				     len);
			goto out;
		}
		mp = unescape(tok[4], tl[4]);
		if (!mp) {
			r = bad_line(err, EBADMSG, "mountinfo", lineno, line,
				     len);
			goto out;
		}
		/* A later mount on the same point hides the earlier one. */
		for (int i = 0; i < 3; i++)
			if (slot[i] && !strcmp(slot[i], mp)) {
				free(slot[i]);
				slot[i] = NULL;
			}
		if (!tok_is(tok[dash + 1], tl[dash + 1], "cgroup2")) {
			free(mp);
			continue;
		}
		s = !strcmp(mp, "/sys/fs/cgroup")	    ? 0
		    : !strcmp(mp, "/sys/fs/cgroup/unified") ? 1
							    : 2;
		if (!slot[s])
			slot[s] = mp;
		else
			free(mp);
	}
	for (int i = 0; i < 3; i++)
		if (slot[i]) {
			*path = steal_pointer(&slot[i]);
			goto out;
		}
	r = error_set(err, ENOENT, "no cgroup2 mount in mountinfo");
out:
	for (int i = 0; i < 3; i++)
		free(slot[i]);
	return r;
}

/* ---- file I/O relative to a directory fd ------------------------------ */

/* Read dirfd/file whole (NUL-terminated), at most max bytes. */
static int
read_at(int dirfd, const char *where, const char *file, size_t max, char **out,
	struct error *err)
{
	int r = read_file_at(dirfd, file, max, out, NULL, err);

	if (r < 0)
		error_prefix(err, "%s", where);
	return r;
}

/* Write val to dirfd/file in one write(), as cgroup files require.  No
 * O_CREAT: a file that is not there means the kernel lacks the knob. */
static int
write_at(int dirfd, const char *where, const char *file, const char *val,
	 struct error *err)
{
	_cleanup_close_ int fd = -1;
	size_t n = strlen(val);
	ssize_t w;

	fd = openat(dirfd, file,
		    O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return error_sys(err, errno, "open %s/%s", where, file);
	do
		w = write(fd, val, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return error_sys(err, errno, "write \"%s\" to %s/%s", val,
				 where, file);
	if ((size_t)w != n)
		return error_set(err, EIO, "short write to %s/%s", where, file);
	return 0;
}

static unsigned
probe_features(int dirfd)
{
	static const struct {
		const char *file;
		unsigned bit;
	} probes[] = {
		{"cpu.stat", CGF_CPU_STAT},
		{"cgroup.kill", CGF_KILL},
		{"cgroup.freeze", CGF_FREEZE},
		{"cpu.pressure", CGF_PRESSURE},
	};
	unsigned f = 0;

	for (size_t i = 0; i < ARRAY_SIZE(probes); i++)
		if (faccessat(dirfd, probes[i].file, F_OK,
			      AT_SYMLINK_NOFOLLOW) == 0)
			f |= probes[i].bit;
	return f;
}

static void
mask_names(unsigned mask, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(controllers); i++) {
		int n;

		if (!(mask & controllers[i].bit))
			continue;
		n = snprintf(buf + o, len - o, "%s%s", o ? ", " : "",
			     controllers[i].name);
		if (n < 0 || (size_t)n >= len - o)
			return;
		o += n;
	}
}

/*
 * Make the controllers in offered & want usable by dirfd's children
 * (cgroup.subtree_control); *enabled gets those that are.  One write for
 * all first; if the kernel refuses it, one at a time to find the culprit.
 */
static int
enable_subtree(int dirfd, const char *where, unsigned offered, unsigned want,
	       unsigned *enabled, struct error *err)
{
	_cleanup_free_ char *cur = NULL;
	unsigned on = 0, todo;
	char line[64];
	size_t o = 0;
	int r;

	r = read_at(dirfd, where, "cgroup.subtree_control", CG_FILE_MAX, &cur,
		    err);
	if (r == -ENOENT) {
		*enabled = 0;
		return 0;
	}
	if (r < 0 || (r = cgroup_parse_controllers(cur, &on, err)) < 0)
		return r;
	on &= offered;
	todo = offered & want & ~on;
	if (!todo) {
		*enabled = on;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(controllers); i++)
		if (todo & controllers[i].bit)
			o += snprintf(line + o, sizeof(line) - o, "%s+%s",
				      o ? " " : "", controllers[i].name);
	if (write_at(dirfd, where, "cgroup.subtree_control", line, NULL) == 0) {
		*enabled = on | todo;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(controllers); i++) {
		if (!(todo & controllers[i].bit))
			continue;
		snprintf(line, sizeof(line), "+%s", controllers[i].name);
		if (write_at(dirfd, where, "cgroup.subtree_control", line,
			     NULL) == 0)
			on |= controllers[i].bit;
	}
	*enabled = on;
	return 0;
}

static void
cgroup_init(struct cgroup *cg)
{
	memset(cg, 0, sizeof(*cg));
	cg->dirfd = cg->parent_fd = -1;
}

static bool
name_ok(const char *name)
{
	/* One path component that no shell or log will misread. */
	return *name && strlen(name) <= 128 && strcmp(name, ".") &&
	       strcmp(name, "..") &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
		       strlen(name);
}

/* ---- the hierarchy --------------------------------------------------- */

int
cgroup_discover(const char *override, char **root, struct error *err)
{
	_cleanup_free_ char *mi = NULL;
	struct stat st;
	int r;

	if (override) {
		if (stat(override, &st) < 0)
			return error_sys(err, errno, "cgroup root %s",
					 override);
		if (!S_ISDIR(st.st_mode))
			return error_set(err, ENOTDIR,
					 "cgroup root %s: not a directory",
					 override);
		*root = xstrdup(override);
		return 0;
	}
	r = read_file("/proc/self/mountinfo", MOUNTINFO_MAX, &mi, NULL, err);
	if (r < 0)
		return r;
	return cgroup_find_mount(mi, root, err);
}

int
cgroup_create(const char *root, const char *name, struct cgroup *cg,
	      struct error *err)
{
	_cleanup_close_ int root_fd = -1, parent_fd = -1, fd = -1;
	_cleanup_free_ char *buf = NULL, *ppath = NULL;
	unsigned offered, at_root, at_parent;
	int r;

	cgroup_init(cg);
	if (!name_ok(name))
		return error_set(err, EINVAL, "bad cgroup name \"%s\"", name);
	root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return error_sys(err, errno, "open cgroup root %s", root);
	r = read_at(root_fd, root, "cgroup.controllers", CG_FILE_MAX, &buf,
		    err);
	if (r == -ENOENT)
		return error_set(err, ENOENT, "%s is not a cgroup2 hierarchy",
				 root);
	if (r < 0 || (r = cgroup_parse_controllers(buf, &offered, err)) < 0)
		return r;
	r = enable_subtree(root_fd, root, offered, CG_WANTED, &at_root, err);
	if (r < 0)
		return r;

	ppath = xasprintf("%s/%s", root, CGROUP_PARENT);
	/* Another manager's cleanup may remove an empty qctl/ between our
	 * mkdir and the VM's: make it again, a few times. */
	for (int attempt = 0;; attempt++) {
		/* Only root may make or change cgroups here: 0755. */
		if (mkdirat(root_fd, CGROUP_PARENT, 0755) < 0 &&
		    errno != EEXIST)
			return error_sys(err, errno, "mkdir %s", ppath);
		if (parent_fd >= 0)
			close(parent_fd);
		parent_fd =
			openat(root_fd, CGROUP_PARENT,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (parent_fd < 0 && errno == ENOENT && attempt < 3)
			continue;
		if (parent_fd < 0)
			return error_sys(err, errno, "open %s", ppath);
		/* qctl/ holds no process, so it may pass controllers on
		 * (the no-internal-process rule of cgroup v2). */
		r = enable_subtree(parent_fd, ppath, at_root, CG_WANTED,
				   &at_parent, err);
		if (r < 0)
			return r;
		/* The VM's cgroup stays root's: QEMU, another uid, can
		 * neither raise its own limits nor move itself out. */
		if (mkdirat(parent_fd, name, 0755) == 0)
			break;
		if (errno == ENOENT && attempt < 3)
			continue;
		if (errno == EEXIST)
			return error_set(err, EEXIST,
					 "cgroup %s/%s exists (a leftover? "
					 "try qctl gc)",
					 ppath, name);
		return error_sys(err, errno, "mkdir %s/%s", ppath, name);
	}
	fd = openat(parent_fd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = error_sys(err, errno, "open %s/%s", ppath, name);
		unlinkat(parent_fd, name, AT_REMOVEDIR);
		return r;
	}
	/* A child's cgroup.controllers is its parent's subtree_control. */
	cg->controllers = at_parent;
	cg->missing = CG_WANTED & ~at_parent;
	cg->features = probe_features(fd);
	cg->path = xasprintf("%s/%s", ppath, name);
	cg->name = xstrdup(name);
	cg->dirfd = steal_fd(&fd);
	cg->parent_fd = steal_fd(&parent_fd);
	return 0;
}

int
cgroup_open(const char *root, const char *name, struct cgroup *cg,
	    struct error *err)
{
	_cleanup_close_ int parent_fd = -1, fd = -1;
	_cleanup_free_ char *buf = NULL, *ppath = NULL;
	unsigned mask = 0;
	int r;

	cgroup_init(cg);
	if (!name_ok(name))
		return error_set(err, EINVAL, "bad cgroup name \"%s\"", name);
	ppath = xasprintf("%s/%s", root, CGROUP_PARENT);
	parent_fd = open(ppath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent_fd < 0)
		return error_sys(err, errno, "open %s", ppath);
	fd = openat(parent_fd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return error_sys(err, errno, "open %s/%s", ppath, name);
	cg->path = xasprintf("%s/%s", ppath, name);
	r = read_at(fd, cg->path, "cgroup.controllers", CG_FILE_MAX, &buf, err);
	if (r == 0)
		r = cgroup_parse_controllers(buf, &mask, err);
	if (r < 0 && r != -ENOENT) {
		free(cg->path);
		cg->path = NULL;
		return r;
	}
	cg->controllers = mask;
	cg->missing = CG_WANTED & ~mask;
	cg->features = probe_features(fd);
	cg->name = xstrdup(name);
	cg->dirfd = steal_fd(&fd);
	cg->parent_fd = steal_fd(&parent_fd);
	return 0;
}

/* Write one limit; a missing file demotes *how to fallback. */
static int
write_limit(struct cgroup *cg, const char *file, const char *val,
	    enum limit_how *how, enum limit_how fallback, struct error *err)
{
	int r;

	if (*how != LIMIT_KERNEL)
		return 0;
	r = write_at(cg->dirfd, cg->path, file, val, err);
	if (r == -ENOENT) {
		*how = fallback;
		return 0;
	}
	return r;
}

static void
io_field(char *buf, size_t len, const char *key, uint64_t v)
{
	if (v)
		snprintf(buf, len, " %s=%" PRIu64, key, v);
	else
		snprintf(buf, len, " %s=max", key);
}

int
cgroup_apply_limits(struct cgroup *cg, const struct limit_set *l,
		    struct limit_plan *p, struct error *err)
{
	char v[160];
	int r;

	if (p->how[LIMIT_CPUS] == LIMIT_KERNEL) {
		uint64_t quota, period;

		limit_cpu_max(l->cpus, &quota, &period);
		snprintf(v, sizeof(v), "%" PRIu64 " %" PRIu64, quota, period);
		r = write_limit(cg, "cpu.max", v, &p->how[LIMIT_CPUS],
				LIMIT_UNENFORCED, err);
		if (r < 0)
			return r;
	}
	if (p->how[LIMIT_MEMORY] == LIMIT_KERNEL) {
		snprintf(v, sizeof(v), "%" PRIu64, l->memory_bytes);
		r = write_limit(cg, "memory.max", v, &p->how[LIMIT_MEMORY],
				LIMIT_POLL, err);
		if (r < 0)
			return r;
		/* An OOM kill takes the whole VM, not a random thread's
		 * process (there is one process, but say so). */
		if (p->how[LIMIT_MEMORY] == LIMIT_KERNEL)
			write_at(cg->dirfd, cg->path, "memory.oom.group", "1",
				 NULL);
	}
	if (p->how[LIMIT_MEMORY] != LIMIT_KERNEL &&
	    p->how[LIMIT_SWAP] == LIMIT_KERNEL)
		p->how[LIMIT_SWAP] = LIMIT_POLL;
	snprintf(v, sizeof(v), "%" PRIu64, l->swap_bytes);
	/* Without swap accounting nothing bounds swap: say so. */
	r = write_limit(cg, "memory.swap.max", v, &p->how[LIMIT_SWAP],
			LIMIT_UNENFORCED, err);
	if (r < 0)
		return r;
	snprintf(v, sizeof(v), "%" PRIu64, l->pids);
	r = write_limit(cg, "pids.max", v, &p->how[LIMIT_PIDS], LIMIT_POLL,
			err);
	if (r < 0)
		return r;
	if (p->how[LIMIT_IO] == LIMIT_KERNEL) {
		size_t o = snprintf(v, sizeof(v), "%u:%u", l->io.major,
				    l->io.minor);

		io_field(v + o, sizeof(v) - o, "rbps", l->io.rbps);
		o = strlen(v);
		io_field(v + o, sizeof(v) - o, "wbps", l->io.wbps);
		o = strlen(v);
		io_field(v + o, sizeof(v) - o, "riops", l->io.riops);
		o = strlen(v);
		io_field(v + o, sizeof(v) - o, "wiops", l->io.wiops);
		r = write_limit(cg, "io.max", v, &p->how[LIMIT_IO],
				LIMIT_UNENFORCED, err);
		if (r == -ENODEV)
			error_prefix(err, "io.max needs a whole disk, not a "
					  "partition");
		if (r < 0)
			return r;
	}
	return 0;
}

int
cgroup_open_procs(const struct cgroup *cg, struct error *err)
{
	int fd = openat(cg->dirfd, "cgroup.procs",
			O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return error_sys(err, errno, "open %s/cgroup.procs", cg->path);
	return fd;
}

int
cgroup_enter_self(int procs_fd)
{
	ssize_t n;

	/* "0" is the writer itself: no pid to format, nothing allocated. */
	do
		n = write(procs_fd, "0", 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 1 ? 0 : -EIO;
}

/* Read one stat file: 1 read, 0 absent, <0 error (in err). */
static int
stat_file(const struct cgroup *cg, const char *file, char **buf,
	  struct error *err)
{
	int r = read_at(cg->dirfd, cg->path, file, CG_FILE_MAX, buf, err);

	/* No such controller, or PSI disabled (psi=0): absent, not wrong. */
	if (r == -ENOENT || r == -EOPNOTSUPP || r == -ENODEV)
		return 0;
	return r < 0 ? r : 1;
}

/* Remember the first failure of many: its code and message. */
static void
keep_first(int r, int *first, const struct error *e, struct error *err)
{
	if (r < 0 && !*first) {
		*first = r;
		if (err)
			*err = *e;
	}
}

int
cgroup_read_stats(const struct cgroup *cg, struct cgroup_stats *st,
		  struct error *err)
{
	static const struct {
		const char *file;
		int (*parse)(const char *, struct cgroup_stats *,
			     struct error *);
	} keyed[] = {
		{"cpu.stat", cgroup_parse_cpu_stat},
		{"memory.events", cgroup_parse_memory_events},
		{"memory.stat", cgroup_parse_memory_stat},
		{"io.stat", cgroup_parse_io_stat},
	};
	const struct {
		const char *file;
		uint64_t *val;
		unsigned bit;
	} single[] = {
		{"memory.current", &st->mem_current, CGS_MEM},
		{"memory.peak", &st->mem_peak, CGS_MEM_PEAK},
		{"memory.swap.current", &st->swap_current, CGS_SWAP},
		{"pids.current", &st->pids_current, CGS_PIDS},
	};
	const struct {
		const char *file;
		struct cgroup_psi *psi;
		unsigned bit;
	} psi[] = {
		{"cpu.pressure", &st->cpu_psi, CGS_CPU_PSI},
		{"memory.pressure", &st->mem_psi, CGS_MEM_PSI},
		{"io.pressure", &st->io_psi, CGS_IO_PSI},
	};
	static const char *const pids_keys[] = {"max"};
	struct error e;
	int first = 0, r;

	/* Go on past a bad file, so that one odd file costs one field. */
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < ARRAY_SIZE(keyed); i++) {
		_cleanup_free_ char *buf = NULL;

		r = stat_file(cg, keyed[i].file, &buf, &e);
		if (r > 0 && (r = keyed[i].parse(buf, st, &e)) < 0)
			error_prefix(&e, "%s", cg->path);
		keep_first(r, &first, &e, err);
	}
	for (size_t i = 0; i < ARRAY_SIZE(single); i++) {
		_cleanup_free_ char *buf = NULL;

		r = stat_file(cg, single[i].file, &buf, &e);
		if (r > 0) {
			r = cgroup_parse_u64(buf, single[i].val, &e);
			if (r < 0)
				error_prefix(&e, "%s/%s", cg->path,
					     single[i].file);
			else
				st->have |= single[i].bit;
		}
		keep_first(r, &first, &e, err);
	}
	for (size_t i = 0; i < ARRAY_SIZE(psi); i++) {
		_cleanup_free_ char *buf = NULL;

		r = stat_file(cg, psi[i].file, &buf, &e);
		if (r > 0) {
			r = cgroup_parse_pressure(buf, psi[i].psi, &e);
			if (r < 0)
				error_prefix(&e, "%s/%s", cg->path,
					     psi[i].file);
			else
				st->have |= psi[i].bit;
		}
		keep_first(r, &first, &e, err);
	}
	{
		_cleanup_free_ char *buf = NULL;
		unsigned found = 0;

		r = stat_file(cg, "pids.events", &buf, &e);
		if (r > 0) {
			r = cgroup_parse_keyed(buf, pids_keys, &st->pids_denied,
					       1, &found, &e);
			if (r < 0)
				error_prefix(&e, "%s/pids.events", cg->path);
			else if (found)
				st->have |= CGS_PIDS_EVENTS;
		}
		keep_first(r, &first, &e, err);
	}
	return first;
}

int
cgroup_read_events(const struct cgroup *cg, bool *populated, bool *frozen,
		   struct error *err)
{
	static const char *const keys[] = {"populated", "frozen"};
	_cleanup_free_ char *buf = NULL;
	uint64_t v[2] = {0, 0};
	unsigned found;
	int r;

	r = read_at(cg->dirfd, cg->path, "cgroup.events", CG_FILE_MAX, &buf,
		    err);
	if (r < 0)
		return r;
	/* "frozen" is 5.2+: an older kernel never freezes. */
	r = parse_need(buf, "cgroup.events", keys, v, 2, 1, &found, err);
	if (r < 0)
		return r;
	if (populated)
		*populated = v[0] != 0;
	if (frozen)
		*frozen = v[1] != 0;
	return 0;
}

int
cgroup_read_pids(const struct cgroup *cg, pid_t **pids, size_t *n,
		 struct error *err)
{
	_cleanup_free_ char *buf = NULL;
	int r;

	r = read_at(cg->dirfd, cg->path, "cgroup.procs", CG_PROCS_MAX, &buf,
		    err);
	if (r < 0)
		return r;
	return cgroup_parse_pids(buf, pids, n, err);
}

int
cgroup_freeze(const struct cgroup *cg, bool frozen, struct error *err)
{
	int r = write_at(cg->dirfd, cg->path, "cgroup.freeze",
			 frozen ? "1" : "0", err);

	if (r == -ENOENT)
		return error_set(err, EOPNOTSUPP,
				 "%s: no cgroup.freeze (kernel < 5.2)",
				 cg->path);
	return r;
}

bool
cgroup_missing_note(const struct cgroup *cg, char *buf, size_t len)
{
	static bool said;
	char names[64];

	if (!cg->missing || __atomic_exchange_n(&said, true, __ATOMIC_SEQ_CST))
		return false;
	mask_names(cg->missing, names, sizeof(names));
	snprintf(buf, len,
		 "cgroup v2 gives %s no %s controller%s (bound to cgroup v1, "
		 "or not offered by the kernel): limits that need %s are "
		 "polled from /proc or not enforced",
		 cg->path, names, strchr(names, ',') ? "s" : "",
		 strchr(names, ',') ? "them" : "it");
	return true;
}

/* SIGKILL each pid in cgroup.procs (no cgroup.kill): 0, or <0. */
static int
kill_listed(const struct cgroup *cg, struct error *err)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n;
	int r = cgroup_read_pids(cg, &pids, &n, err);

	if (r < 0)
		return r;
	/* Frozen, the tasks cannot fork between our read and our kill;
	 * SIGKILL still ends frozen tasks under the v2 freezer. */
	for (size_t i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	return 0;
}

void
cgroup_close(struct cgroup *cg)
{
	if (cg->dirfd >= 0)
		close(cg->dirfd);
	if (cg->parent_fd >= 0)
		close(cg->parent_fd);
	free(cg->path);
	free(cg->name);
	cgroup_init(cg);
}

/* Wait up to ms for a change of cgroup.events (POLLPRI), or just ms. */
static void
wait_events(int events_fd, int ms)
{
	struct pollfd pfd = {.fd = events_fd, .events = POLLPRI};

	if (ms <= 0)
		return;
	if (events_fd >= 0)
		poll(&pfd, 1, ms);
	else
		poll(NULL, 0, ms);
}

int
cgroup_destroy(struct cgroup *cg, int timeout_ms, struct error *err)
{
	_cleanup_close_ int events_fd = -1;
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	bool by_list = false;
	int r = 0;

	if (cg->dirfd < 0)
		return 0;
	if (write_at(cg->dirfd, cg->path, "cgroup.kill", "1", NULL) < 0) {
		/* Before 5.14: freeze so nothing forks, then kill by pid. */
		by_list = true;
		write_at(cg->dirfd, cg->path, "cgroup.freeze", "1", NULL);
	}
	events_fd = openat(cg->dirfd, "cgroup.events",
			   O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	for (;;) {
		int64_t left;
		bool populated = true;

		if (by_list && (r = kill_listed(cg, err)) < 0 && r != -ENOENT)
			break;
		if (unlinkat(cg->parent_fd, cg->name, AT_REMOVEDIR) == 0 ||
		    errno == ENOENT) {
			r = 0;
			break;
		}
		/* EBUSY: tasks are still dying; anything else is final. */
		if (errno != EBUSY) {
			r = error_sys(err, errno, "rmdir %s", cg->path);
			break;
		}
		left = deadline - now_ms();
		if (left <= 0) {
			r = error_set(err, ETIMEDOUT,
				      "rmdir %s: still busy after %d ms",
				      cg->path, timeout_ms);
			break;
		}
		if (events_fd >= 0) {
			char buf[256];
			ssize_t n = pread(events_fd, buf, sizeof(buf) - 1, 0);

			if (n > 0) {
				buf[n] = '\0';
				populated = !strstr(buf, "populated 0");
			}
		}
		/* Empty but busy happens for a moment after the last exit. */
		wait_events(events_fd, populated ? (left < 100 ? left : 100)
						 : (left < 10 ? left : 10));
	}
	cgroup_close(cg);
	return r;
}

int
cgroup_gc(const char *root, int timeout_ms, unsigned *reaped, struct error *err)
{
	_cleanup_free_ char *ppath = xasprintf("%s/%s", root, CGROUP_PARENT);
	struct dirent *de;
	unsigned n = 0;
	int first = 0;
	DIR *d;

	if (reaped)
		*reaped = 0;
	d = opendir(ppath);
	if (!d)
		return errno == ENOENT
			       ? 0
			       : error_sys(err, errno, "open %s", ppath);
	while ((de = readdir(d))) {
		struct cgroup cg;
		size_t digits = strspn(de->d_name, "0123456789");
		uint64_t pid;
		int r;

		if (digits == 0 || de->d_name[digits] != '-' ||
		    parse_u64_dec(de->d_name, digits, &pid) < 0 || pid > INT_MAX)
			continue;
		/* A live manager (or a pid we may not signal) owns it. */
		if (pid == 0 || kill((pid_t)pid, 0) == 0 || errno == EPERM)
			continue;
		r = cgroup_open(root, de->d_name, &cg, first ? NULL : err);
		if (r == 0)
			r = cgroup_destroy(&cg, timeout_ms, first ? NULL : err);
		if (r < 0 && !first)
			first = r;
		else if (r == 0)
			n++;
	}
	closedir(d);
	if (reaped)
		*reaped = n;
	return first;
}

/*
 * jail.c - the namespaces and the root that QEMU runs in.
 *
 * The parent works out what QEMU needs (jail_for_qemu: its binary, the
 * libraries it and its modules load, its firmware) into a list of
 * entries; the child, between fork and exec, builds a root of exactly
 * those (jail_enter) without allocating.  An escape from QEMU then finds
 * no host file it was not meant to read, no host network, no abstract
 * Unix socket of the host, and no other process in /proc.
 */
#include "jail.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

/* ---- paths ----------------------------------------------------------------
 */

int
jail_path_check(const char *path)
{
	size_t len = path ? strlen(path) : 0;
	const char *c;

	if (len < 2 || len >= JAIL_PATH_MAX || path[0] != '/' ||
	    path[len - 1] == '/')
		return -EINVAL;
	for (c = path; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return -EINVAL;
	/* every component: not empty, not ".", not ".." */
	for (c = path; c; c = strchr(c + 1, '/')) {
		const char *n = c + 1, *end = strchr(n, '/');
		size_t l = end ? (size_t)(end - n) : strlen(n);

		if (l == 0 || (l == 1 && n[0] == '.') ||
		    (l == 2 && n[0] == '.' && n[1] == '.'))
			return -EINVAL;
	}
	return 0;
}

bool
jail_path_under(const char *path, const char *dir)
{
	size_t l = strlen(dir);

	return !strncmp(path, dir, l) && (path[l] == '\0' || path[l] == '/');
}

const struct jail_entry *
jail_find(const struct jail *j, const char *path)
{
	for (size_t i = 0; i < j->n; i++)
		if (!strcmp(j->e[i].path, path))
			return &j->e[i];
	return NULL;
}

static void
entry_free(struct jail_entry *e)
{
	free(e->path);
	free(e->target);
}

int
jail_add(struct jail *j, enum jail_kind kind, unsigned flags, const char *path,
	 const char *target)
{
	struct jail_entry *e;
	size_t w = 0;

	if (jail_path_check(path) < 0 ||
	    (kind == JAIL_SYMLINK &&
	     (!target || !*target || strlen(target) >= JAIL_PATH_MAX)))
		return -EINVAL;
	for (size_t i = 0; i < j->n; i++) {
		e = &j->e[i];
		if (!strcmp(e->path, path)) {
			if (e->kind != kind ||
			    (kind == JAIL_SYMLINK && strcmp(e->target, target)))
				return -EEXIST;
			e->flags |= flags;
			return 0;
		}
		/* already visible through a bound directory */
		if (e->kind == JAIL_DIR && jail_path_under(path, e->path))
			return 0;
	}
	if (kind == JAIL_DIR) {
		/* a directory bound over entries hides them: drop them */
		for (size_t i = 0; i < j->n; i++) {
			if (jail_path_under(j->e[i].path, path))
				entry_free(&j->e[i]);
			else
				j->e[w++] = j->e[i];
		}
		j->n = w;
	}
	if (j->n == j->cap) {
		j->cap = j->cap ? 2 * j->cap : 64;
		j->e = xrealloc(j->e, j->cap * sizeof(*j->e));
	}
	e = &j->e[j->n++];
	e->kind = kind;
	e->flags = flags;
	e->path = xstrdup(path);
	e->target = target ? xstrdup(target) : NULL;
	return 0;
}

void
jail_free(struct jail *j)
{
	for (size_t i = 0; i < j->n; i++)
		entry_free(&j->e[i]);
	free(j->e);
	memset(j, 0, sizeof(*j));
}

/* Append "/" and n bytes of comp to a path of JAIL_PATH_MAX. */
static int
path_push(char *p, const char *comp, size_t n)
{
	size_t l = strlen(p);

	if (l + 1 + n >= JAIL_PATH_MAX)
		return -ENAMETOOLONG;
	p[l] = '/';
	memcpy(p + l + 1, comp, n);
	p[l + 1 + n] = '\0';
	return 0;
}

int
jail_add_resolved(struct jail *j, const char *root, const char *path,
		  unsigned flags, char *real, struct error *err)
{
	char todo[2 * JAIL_PATH_MAX], cur[JAIL_PATH_MAX] = "";
	char host[2 * JAIL_PATH_MAX], link[JAIL_PATH_MAX];
	const char *rest;
	int hops = 0, r;

	if (!root)
		root = "";
	if (path[0] != '/' || strlen(path) >= sizeof(todo))
		return error_set(err, EINVAL, "jail: bad path %s", path);
	strcpy(todo, path);
	rest = todo;
	for (;;) {
		const char *comp, *end;
		size_t n;
		struct stat st;
		ssize_t ln;

		while (*rest == '/')
			rest++;
		if (!*rest)
			return error_set(err, EINVAL, "jail: %s is a root",
					 path);
		comp = rest;
		end = strchr(comp, '/');
		n = end ? (size_t)(end - comp) : strlen(comp);
		rest = comp + n;
		if (n == 1 && comp[0] == '.')
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			char *slash = strrchr(cur, '/');

			if (slash)
				*slash = '\0';
			continue;
		}
		r = path_push(cur, comp, n);
		if (r < 0)
			return error_sys(err, -r, "jail: %s", path);
		snprintf(host, sizeof(host), "%s%s", root, cur);
		if (lstat(host, &st) < 0)
			return error_sys(err, errno, "jail: %s (for %s)", host,
					 path);
		while (*rest == '/')
			rest++;
		if (S_ISLNK(st.st_mode)) {
			char next[2 * JAIL_PATH_MAX];
			char *slash;

			if (++hops > 40)
				return error_sys(err, ELOOP, "jail: %s", path);
			ln = readlink(host, link, sizeof(link) - 1);
			if (ln <= 0)
				return error_sys(err, ln < 0 ? errno : EINVAL,
						 "jail: readlink %s", host);
			link[ln] = '\0';
			r = jail_add(j, JAIL_SYMLINK, 0, cur, link);
			if (r < 0)
				return error_sys(err, -r, "jail: symlink %s",
						 cur);
			/* go on from the link's directory with its text */
			slash = strrchr(cur, '/');
			*slash = '\0';
			if (link[0] == '/')
				cur[0] = '\0';
			if (snprintf(next, sizeof(next), "%s/%s", link, rest) >=
			    (int)sizeof(next))
				return error_sys(err, ENAMETOOLONG, "jail: %s",
						 path);
			strcpy(todo, next);
			rest = todo;
			continue;
		}
		if (*rest) {
			if (!S_ISDIR(st.st_mode))
				return error_sys(err, ENOTDIR, "jail: %s",
						 host);
			continue;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			return error_set(err, EINVAL,
					 "jail: %s is neither a "
					 "file nor a directory",
					 host);
		r = jail_add(j, S_ISDIR(st.st_mode) ? JAIL_DIR : JAIL_FILE,
			     flags, cur, NULL);
		if (r < 0)
			return error_sys(err, -r, "jail: %s", cur);
		if (real)
			strcpy(real, cur);
		return 0;
	}
}

/* ---- ELF ------------------------------------------------------------------
 */

#define ELF_MAX_PHDRS 128
#define ELF_MAX_DYN 4096
#define ELF_MAX_NEEDED 256
#define ELF_MAX_STRTAB (1u << 20)

void
jail_elf_free(struct jail_elf *e)
{
	for (size_t i = 0; i < e->n_needed; i++)
		free(e->needed[i]);
	free(e->needed);
	free(e->interp);
	free(e->runpath);
	memset(e, 0, sizeof(*e));
}

/* File offset of virtual address v (in a PT_LOAD's file part), or -1. */
static int64_t
vaddr_off(const Elf64_Phdr *ph, int n, uint64_t v)
{
	for (int i = 0; i < n; i++)
		if (ph[i].p_type == PT_LOAD && v >= ph[i].p_vaddr &&
		    v - ph[i].p_vaddr < ph[i].p_filesz)
			return (int64_t)(ph[i].p_offset + (v - ph[i].p_vaddr));
	return -1;
}

/* A NUL-terminated string at off of a table of size sz. */
static char *
tab_str(const char *tab, uint64_t sz, uint64_t off)
{
	if (off >= sz || !memchr(tab + off, '\0', sz - off))
		return NULL;
	return xstrdup(tab + off);
}

static int
elf_parse(jail_read_fn rd, void *ctx, struct jail_elf *out, struct error *err)
{
	Elf64_Ehdr eh;
	_cleanup_free_ Elf64_Phdr *ph = NULL;
	_cleanup_free_ Elf64_Dyn *dyn = NULL;
	_cleanup_free_ char *tab = NULL;
	uint64_t needed[ELF_MAX_NEEDED], strtab = 0, strsz = 0;
	uint64_t runpath = UINT64_MAX, rpath = UINT64_MAX;
	size_t nneeded = 0, ndyn = 0;
	int64_t toff;
	int r;

	r = rd(ctx, 0, &eh, sizeof(eh));
	if (r < 0)
		return error_sys(err, -r, "ELF header");
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > ELF_MAX_PHDRS)
		return error_set(err, EINVAL,
				 "not a 64-bit little-endian "
				 "ELF object");
	out->machine = eh.e_machine;
	ph = xcalloc(eh.e_phnum, sizeof(*ph));
	r = rd(ctx, eh.e_phoff, ph, eh.e_phnum * sizeof(*ph));
	if (r < 0)
		return error_sys(err, -r, "ELF program headers");
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_INTERP && !out->interp) {
			char buf[JAIL_PATH_MAX];

			if (ph[i].p_filesz < 2 || ph[i].p_filesz > sizeof(buf))
				goto bad;
			r = rd(ctx, ph[i].p_offset, buf, ph[i].p_filesz);
			if (r < 0)
				return error_sys(err, -r, "ELF interpreter");
			if (buf[ph[i].p_filesz - 1] != '\0')
				goto bad;
			out->interp = xstrdup(buf);
		} else if (ph[i].p_type == PT_DYNAMIC && !dyn) {
			if (ph[i].p_filesz % sizeof(Elf64_Dyn) ||
			    ph[i].p_filesz / sizeof(Elf64_Dyn) > ELF_MAX_DYN)
				goto bad;
			ndyn = ph[i].p_filesz / sizeof(Elf64_Dyn);
			dyn = xcalloc(ndyn ? ndyn : 1, sizeof(*dyn));
			r = rd(ctx, ph[i].p_offset, dyn, ndyn * sizeof(*dyn));
			if (r < 0)
				return error_sys(err, -r,
						 "ELF dynamic section");
		}
	}
	for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
		switch (dyn[i].d_tag) {
		case DT_NEEDED:
			if (nneeded == ELF_MAX_NEEDED)
				goto bad;
			needed[nneeded++] = dyn[i].d_un.d_val;
			break;
		case DT_STRTAB:
			strtab = dyn[i].d_un.d_ptr;
			break;
		case DT_STRSZ:
			strsz = dyn[i].d_un.d_val;
			break;
		case DT_RUNPATH:
			runpath = dyn[i].d_un.d_val;
			break;
		case DT_RPATH:
			rpath = dyn[i].d_un.d_val;
			break;
		}
	}
	if (!nneeded && runpath == UINT64_MAX && rpath == UINT64_MAX)
		return 0;
	toff = vaddr_off(ph, eh.e_phnum, strtab);
	if (toff < 0 || strsz == 0 || strsz > ELF_MAX_STRTAB)
		goto bad;
	tab = xmalloc(strsz);
	r = rd(ctx, toff, tab, strsz);
	if (r < 0)
		return error_sys(err, -r, "ELF string table");
	if (runpath == UINT64_MAX)
		runpath = rpath;
	if (runpath != UINT64_MAX) {
		out->runpath = tab_str(tab, strsz, runpath);
		if (!out->runpath)
			goto bad;
	}
	out->needed = xcalloc(nneeded ? nneeded : 1, sizeof(char *));
	for (size_t i = 0; i < nneeded; i++) {
		out->needed[i] = tab_str(tab, strsz, needed[i]);
		if (!out->needed[i])
			goto bad;
		out->n_needed++;
		if (!out->needed[i][0])
			goto bad;
	}
	return 0;
bad:
	return error_set(err, EINVAL, "malformed ELF object");
}

int
jail_elf_parse(jail_read_fn rd, void *ctx, struct jail_elf *out,
	       struct error *err)
{
	int r;

	memset(out, 0, sizeof(*out));
	r = elf_parse(rd, ctx, out, err);
	/* A failure, even a read error, leaves nothing to free. */
	if (r < 0)
		jail_elf_free(out);
	return r;
}

/* ---- ld.so.conf -----------------------------------------------------------
 */

void
jail_ldconf_parse(const char *buf, void (*dir)(const char *, void *),
		  void (*include)(const char *, void *), void *opaque)
{
	const char *line = buf;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *hash = memchr(line, '#', len);
		char tmp[JAIL_PATH_MAX + 16];
		char *s, *e;

		if (hash)
			len = hash - line;
		if (len < sizeof(tmp)) {
			memcpy(tmp, line, len);
			tmp[len] = '\0';
			for (s = tmp; *s == ' ' || *s == '\t'; s++)
				;
			e = s + strlen(s);
			while (e > s &&
			       (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				*--e = '\0';
			if (!strncmp(s, "include", 7) &&
			    (s[7] == ' ' || s[7] == '\t')) {
				for (s += 8; *s == ' ' || *s == '\t'; s++)
					;
				if (*s)
					include(s, opaque);
			} else if (s[0] == '/') {
				dir(s, opaque);
			}
		}
		line = end ? end + 1 : NULL;
	}
}

/* ---- QEMU's jail ------------------------------------------------------------
 */

struct strlist {
	char **s;
	size_t n;
};

static bool
strlist_has(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->s[i], s))
			return true;
	return false;
}

static void
strlist_add(struct strlist *l, const char *s)
{
	if (strlist_has(l, s))
		return;
	l->s = xrealloc(l->s, (l->n + 1) * sizeof(char *));
	l->s[l->n++] = xstrdup(s);
}

static void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->s[i]);
	free(l->s);
	l->s = NULL;
	l->n = 0;
}

struct ldconf_ctx {
	struct strlist *dirs;
	int depth;
};

static void ldconf_load(const char *path, struct strlist *dirs, int depth);

static void
ldconf_dir(const char *d, void *opaque)
{
	struct ldconf_ctx *c = opaque;

	strlist_add(c->dirs, d);
}

static void
ldconf_include(const char *pattern, void *opaque)
{
	struct ldconf_ctx *c = opaque;
	glob_t g;

	if (c->depth > 4 || pattern[0] != '/' ||
	    glob(pattern, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		ldconf_load(g.gl_pathv[i], c->dirs, c->depth + 1);
	globfree(&g);
}

static void
ldconf_load(const char *path, struct strlist *dirs, int depth)
{
	_cleanup_free_ char *buf = NULL;
	struct ldconf_ctx c = {dirs, depth};

	if (read_file(path, 1 << 20, &buf, NULL, NULL) == 0)
		jail_ldconf_parse(buf, ldconf_dir, ldconf_include, &c);
}

static int
fd_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	ssize_t r = pread(*(int *)ctx, buf, n, (off_t)off);

	if (r < 0)
		return -errno;
	return (size_t)r == n ? 0 : -EIO;
}

static int
elf_parse_path(const char *path, struct jail_elf *e, struct error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return error_sys(err, errno, "open %s", path);
	r = jail_elf_parse(fd_read, &fd, e, err);
	if (r < 0)
		error_prefix(err, "%s", path);
	return r;
}

/* Work list of ELF objects (host real paths) to follow. */
struct closure {
	struct jail *j;
	struct strlist seen, todo;
	struct strlist search; /* ld.so.conf and default directories */
	uint16_t machine;
};

/* Find a library name as the loader would, for an object in dir. */
static int
lib_find(struct closure *c, const char *name, const char *runpath,
	 const char *objdir, char *real, struct error *err)
{
	struct strlist dirs = {0};
	int r = -ENOENT;

	if (runpath) {
		_cleanup_free_ char *copy = xstrdup(runpath);
		char *save = NULL;

		for (char *d = strtok_r(copy, ":", &save); d;
		     d = strtok_r(NULL, ":", &save)) {
			_cleanup_free_ char *x = NULL;

			if (!strncmp(d, "$ORIGIN", 7))
				x = xasprintf("%s%s", objdir, d + 7);
			else if (!strncmp(d, "${ORIGIN}", 9))
				x = xasprintf("%s%s", objdir, d + 9);
			else if (d[0] == '/')
				x = xstrdup(d);
			if (x)
				strlist_add(&dirs, x);
		}
	}
	for (size_t i = 0; i < c->search.n; i++)
		strlist_add(&dirs, c->search.s[i]);
	for (size_t i = 0; i < dirs.n && r == -ENOENT; i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", dirs.s[i], name);
		struct jail_elf e;

		if (access(p, R_OK) < 0)
			continue;
		/* a library of another architecture is skipped, as the
		 * loader skips it */
		if (elf_parse_path(p, &e, NULL) < 0)
			continue;
		if (e.machine == c->machine)
			r = jail_add_resolved(c->j, NULL, p, JAIL_EXEC, real,
					      err);
		jail_elf_free(&e);
	}
	strlist_free(&dirs);
	return r;
}

/* Add everything obj (a host path) loads; strict: a missing library is
 * an error (for QEMU itself; a module that cannot load stays unused). */
static int
closure_follow(struct closure *c, const char *obj, bool strict,
	       struct error *err)
{
	/* realpath() needs PATH_MAX bytes (into real[], shorter, a long
	 * path would overflow, and _FORTIFY_SOURCE aborts at once): its own
	 * allocation, then our bound */
	_cleanup_free_ char *first = realpath(obj, NULL);
	char real[JAIL_PATH_MAX];
	int r;

	if (!first)
		return error_sys(err, errno, "jail: %s", obj);
	if (strlen(first) >= JAIL_PATH_MAX)
		return error_set(err, ENAMETOOLONG, "jail: %s: path too long",
				 obj);
	strlist_add(&c->todo, first);
	while (c->todo.n) {
		_cleanup_free_ char *o = c->todo.s[--c->todo.n];
		_cleanup_free_ char *dir = NULL;
		struct jail_elf e;

		if (strlist_has(&c->seen, o))
			continue;
		strlist_add(&c->seen, o);
		r = elf_parse_path(o, &e, err);
		if (r < 0)
			return r;
		if (!c->machine)
			c->machine = e.machine;
		dir = xstrdup(o);
		*strrchr(dir, '/') = '\0';
		if (e.interp) {
			r = jail_add_resolved(c->j, NULL, e.interp, JAIL_EXEC,
					      NULL, err);
			if (r < 0) {
				jail_elf_free(&e);
				return r;
			}
		}
		for (size_t i = 0; i < e.n_needed; i++) {
			const char *n = e.needed[i];

			if (strchr(n, '/'))
				r = jail_add_resolved(c->j, NULL, n, JAIL_EXEC,
						      real, err);
			else
				r = lib_find(c, n, e.runpath, dir, real, err);
			if (r == -ENOENT && !strchr(n, '/'))
				r = error_set(err, ENOENT,
					      "jail: library %s "
					      "(needed by %s) not found",
					      n, o);
			if (r < 0) {
				jail_elf_free(&e);
				if (strict)
					return r;
				error_clear(err);
				break;
			}
			if (!strlist_has(&c->seen, real))
				strlist_add(&c->todo, real);
		}
		jail_elf_free(&e);
	}
	return 0;
}

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#else
#define MULTIARCH "unknown"
#endif

/* Add dir (if it exists) and, for each symlink in it (and one level of
 * subdirectories) that leaves it, the directory the link ends in. */
static int
add_data_dir(struct jail *j, const char *dir, unsigned flags, int depth,
	     struct error *err)
{
	char real[JAIL_PATH_MAX];
	DIR *d;
	struct dirent *de;
	int r;

	if (access(dir, F_OK) < 0)
		return 0;
	r = jail_add_resolved(j, NULL, dir, flags, real, err);
	if (r < 0)
		return r;
	d = opendir(real);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		_cleanup_free_ char *p = xasprintf("%s/%s", real, de->d_name);
		char target[PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.' || lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			/* firmware descriptors and the like, one level */
			if (depth == 0)
				r = add_data_dir(j, p, flags, 1, err);
			if (r < 0)
				break;
			continue;
		}
		if (!S_ISLNK(st.st_mode) || !realpath(p, target) ||
		    jail_path_check(target) < 0)
			continue;
		*strrchr(target, '/') = '\0';
		if (jail_path_check(target) < 0)
			continue;
		r = jail_add_resolved(j, NULL, target, flags, NULL, err);
		if (r < 0)
			break;
	}
	closedir(d);
	return r < 0 ? r : 0;
}

static int
jail_build_qemu(struct jail *j, const char *binary, struct error *err)
{
	struct closure c = {.j = j};
	char real[JAIL_PATH_MAX], prefix[JAIL_PATH_MAX];
	const char *bind = getenv("QCTL_JAIL_BIND");
	static const char *const defaults[] = {
		"/lib/" MULTIARCH,
		"/usr/lib/" MULTIARCH,
		"/lib64",
		"/usr/lib64",
		"/lib",
		"/usr/lib",
	};
	static const char *const data[] = {
		"/usr/share/qemu", "/usr/share/seabios",  "/usr/lib/ipxe/qemu",
		"/usr/share/ipxe", "/usr/share/qemu-efi", "/usr/share/OVMF",
		"/usr/share/ovmf",
	};
	static const char *const moddirs[] = {
		"/usr/lib/" MULTIARCH "/qemu",
		"/usr/lib64/qemu",
		"/usr/lib/qemu",
	};
	_cleanup_free_ char *pfx_share = NULL, *pfx_lib = NULL;
	int r;

	r = jail_add_resolved(j, NULL, binary, JAIL_EXEC, real, err);
	if (r < 0)
		return r;
	ldconf_load("/etc/ld.so.conf", &c.search, 0);
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		strlist_add(&c.search, defaults[i]);
	r = closure_follow(&c, real, true, err);
	if (r < 0)
		goto out;
	if (access("/etc/ld.so.cache", R_OK) == 0) {
		r = jail_add_resolved(j, NULL, "/etc/ld.so.cache", 0, NULL,
				      err);
		if (r < 0)
			goto out;
	}
	/* QEMU's data directory is also looked for next to its binary */
	strcpy(prefix, real);
	*strrchr(prefix, '/') = '\0';
	if (strrchr(prefix, '/'))
		*strrchr(prefix, '/') = '\0';
	pfx_share = xasprintf("%s/share/qemu", prefix);
	pfx_lib = xasprintf("%s/lib/" MULTIARCH "/qemu", prefix);
	for (size_t i = 0; i <= ARRAY_SIZE(moddirs); i++) {
		const char *m = i < ARRAY_SIZE(moddirs) ? moddirs[i] : pfx_lib;
		DIR *d;
		struct dirent *de;

		if (access(m, F_OK) < 0 || jail_path_check(m) < 0)
			continue;
		/* modules are dlopen()ed: executable */
		r = jail_add_resolved(j, NULL, m, JAIL_EXEC, NULL, err);
		if (r < 0)
			goto out;
		d = opendir(m);
		while (d && (de = readdir(d))) {
			size_t l = strlen(de->d_name);
			_cleanup_free_ char *p = NULL;

			if (l < 4 || strcmp(de->d_name + l - 3, ".so"))
				continue;
			p = xasprintf("%s/%s", m, de->d_name);
			closure_follow(&c, p, false, NULL);
		}
		if (d)
			closedir(d);
	}
	for (size_t i = 0; i <= ARRAY_SIZE(data); i++) {
		const char *dd = i < ARRAY_SIZE(data) ? data[i] : pfx_share;

		if (jail_path_check(dd) < 0)
			continue;
		r = add_data_dir(j, dd, 0, 0, err);
		if (r < 0)
			goto out;
	}
	if (bind && *bind) {
		_cleanup_free_ char *copy = xstrdup(bind);
		char *save = NULL;

		for (char *p = strtok_r(copy, ":", &save); p;
		     p = strtok_r(NULL, ":", &save)) {
			r = jail_add_resolved(j, NULL, p, 0, NULL, err);
			if (r < 0) {
				error_prefix(err, "QCTL_JAIL_BIND");
				goto out;
			}
		}
	}
	r = 0;
out:
	strlist_free(&c.seen);
	strlist_free(&c.todo);
	strlist_free(&c.search);
	return r;
}

int
jail_for_qemu(const char *binary, const struct jail **out, struct error *err)
{
	static struct jail cached;
	static char cached_bin[JAIL_PATH_MAX];
	static struct stat cached_st;
	static char cached_bind[1024];
	const char *bind = getenv("QCTL_JAIL_BIND");
	struct stat st;
	int r;

	if (stat(binary, &st) < 0)
		return error_sys(err, errno, "%s", binary);
	/* one work-out per binary: a serving manager starts many QEMUs */
	if (cached.n && !strcmp(cached_bin, binary) &&
	    st.st_ino == cached_st.st_ino && st.st_dev == cached_st.st_dev &&
	    st.st_mtim.tv_sec == cached_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == cached_st.st_mtim.tv_nsec &&
	    !strcmp(cached_bind, bind ? bind : "")) {
		*out = &cached;
		return 0;
	}
	jail_free(&cached);
	r = jail_build_qemu(&cached, binary, err);
	if (r < 0) {
		jail_free(&cached);
		return r;
	}
	snprintf(cached_bin, sizeof(cached_bin), "%s", binary);
	snprintf(cached_bind, sizeof(cached_bind), "%s", bind ? bind : "");
	cached_st = st;
	*out = &cached;
	return 0;
}

/* ---- in the child
 * ------------------------------------------------------------ */

/* Where the host's root and the jail's root sit while it is built. */
#define STAGE "/tmp"
#define OLD "/oldroot"
#define NEW "/newroot"

/* mkdir -p of the parents of p (a path under NEW), mode 0755. */
static int
mkdir_parents(char *p)
{
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			*s = '/';
			return -errno;
		}
		*s = '/';
	}
	return 0;
}

/* Bind src over dst (made here: an empty file or directory), then make
 * the bind read-only unless rw, never setuid, and not executable unless
 * exec; device nodes stay usable only where dev. */
static int
bind_one(const char *src, char *dst, bool dir, bool rw, bool exec, bool dev)
{
	unsigned long fl = MS_BIND | MS_REMOUNT | MS_NOSUID;
	int fd;

	if (mkdir_parents(dst) < 0)
		return -errno;
	if (dir) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			return -errno;
	} else {
		fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
	}
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return -errno;
	fl |= rw ? 0 : MS_RDONLY;
	fl |= exec ? 0 : MS_NOEXEC;
	fl |= dev ? 0 : MS_NODEV;
	if (mount(NULL, dst, NULL, fl, NULL) < 0)
		return -errno;
	return 0;
}

static int
join(char *out, const char *a, const char *b)
{
	if (snprintf(out, 2 * JAIL_PATH_MAX, "%s%s", a, b) >= 2 * JAIL_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int
jail_enter(const struct jail *j, bool kvm)
{
	static const char *const devs[] = {"null",   "zero",	"full",
					   "random", "urandom", "kvm"};
	static const char *const links[][2] = {
		{NEW "/dev/fd", "/proc/self/fd"},
		{NEW "/dev/stdin", "/proc/self/fd/0"},
		{NEW "/dev/stdout", "/proc/self/fd/1"},
		{NEW "/dev/stderr", "/proc/self/fd/2"},
	};
	char src[2 * JAIL_PATH_MAX], dst[2 * JAIL_PATH_MAX];
	mode_t old = umask(022);
	int r = 0;

	/* New namespaces: the mount one for the root below; the network
	 * one so that an escape has neither the host's network nor its
	 * abstract Unix sockets; IPC and UTS cost nothing and hide the
	 * host's System V objects and name. */
	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) <
	    0)
		return -errno;
	/* nothing we mount may propagate back to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	if (mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=64k,nr_inodes=64") < 0)
		return -errno;
	if (mkdir(STAGE NEW, 0755) < 0 || mkdir(STAGE OLD, 0755) < 0)
		return -errno;
	/* the jail's own root: a small tmpfs, read-only once filled */
	if (mount("tmpfs", STAGE NEW, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=0755,size=256k,nr_inodes=4096") < 0)
		return -errno;
	/* host at /oldroot, jail at /newroot: the binds' sources stay
	 * reachable even where the stage hid them (under /tmp) */
	if (syscall(SYS_pivot_root, STAGE, STAGE OLD) < 0 || chdir("/") < 0)
		return -errno;
	for (size_t i = 0; i < j->n; i++) {
		const struct jail_entry *e = &j->e[i];

		if (join(dst, NEW, e->path) < 0 || join(src, OLD, e->path) < 0)
			return -ENAMETOOLONG;
		if (e->kind == JAIL_SYMLINK) {
			if (mkdir_parents(dst) < 0 ||
			    (symlink(e->target, dst) < 0 && errno != EEXIST))
				return -errno;
			continue;
		}
		r = bind_one(src, dst, e->kind == JAIL_DIR, e->kind == JAIL_DEV,
			     e->flags & JAIL_EXEC, e->kind == JAIL_DEV);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++) {
		/* /dev/kvm only for a KVM guest */
		if (!strcmp(devs[i], "kvm") && !kvm)
			continue;
		snprintf(src, sizeof(src), OLD "/dev/%s", devs[i]);
		snprintf(dst, sizeof(dst), NEW "/dev/%s", devs[i]);
		r = bind_one(src, dst, false, true, false, true);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		if (symlink(links[i][1], links[i][0]) < 0)
			return -errno;
	/* /dev/fd/N (QEMU's kernel and initrd) needs a /proc.  Only our
	 * own processes show in it (hidepid=invisible) and nothing but
	 * process directories (subset=pid: no /proc/sys, kcore, ...).
	 * Kernels before 5.8 share hidepid with the host's /proc: there
	 * this fails rather than change the host's. */
	if (mkdir(NEW "/proc", 0555) < 0 ||
	    mount("proc", NEW "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "hidepid=invisible,subset=pid") < 0)
		return -errno;
	if (mount(NEW, NEW, NULL,
		  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV |
			  MS_NOEXEC,
		  NULL) < 0)
		return -errno;
	/* into the jail; the stage, with the host's root on it, goes */
	if (chdir(NEW) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return -errno;
	umask(old);
	return 0;
}

uint64_t
jail_netns_id(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

int
jail_verify(uint64_t host_netns)
{
	static const char *const absent[] = {
		"/etc/shadow", "/etc/passwd", "/home", "/root",
		"/var",	       "/run",	      "/tmp",  "/sys"};
	struct statfs fs;
	uint64_t ns = jail_netns_id();

	if (!ns || ns == host_netns)
		return -EPERM;
	if (statfs("/", &fs) < 0 || fs.f_type != TMPFS_MAGIC ||
	    !(fs.f_flags & ST_RDONLY))
		return -EPERM;
	if (statfs("/proc", &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC)
		return -EPERM;
	for (size_t i = 0; i < ARRAY_SIZE(absent); i++)
		if (access(absent[i], F_OK) == 0 || errno != ENOENT)
			return -EPERM;
	return 0;
}

/* transfer.c - tar streams between the host and the guest */
#include "transfer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int
transfer_pack_source(const char *srcdir, const char *tarpath,
		     struct error *err)
{
	_cleanup_close_ int fd = open(tarpath, O_WRONLY | O_CREAT | O_TRUNC |
						       O_CLOEXEC,
				      0600);

	if (fd < 0)
		return error_sys(err, errno, "create %s", tarpath);
	return transfer_pack_source_fd(srcdir, fd, err);
}

int
transfer_pack_source_fd(const char *srcdir, int tarfd, struct error *err)
{
	struct archive *w = archive_write_new();
	struct archive *d = NULL;
	struct archive_entry *e = NULL;
	size_t plen = srcdir ? strlen(srcdir) : 0;
	int r = 0;

	/* GNU format: long names that busybox tar understands. */
	archive_write_set_format_gnutar(w);
	if (archive_write_open_fd(w, tarfd) != ARCHIVE_OK) {
		r = error_set(err, EIO, "source tar: %s",
			      archive_error_string(w));
		goto out;
	}
	if (!srcdir)
		goto close;
	d = archive_read_disk_new();
	archive_read_disk_set_symlink_physical(d);
	archive_read_disk_set_standard_lookup(d);
	if (archive_read_disk_open(d, srcdir) != ARCHIVE_OK) {
		r = error_set(err, EIO, "source %s: %s", srcdir,
			      archive_error_string(d));
		goto out;
	}
	for (;;) {
		int ar;
		const char *path;
		char buf[65536];

		e = archive_entry_new();
		ar = archive_read_next_header2(d, e);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			int ae = archive_errno(d);

			/* libarchive's text lacks the reason: add it */
			r = error_set(err, ae > 0 ? ae : EIO, "source %s: %s%s%s",
				      srcdir, archive_error_string(d),
				      ae > 0 ? ": " : "",
				      ae > 0 ? strerror(ae) : "");
			goto out;
		}
		archive_read_disk_descend(d);
		path = archive_entry_pathname(e);
		if (strncmp(path, srcdir, plen) != 0) {
			archive_entry_free(e);
			e = NULL;
			continue;
		}
		path += plen;
		while (*path == '/')
			path++;
		if (!*path) {
			archive_entry_free(e);
			e = NULL;
			continue;
		}
		{
			_cleanup_free_ char *rel = xstrdup(path);

			archive_entry_set_pathname(e, rel);
		}
		/* The guest runs as root: ownership from the host means
		 * nothing there, and numeric ids would only leak. */
		archive_entry_set_uid(e, 0);
		archive_entry_set_gid(e, 0);
		archive_entry_set_uname(e, "root");
		archive_entry_set_gname(e, "root");
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			r = error_set(err, EIO, "tar %s: %s", path,
				      archive_error_string(w));
			goto out;
		}
		if (archive_entry_filetype(e) == AE_IFREG &&
		    archive_entry_size(e) > 0) {
			const char *src = archive_entry_sourcepath(e);
			/* swapped for a FIFO since the walk: no hang */
			_cleanup_close_ int fd =
				open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
						  O_NONBLOCK | O_NOCTTY);
			struct stat fst;
			ssize_t n;

			if (fd < 0) {
				r = error_sys(err, errno, "open %s", src);
				goto out;
			}
			if (fstat(fd, &fst) < 0 || !S_ISREG(fst.st_mode)) {
				r = error_set(err, EINVAL, "%s: no longer a "
					      "regular file", src);
				goto out;
			}
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				if (archive_write_data(w, buf, n) < 0) {
					r = error_set(err, EIO, "tar %s: %s",
						      src,
						      archive_error_string(w));
					goto out;
				}
			if (n < 0) {
				r = error_sys(err, errno, "read %s", src);
				goto out;
			}
		}
		archive_entry_free(e);
		e = NULL;
	}
close:
	if (archive_write_close(w) != ARCHIVE_OK)
		r = error_set(err, EIO, "writing the source tar: %s",
			      archive_error_string(w));
out:
	if (e)
		archive_entry_free(e);
	if (d)
		archive_read_free(d);
	archive_write_free(w);
	return r;
}

int
transfer_check_name(const char *name, const char **why)
{
	const unsigned char *u = (const unsigned char *)name;
	size_t len = strlen(name), depth = 0;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (!*name) {
		*why = "empty name";
		return -1;
	}
	if (*name == '/') {
		*why = "absolute path";
		return -1;
	}
	if (len > TRANSFER_MAX_NAME) {
		*why = "name longer than 4000 bytes";
		return -1;
	}
	/* Names reach the result JSON (UTF-8 only), the terminal and an
	 * operator's shell: a name that is not plain UTF-8 text, or that
	 * carries a control (ESC, DEL, C1 raw or encoded), has no business
	 * in a build's output, so it is refused rather than rewritten. */
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = utf8_decode(u + i, len - i, &cp);

		if (!k) {
			*why = "name is not valid UTF-8";
			return -1;
		}
		if (!term_char_ok(cp) || cp == '\t') {
			*why = "control character in name";
			return -1;
		}
		i += k;
	}
	for (const char *p = name; *p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 2 && !strncmp(p, "..", 2)) {
			*why = "\"..\" in path";
			return -1;
		}
		if (n > 255) {
			*why = "path component longer than 255 bytes";
			return -1;
		}
		/* depth costs the host a directory (and a lookup) per level */
		if (n && !(n == 1 && *p == '.') &&
		    ++depth > TRANSFER_MAX_DEPTH) {
			*why = "path deeper than 32 levels";
			return -1;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	if (!depth) {
		*why = "empty name";
		return -1;
	}
	return 0;
}

/* The name without empty and "." components: one spelling per file. */
static char *
canonical_name(const char *name)
{
	char *out = xmalloc(strlen(name) + 1), *q = out;

	for (const char *p = name; *p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n && !(n == 1 && *p == '.')) {
			if (q != out)
				*q++ = '/';
			memcpy(q, p, n);
			q += n;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	*q = '\0';
	return out;
}

/* A guest-chosen name as it may appear in a message: short and visible. */
static char *
visible_name(const char *s)
{
	struct buf b = { 0 };
	size_t n = strlen(s);

	term_sanitize(s, n > 200 ? 200 : n, &b);
	if (n > 200)
		buf_append(&b, "...", 3);
	return b.data;
}

/* State of one unpack, and what to undo when it is refused. */
struct unpack {
	struct archive *a;
	EVP_MD_CTX *md;
	int dfd;
	bool fresh;	/* destdir was made here: undo removes it whole */
	char **made;	/* else the topmost files and dirs made, for undo */
	size_t n_made;
	bool made_dir;	/* the last open_parent made a directory */
	uint64_t entries, total, max_bytes;
	struct artifact_result *res;
	size_t n_res, cap_res;
	struct transfer_limit *lim;
};

static void
unpack_made(struct unpack *u, const char *rel, size_t n)
{
	if (u->fresh)
		return;
	if (!(u->n_made % 64))
		u->made = xrealloc(u->made,
				   (u->n_made + 64) * sizeof(*u->made));
	u->made[u->n_made++] = xstrndup(rel, n);
}

static int
too_many_entries(struct unpack *u, struct error *err)
{
	if (u->lim)
		*u->lim = (struct transfer_limit){ "artifacts_entries",
						   u->entries,
						   TRANSFER_MAX_ENTRIES,
						   "entries" };
	return error_set(err, EFBIG, "artifacts: more than %d entries "
			 "(files, directories and other tar members)",
			 TRANSFER_MAX_ENTRIES);
}

/*
 * Open the parent directory of rel (a canonical name) under dirfd, never
 * following links.  With u, missing directories are made, each counted as
 * an entry and the topmost remembered for undo; without u nothing is made.
 * Returns the fd or -errno (-EFBIG: the entries cap).
 */
static int
open_parent(int dirfd, const char *rel, struct unpack *u, const char **base)
{
	_cleanup_free_ char *copy = xstrdup(rel);
	char *p = copy, *slash;
	int fd = dup(dirfd);

	if (fd < 0)
		return -errno;
	if (u)
		u->made_dir = false;
	while ((slash = strchr(p, '/'))) {
		int nfd;

		*slash = '\0';
		if (u && mkdirat(fd, p, 0755) == 0) {
			if (!u->made_dir)
				unpack_made(u, rel, slash - copy);
			u->made_dir = true;
			if (++u->entries > TRANSFER_MAX_ENTRIES) {
				close(fd);
				return -EFBIG;
			}
		} else if (u && errno != EEXIST) {
			int e = errno;

			close(fd);
			return -e;
		}
		nfd = openat(fd, p,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (nfd < 0)
			return -errno;
		fd = nfd;
		p = slash + 1;
	}
	*base = rel + (p - copy);
	return fd;
}

static int
pwrite_full(int fd, const void *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -ENOSPC;
		p = (const char *)p + w;
		n -= w;
		off += w;
	}
	return 0;
}

/* A hole reads as zeros: hash it as such, without writing it. */
static void
digest_zeros(EVP_MD_CTX *md, uint64_t n)
{
	static const unsigned char zeros[65536];

	while (n) {
		size_t k = n < sizeof(zeros) ? n : sizeof(zeros);

		EVP_DigestUpdate(md, zeros, k);
		n -= k;
	}
}

/* Copy the current entry's data to fd; its sha256 into dig. */
static int
unpack_data(struct unpack *u, int fd, const char *vis, uint64_t size,
	    unsigned char dig[32], struct error *err)
{
	uint64_t pos = 0;
	const void *blk;
	size_t len;
	la_int64_t off;
	struct stat st;
	unsigned int diglen;
	int ar, r;

	EVP_DigestInit_ex(u->md, EVP_sha256(), NULL);
	while ((ar = archive_read_data_block(u->a, &blk, &len, &off)) ==
	       ARCHIVE_OK) {
		/* Blocks go forward and stay within the size counted against
		 * artifacts_bytes: else a sparse map could write past it. */
		if (off < 0 || (uint64_t)off < pos || (uint64_t)off > size ||
		    len > size - (uint64_t)off)
			return error_set(err, EPROTO, "artifacts: \"%s\": data "
					 "outside its declared size", vis);
		digest_zeros(u->md, off - pos);
		r = pwrite_full(fd, blk, len, off);
		if (r < 0)
			return error_sys(err, -r, "artifacts: write \"%s\"",
					 vis);
		EVP_DigestUpdate(u->md, blk, len);
		pos = off + len;
	}
	if (ar != ARCHIVE_EOF)
		return error_set(err, EPROTO, "artifacts: \"%s\": %s", vis,
				 archive_error_string(u->a));
	digest_zeros(u->md, size - pos);
	/* a trailing hole, or a shorter file where an older one was */
	if (ftruncate(fd, size) < 0)
		return error_sys(err, errno, "artifacts: truncate \"%s\"", vis);
	if (fstat(fd, &st) < 0)
		return error_sys(err, errno, "artifacts: stat \"%s\"", vis);
	if ((uint64_t)st.st_size != size)
		return error_set(err, EIO, "artifacts: \"%s\" is %lld bytes, "
				 "not %llu", vis, (long long)st.st_size,
				 (unsigned long long)size);
	EVP_DigestFinal_ex(u->md, dig, &diglen);
	return 0;
}

/* Unpack one regular file entry: checks, caps, create, data, result. */
static int
unpack_file(struct unpack *u, struct archive_entry *e, struct error *err)
{
	const char *raw = archive_entry_pathname(e), *why, *base = NULL;
	_cleanup_free_ char *name = NULL, *vis = NULL;
	_cleanup_close_ int fd = -1;
	struct artifact_result *res = NULL;
	unsigned char dig[32];
	uint64_t size;
	struct stat st;
	int pfd, r;

	if (!raw)
		return error_set(err, EPROTO, "artifacts: a file without a "
				 "name from the guest");
	if (transfer_check_name(raw, &why) < 0) {
		vis = visible_name(raw);
		return error_set(err, EPROTO, "artifacts: refusing \"%s\" "
				 "from the guest: %s", vis, why);
	}
	name = canonical_name(raw);
	vis = visible_name(name);
	if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
		return error_set(err, EPROTO, "artifacts: \"%s\" has no size",
				 vis);
	/* The size in the header, not the bytes in the archive: a sparse
	 * entry of a few KiB can stand for a file of any size.  Counted
	 * before anything is written, so the host never holds more. */
	size = archive_entry_size(e);
	if (size > u->max_bytes - u->total) {
		if (u->lim)
			*u->lim = (struct transfer_limit){
				"artifacts_bytes",
				size > INT64_MAX - u->total ? INT64_MAX
							    : u->total + size,
				u->max_bytes, "bytes"
			};
		return error_set(err, EFBIG, "artifacts exceed %llu bytes "
				 "(at \"%s\", %llu bytes)",
				 (unsigned long long)u->max_bytes, vis,
				 (unsigned long long)size);
	}
	u->total += size;
	pfd = open_parent(u->dfd, name, u, &base);
	if (pfd == -EFBIG)
		return too_many_entries(u, err);
	if (pfd < 0)
		return error_sys(err, -pfd, "artifacts: \"%s\"", vis);
	fd = openat(pfd, base,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		/* the same name twice (overlapping globs do that), or a
		 * file already in an --artifacts directory: the last wins */
		for (size_t i = 0; i < u->n_res && !res; i++)
			if (!strcmp(u->res[i].path, name))
				res = &u->res[i];
		/* emptied: a hole in the new copy must read as zeros */
		fd = openat(pfd, base,
			    O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
	}
	close(pfd);
	if (fd < 0)
		return error_sys(err, errno, "artifacts: create \"%s\"", vis);
	if (!u->made_dir)
		unpack_made(u, name, strlen(name));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return error_set(err, EEXIST, "artifacts: \"%s\" exists and "
				 "is not a regular file", vis);
	r = unpack_data(u, fd, vis, size, dig, err);
	if (r < 0)
		return r;
	if (!res) {
		/* Doubling: growing by one made 20,000 files cost
		 * n^2 / 2 copies of the array wherever realloc moves it. */
		if (u->n_res == u->cap_res) {
			u->cap_res = u->cap_res ? 2 * u->cap_res : 16;
			u->res = xrealloc(u->res,
					  u->cap_res * sizeof(*u->res));
		}
		res = &u->res[u->n_res++];
		res->path = steal_pointer(&name);
	}
	res->bytes = size;
	for (unsigned i = 0; i < 32; i++)
		snprintf(res->sha256 + 2 * i, 3, "%02x", dig[i]);
	return 0;
}

/* A refused archive leaves nothing behind: remove what was made. */
static int
unpack_undo(struct unpack *u, int parent_fd, const char *destdir)
{
	int r = 0;

	if (u->fresh)
		return rm_rf_at(parent_fd, destdir);
	for (size_t i = u->n_made; i-- > 0;) {
		const char *base;
		int q, pfd = open_parent(u->dfd, u->made[i], NULL, &base);

		q = pfd < 0 ? (pfd == -ENOENT ? 0 : pfd) : rm_rf_at(pfd, base);
		if (pfd >= 0)
			close(pfd);
		if (q < 0 && !r)
			r = q;
	}
	return r;
}

static int
unpack_into(const char *tarpath, int parent_fd, const char *destdir,
	    int open_flags, uint64_t max_bytes, struct artifact_result **out,
	    size_t *n, struct transfer_limit *lim, struct error *err)
{
	struct unpack u = { .dfd = -1, .max_bytes = max_bytes, .lim = lim };
	struct archive_entry *e;
	int r = 0;

	*out = NULL;
	*n = 0;
	u.a = archive_read_new();
	u.md = EVP_MD_CTX_new();
	archive_read_support_format_tar(u.a);
	archive_read_support_format_gnutar(u.a);
	if (mkdirat(parent_fd, destdir, 0755) == 0)
		u.fresh = true;
	else if (errno != EEXIST) {
		r = error_sys(err, errno, "mkdir %s", destdir);
		goto out;
	}
	u.dfd = openat(parent_fd, destdir,
		       O_RDONLY | O_DIRECTORY | O_CLOEXEC | open_flags);
	if (u.dfd < 0) {
		r = error_sys(err, errno, "open %s", destdir);
		goto out;
	}
	if (archive_read_open_filename(u.a, tarpath, 65536) != ARCHIVE_OK) {
		r = error_set(err, EIO, "artifacts: %s",
			      archive_error_string(u.a));
		goto out;
	}
	for (;;) {
		int ar = archive_read_next_header(u.a, &e);

		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK) {
			r = error_set(err, EPROTO, "artifacts: bad tar from "
				      "guest: %s", archive_error_string(u.a));
			goto out;
		}
		/* Every member costs, taken or not: the cap bounds the work
		 * as well as what lands on the host. */
		if (++u.entries > TRANSFER_MAX_ENTRIES) {
			r = too_many_entries(&u, err);
			goto out;
		}
		/* Only plain files come out: a guest-made symlink or device
		 * must never land on the host. */
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		r = unpack_file(&u, e, err);
		if (r < 0)
			goto out;
	}
out:
	if (r < 0) {
		int q = u.dfd >= 0 || u.fresh
				? unpack_undo(&u, parent_fd, destdir)
				: 0;

		if (q < 0 && err)
			snprintf(err->msg + strlen(err->msg),
				 sizeof(err->msg) - strlen(err->msg),
				 " (removing what was unpacked: %s)",
				 strerror(-q));
		for (size_t i = 0; i < u.n_res; i++)
			free(u.res[i].path);
		free(u.res);
	} else {
		*out = u.res;
		*n = u.n_res;
	}
	for (size_t i = 0; i < u.n_made; i++)
		free(u.made[i]);
	free(u.made);
	if (u.dfd >= 0)
		close(u.dfd);
	EVP_MD_CTX_free(u.md);
	archive_read_free(u.a);
	return r;
}

int
transfer_unpack_artifacts(const char *tarpath, const char *destdir,
			  uint64_t max_bytes, struct artifact_result **out,
			  size_t *n, struct transfer_limit *lim,
			  struct error *err)
{
	/* the user's own choice of place: taken as it is */
	return unpack_into(tarpath, AT_FDCWD, destdir, 0, max_bytes, out, n,
			   lim, err);
}

int
transfer_unpack_artifacts_at(const char *tarpath, int parent_fd,
			     const char *name, uint64_t max_bytes,
			     struct artifact_result **out, size_t *n,
			     struct transfer_limit *lim, struct error *err)
{
	/* a directory of ours: never reached through a symlink */
	return unpack_into(tarpath, parent_fd, name, O_NOFOLLOW, max_bytes,
			   out, n, lim, err);
}

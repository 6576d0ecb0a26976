/* transfer.c - tar streams between the host and the guest */
#include "transfer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* A guest cannot make us create more than this many files. */
#define MAX_ARTIFACT_FILES 10000

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
transfer_check_name(const char *name)
{
	const char *p = name;

	if (!*name || *name == '/' || strlen(name) > 4000)
		return -1;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if ((n == 2 && !strncmp(p, "..", 2)) || n > 255)
			return -1;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] < 0x20)
				return -1;
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* Create the parent directories of rel under dirfd, never following links. */
static int
open_parent(int dirfd, const char *rel, const char **base)
{
	_cleanup_free_ char *copy = xstrdup(rel);
	char *p = copy, *slash;
	int fd = dup(dirfd);

	if (fd < 0)
		return -errno;
	while ((slash = strchr(p, '/'))) {
		int nfd;

		*slash = '\0';
		if (*p && strcmp(p, ".")) {
			if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
				int e = errno;

				close(fd);
				return -e;
			}
			nfd = openat(fd, p, O_RDONLY | O_DIRECTORY |
						    O_NOFOLLOW | O_CLOEXEC);
			close(fd);
			if (nfd < 0)
				return -errno;
			fd = nfd;
		}
		p = slash + 1;
	}
	*base = rel + (p - copy);
	return fd;
}

int
transfer_unpack_artifacts(const char *tarpath, const char *destdir,
			  uint64_t max_bytes, struct artifact_result **out,
			  size_t *n, struct error *err)
{
	_cleanup_close_ int dfd = -1;

	*out = NULL;
	*n = 0;
	/* the user's own choice of place: taken as it is */
	if (mkdir(destdir, 0755) < 0 && errno != EEXIST)
		return error_sys(err, errno, "mkdir %s", destdir);
	dfd = open(destdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_sys(err, errno, "open %s", destdir);
	return transfer_unpack_artifacts_at(tarpath, dfd, max_bytes, out, n,
					    err);
}

int
transfer_unpack_artifacts_at(const char *tarpath, int dfd,
			     uint64_t max_bytes, struct artifact_result **out,
			     size_t *n, struct error *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint64_t total = 0;
	size_t count = 0;
	int r = 0;

	*out = NULL;
	*n = 0;
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_filename(a, tarpath, 65536) != ARCHIVE_OK) {
		r = error_set(err, EIO, "artifacts: %s",
			      archive_error_string(a));
		goto out;
	}
	for (;;) {
		const char *name, *base = NULL;
		unsigned char dig[32];
		unsigned int diglen;
		int ar = archive_read_next_header(a, &e), pfd, fd;
		struct artifact_result *res;
		uint64_t size = 0;
		const void *blk;
		size_t len;
		la_int64_t off;

		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK) {
			r = error_set(err, EPROTO, "artifacts: bad tar from "
				      "guest: %s", archive_error_string(a));
			goto out;
		}
		name = archive_entry_pathname(e);
		if (!name)
			continue;
		while (name[0] == '.' && name[1] == '/')
			name += 2;
		/* Only plain files come out: a guest-made symlink or device
		 * must never land on the host. */
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (transfer_check_name(name) < 0) {
			r = error_set(err, EPROTO,
				      "artifacts: refusing path from guest");
			goto out;
		}
		if (++count > MAX_ARTIFACT_FILES) {
			r = error_set(err, EFBIG, "artifacts: more than %d "
				      "files", MAX_ARTIFACT_FILES);
			goto out;
		}
		pfd = open_parent(dfd, name, &base);
		if (pfd < 0) {
			r = error_sys(err, -pfd, "artifacts: %s", name);
			goto out;
		}
		fd = openat(pfd, base, O_WRONLY | O_CREAT | O_TRUNC |
					       O_NOFOLLOW | O_CLOEXEC, 0644);
		close(pfd);
		if (fd < 0) {
			r = error_sys(err, errno, "artifacts: create %s", name);
			goto out;
		}
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		while ((ar = archive_read_data_block(a, &blk, &len, &off)) ==
		       ARCHIVE_OK) {
			total += len;
			size += len;
			if (total > max_bytes) {
				close(fd);
				r = error_set(err, EFBIG, "artifacts exceed "
					      "%llu bytes",
					      (unsigned long long)max_bytes);
				goto out;
			}
			if (pwrite(fd, blk, len, off) != (ssize_t)len) {
				r = error_sys(err, errno, "write %s", name);
				close(fd);
				goto out;
			}
			EVP_DigestUpdate(md, blk, len);
		}
		close(fd);
		if (ar != ARCHIVE_EOF) {
			r = error_set(err, EPROTO, "artifacts: %s",
				      archive_error_string(a));
			goto out;
		}
		EVP_DigestFinal_ex(md, dig, &diglen);
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		res = &(*out)[(*n)++];
		res->path = xstrdup(name);
		res->bytes = size;
		for (unsigned i = 0; i < 32; i++)
			snprintf(res->sha256 + 2 * i, 3, "%02x", dig[i]);
	}
out:
	EVP_MD_CTX_free(md);
	archive_read_free(a);
	return r;
}

/*
 * fuzz-artifacts.c - libFuzzer target for the host's unpacker of the
 * guest's artifact tar (transfer_unpack_artifacts and, as the build uses
 * it by default, transfer_unpack_artifacts_at).
 *
 * Each input is written as a tar file and unpacked into a directory under
 * one temp dir per process.  A checksum of the input picks the entry point
 * and whether the destination is fresh (the run directory's "artifacts")
 * or already holds a file and two symlinks out of it (an --artifacts
 * directory an operator reuses).  Beyond "no crash, no leak" it checks
 * what the host holds: on success every result names a regular file of
 * that size and sha256, within the cap; on refusal nothing made is left
 * (a fresh destination is gone; a used one holds only what was there);
 * and nothing outside the destination is ever written.
 */
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "transfer.h"

#define MAX_BYTES (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmp[64], tarpath[128], dest[128], outside[128], outdir[128];
static int tmpfd = -1;

static void
cleanup(void)
{
	rm_rf(tmp);
}

static void
setup(void)
{
	int fd;

	strcpy(tmp, "/tmp/qctl-fuzz-art-XXXXXX");
	if (!mkdtemp(tmp))
		abort();
	snprintf(tarpath, sizeof(tarpath), "%s/in.tar", tmp);
	snprintf(dest, sizeof(dest), "%s/dest", tmp);
	snprintf(outside, sizeof(outside), "%s/outside", tmp);
	snprintf(outdir, sizeof(outdir), "%s/outdir", tmp);
	tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = open(outside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (tmpfd < 0 || fd < 0 || write(fd, "o", 1) != 1 ||
	    mkdir(outdir, 0755) < 0)
		abort();
	close(fd);
	atexit(cleanup);
}

/* An --artifacts directory in use: a file, and links out of it. */
static void
populate(void)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/keep", dest);
	if (mkdir(dest, 0755) < 0 ||
	    (fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
		abort();
	close(fd);
	snprintf(p, sizeof(p), "%s/link", dest);
	if (symlink(outside, p) < 0)
		abort();
	snprintf(p, sizeof(p), "%s/dlink", dest);
	if (symlink(outdir, p) < 0)
		abort();
}

/* After a refusal, a used destination holds only what it held. */
static void
check_only_old(void)
{
	DIR *d = opendir(dest);
	struct dirent *e;

	if (!d)
		abort();
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, "keep") && strcmp(e->d_name, "link") &&
		    strcmp(e->d_name, "dlink"))
			abort();
	closedir(d);
}

/* Nothing outside the destination was touched. */
static void
check_outside(void)
{
	struct stat st;
	DIR *d;
	int n = 0;

	if (lstat(outside, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size != 1 || !(d = opendir(outdir)))
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	if (n != 2)
		abort();
}

static void
check_file(const struct artifact_result *a)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[65536], dig[32];
	char p[4200], hex[65];
	unsigned int len;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dest, a->path);
	fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != a->bytes)
		abort();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(md, buf, n);
	close(fd);
	EVP_DigestFinal_ex(md, dig, &len);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
	if (strcmp(hex, a->sha256))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct artifact_result *a = NULL;
	struct transfer_limit lim;
	struct error err;
	uint64_t total = 0;
	unsigned mode = 0;
	size_t n = 0;
	bool used;
	int fd, r;

	if (!tmp[0])
		setup();
	for (size_t i = 0; i < size; i++)
		mode += data[i];
	used = mode & 2;
	if (used)
		populate();
	fd = open(tarpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_in_full(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (mode & 1)
		r = transfer_unpack_artifacts_at(tarpath, tmpfd, "dest",
						 MAX_BYTES, &a, &n, &lim, &err);
	else
		r = transfer_unpack_artifacts(tarpath, dest, MAX_BYTES, &a, &n,
					      &lim, &err);
	if (r == 0) {
		for (size_t i = 0; i < n; i++) {
			check_file(&a[i]);
			total += a[i].bytes;
			free(a[i].path);
		}
		free(a);
		if (total > MAX_BYTES)
			abort();
	} else if (a || n || !err.msg[0]) {
		abort();	/* a refusal says why and gives no results */
	} else if (used) {
		check_only_old();
	} else if (access(dest, F_OK) == 0) {
		abort();	/* a fresh destination is removed whole */
	}
	check_outside();
	if (rm_rf(dest) < 0 || access(dest, F_OK) == 0)
		abort();
	return 0;
}

/*
 * fuzz-artifacts.c - libFuzzer target for transfer_unpack_artifacts.
 *
 * Each input is written as a tar file and unpacked into a fresh directory
 * under one temp dir per process.  Beyond "no crash, no leak" it checks
 * what the host holds: on success every result names a regular file of
 * that size and sha256, within the cap; on refusal nothing is left.
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "transfer.h"

#define MAX_BYTES (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmp[64], tarpath[128], dest[128];

static void
cleanup(void)
{
	rm_rf(tmp);
}

static void
setup(void)
{
	strcpy(tmp, "/tmp/qctl-fuzz-art-XXXXXX");
	if (!mkdtemp(tmp))
		abort();
	snprintf(tarpath, sizeof(tarpath), "%s/in.tar", tmp);
	snprintf(dest, sizeof(dest), "%s/dest", tmp);
	atexit(cleanup);
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
	size_t n = 0;
	int fd;

	if (!tmp[0])
		setup();
	fd = open(tarpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_in_full(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (transfer_unpack_artifacts(tarpath, dest, MAX_BYTES, &a, &n, &lim,
				      &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			check_file(&a[i]);
			total += a[i].bytes;
			free(a[i].path);
		}
		free(a);
		if (total > MAX_BYTES)
			abort();
	} else if (a || n || access(dest, F_OK) == 0) {
		/* a refusal leaves no results and no files */
		abort();
	}
	if (rm_rf(dest) < 0 || access(dest, F_OK) == 0)
		abort();
	return 0;
}

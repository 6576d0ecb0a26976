/*
 * test-transfer.c - tar streams in and out, against hostile archives.
 *
 * The artifact tar comes from the guest, which is root in its VM and can
 * replace its tar: every archive here is one a guest could send.  Each test
 * checks what the host holds afterwards, not only the return value: sizes
 * and sha256 against the files on disk, and nothing left after a refusal.
 */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "transfer.h"

Test(transfer, names)
{
	char deep[200] = "";
	const char *why = NULL;

	cr_assert_eq(transfer_check_name("out/x.deb", NULL), 0);
	cr_assert_eq(transfer_check_name("a b/c d", NULL), 0);
	cr_assert_eq(transfer_check_name("a/..b/c", NULL), 0);
	cr_assert_eq(transfer_check_name("./a//b/./c", NULL), 0);
	cr_assert_eq(transfer_check_name("r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac",
					 NULL), 0, "UTF-8 text is a name");
	cr_assert_lt(transfer_check_name("", NULL), 0);
	cr_assert_lt(transfer_check_name("./", NULL), 0);
	cr_assert_lt(transfer_check_name("/etc/passwd", NULL), 0);
	cr_assert_lt(transfer_check_name("../x", NULL), 0);
	cr_assert_lt(transfer_check_name("a/../../x", NULL), 0);
	cr_assert_lt(transfer_check_name("a/..", NULL), 0);
	cr_assert_lt(transfer_check_name("a\nb", NULL), 0);
	cr_assert_lt(transfer_check_name("a\tb", NULL), 0);
	/* terminal escapes: ESC, DEL, C1 raw and UTF-8 encoded, bad UTF-8 */
	cr_assert_lt(transfer_check_name("out/\x1b[2Jx", &why), 0);
	cr_assert_str_eq(why, "control character in name");
	cr_assert_lt(transfer_check_name("out/\x7fx", NULL), 0);
	cr_assert_lt(transfer_check_name("out/\xc2\x9b" "2Jx", NULL), 0);
	cr_assert_lt(transfer_check_name("out/\xc2\x85x", NULL), 0);
	cr_assert_lt(transfer_check_name("out/\x9b" "2Jx", &why), 0);
	cr_assert_str_eq(why, "name is not valid UTF-8");
	cr_assert_lt(transfer_check_name("out/\xff", NULL), 0);
	cr_assert_lt(transfer_check_name("out/\xc0\xaf", NULL), 0);
	/* 32 levels pass, 33 do not */
	for (int i = 0; i < 32; i++)
		strcat(deep, i ? "/d" : "d");
	cr_assert_eq(transfer_check_name(deep, NULL), 0);
	strcat(deep, "/d");
	cr_assert_lt(transfer_check_name(deep, &why), 0);
	cr_assert_str_eq(why, "path deeper than 32 levels");
}

/* ---- helpers --------------------------------------------------------- */

static char tmp[64];

static void
mktmp(void)
{
	strcpy(tmp, "/tmp/qctl-tr-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
}

static void
rmtmp(void)
{
	if (tmp[0])
		cr_assert_eq(rm_rf(tmp), 0);
}

TestSuite(unpack, .init = mktmp, .fini = rmtmp);

static char *
at(const char *rel)
{
	static char p[8][700];
	static int k;

	k = (k + 1) % 8;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmp, rel);
	return p[k];
}

static void
add(struct archive *w, const char *name, int type, const char *data,
    const char *link)
{
	struct archive_entry *e = archive_entry_new();
	size_t n = data ? strlen(data) : 0;

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, n);
	if (link)
		archive_entry_set_symlink(e, link);
	cr_assert_eq(archive_write_header(w, e), ARCHIVE_OK, "%s",
		     archive_error_string(w));
	if (n)
		cr_assert_eq(archive_write_data(w, data, n), (ssize_t)n);
	archive_entry_free(e);
}

/* A sparse file of the given size: "SPARSE" at 0 and "hello" at the end. */
static void
add_sparse(struct archive *w, const char *name, int64_t size)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, size);
	archive_entry_sparse_add_entry(e, 0, 6);
	archive_entry_sparse_add_entry(e, size - 5, 5);
	cr_assert_eq(archive_write_header(w, e), ARCHIVE_OK, "%s",
		     archive_error_string(w));
	cr_assert_eq(archive_write_data(w, "SPARSE", 6), 6);
	cr_assert_eq(archive_write_data(w, "hello", 5), 5);
	archive_entry_free(e);
}

/* Write in.tar in the temp dir; pax (for sparse entries) or GNU format. */
static char *
make_tar(void (*fill)(struct archive *), bool pax)
{
	struct archive *w = archive_write_new();
	char *path = xstrdup(at("in.tar"));

	if (pax)
		archive_write_set_format_pax(w);
	else
		archive_write_set_format_gnutar(w);
	cr_assert_eq(archive_write_open_filename(w, path), ARCHIVE_OK);
	fill(w);
	cr_assert_eq(archive_write_close(w), ARCHIVE_OK);
	archive_write_free(w);
	return path;
}

static void
free_results(struct artifact_result *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].path);
	free(a);
}

/* sha256 of a file as it is on disk, as hex */
static void
sha256_file(const char *path, char hex[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[65536], dig[32];
	unsigned int len;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	cr_assert_geq(fd, 0, "open %s", path);
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(md, buf, n);
	cr_assert_eq(n, 0);
	close(fd);
	EVP_DigestFinal_ex(md, dig, &len);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
}

/* Every result matches its file on disk: size and sha256. */
static void
check_results(const char *dest, struct artifact_result *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char p[1200], hex[65];
		struct stat st;

		snprintf(p, sizeof(p), "%s/%s", dest, a[i].path);
		cr_assert_eq(lstat(p, &st), 0, "%s", p);
		cr_assert(S_ISREG(st.st_mode));
		cr_assert_eq((uint64_t)st.st_size, a[i].bytes,
			     "%s: %lld vs %llu", a[i].path, (long long)st.st_size,
			     (unsigned long long)a[i].bytes);
		sha256_file(p, hex);
		cr_assert_str_eq(a[i].sha256, hex, "sha256 of %s", a[i].path);
	}
}

/* How many names a directory holds besides "." and "..". */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d, "%s", dir);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* ---- what a well-behaved guest sends --------------------------------- */

static void
good(struct archive *w)
{
	add(w, "out/", AE_IFDIR, NULL, NULL);
	add(w, "out/a b.txt", AE_IFREG, "abc", NULL);
	add(w, "./out/sub/x", AE_IFREG, "", NULL);
	add(w, "out/evil", AE_IFLNK, NULL, "/etc/passwd");
	add(w, "out/r\xc3\xa9sum\xc3\xa9.txt", AE_IFREG, "utf-8", NULL);
}

Test(unpack, takes_regular_files_with_sha256)
{
	struct artifact_result *a;
	size_t n;
	struct stat st;
	char *tar = make_tar(good, false);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1000, &a, &n,
					       NULL, NULL),
		     0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(a[0].path, "out/a b.txt");
	cr_assert_eq(a[0].bytes, 3);
	cr_assert_str_eq(a[0].sha256, "ba7816bf8f01cfea414140de5dae2223b00361a"
				      "396177a9cb410ff61f20015ad");
	cr_assert_str_eq(a[1].path, "out/sub/x");
	cr_assert_str_eq(a[1].sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e"
				      "4649b934ca495991b7852b855");
	check_results(at("dest"), a, n);
	cr_assert_lt(lstat(at("dest/out/evil"), &st), 0,
		     "symlink from the guest was created");
	free_results(a, n);
	free(tar);
}

static void
dup_names(struct archive *w)
{
	add(w, "out/x", AE_IFREG, "first, longer version", NULL);
	add(w, "out//x", AE_IFREG, "second", NULL);
	add(w, "./out/./x", AE_IFREG, "third", NULL);
	add(w, "out/y", AE_IFREG, "y", NULL);
}

/* Overlapping globs put a file in the tar twice: one result, the last. */
Test(unpack, duplicate_names_give_one_result_matching_the_file)
{
	struct artifact_result *a;
	size_t n;
	char *tar = make_tar(dup_names, false);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1000, &a, &n,
					       NULL, NULL),
		     0);
	cr_assert_eq(n, 2, "one result per file, got %zu", n);
	cr_assert_str_eq(a[0].path, "out/x");
	cr_assert_eq(a[0].bytes, 5);
	check_results(at("dest"), a, n);
	free_results(a, n);
	free(tar);
}

static void
dense_then_sparse(struct archive *w)
{
	static char dense[70000];

	memset(dense, 'A', sizeof(dense) - 1);
	add(w, "img", AE_IFREG, dense, NULL);
	add_sparse(w, "img", sizeof(dense) - 1);
}

/* The second copy's holes are zeros on disk too, not the first's bytes. */
Test(unpack, duplicate_sparse_copy_reads_back_as_hashed)
{
	struct artifact_result *a;
	size_t n;
	char *tar = make_tar(dense_then_sparse, true);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1 << 20, &a,
					       &n, NULL, NULL),
		     0);
	cr_assert_eq(n, 1);
	check_results(at("dest"), a, n);
	free_results(a, n);
	free(tar);
}

/* ---- refusals leave nothing ------------------------------------------ */

static void
escape(struct archive *w)
{
	add(w, "ok", AE_IFREG, "x", NULL);
	add(w, "../escaped", AE_IFREG, "x", NULL);
}

static void
absolute(struct archive *w)
{
	add(w, "/tmp/qctl-absolute-escape", AE_IFREG, "x", NULL);
}

static void
big(struct archive *w)
{
	add(w, "a", AE_IFREG, "0123456789", NULL);
	add(w, "b", AE_IFREG, "0123456789", NULL);
}

Test(unpack, refuses_escapes_and_caps_bytes)
{
	struct artifact_result *a;
	struct transfer_limit lim = { 0 };
	struct error err = { 0 };
	size_t n;
	char *tar;

	tar = make_tar(escape, false);
	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1000, &a, &n,
					       NULL, &err),
		     -EPROTO);
	cr_assert_neq(access(at("escaped"), F_OK), 0);
	cr_assert_neq(access(at("dest"), F_OK), 0, "refused unpack left dest");
	cr_assert_null(a);
	cr_assert_eq(n, 0);
	free(tar);

	tar = make_tar(absolute, false);
	cr_assert_lt(transfer_unpack_artifacts(tar, at("dest"), 1000, &a, &n,
					       NULL, &err),
		     0);
	cr_assert_neq(access("/tmp/qctl-absolute-escape", F_OK), 0);
	free(tar);

	tar = make_tar(big, false);
	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 15, &a, &n,
					       &lim, &err),
		     -EFBIG);
	cr_assert_str_eq(lim.name, "artifacts_bytes");
	cr_assert_eq(lim.value, 20);
	cr_assert_eq(lim.max, 15);
	cr_assert_neq(access(at("dest"), F_OK), 0, "refused unpack left dest");
	free(tar);
}

static void
escapes_in_names(struct archive *w)
{
	add(w, "out/fine", AE_IFREG, "x", NULL);
	add(w, "out/\xc2\x9b" "31mred", AE_IFREG, "x", NULL);
}

Test(unpack, escape_sequences_in_names_are_refused_and_shown_safely)
{
	struct artifact_result *a;
	struct error err = { 0 };
	size_t n;
	char *tar = make_tar(escapes_in_names, false);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1000, &a, &n,
					       NULL, &err),
		     -EPROTO);
	cr_assert_str_eq(err.msg, "artifacts: refusing \"out/?31mred\" from "
				  "the guest: control character in name");
	cr_assert_neq(access(at("dest"), F_OK), 0, "refused unpack left dest");
	free(tar);
}

/* a file 2,000 levels down: old code made 1,999 directories for it */
static void
deep(struct archive *w)
{
	static char name[4001];

	for (int i = 0; i < 1999; i++)
		memcpy(name + 2 * i, "d/", 2);
	strcpy(name + 2 * 1999, "f");
	add(w, "top.txt", AE_IFREG, "top", NULL);
	add(w, name, AE_IFREG, "deep", NULL);
}

Test(unpack, deep_paths_are_refused_and_nothing_is_left)
{
	struct artifact_result *a;
	struct error err = { 0 };
	size_t n;
	char *tar = make_tar(deep, false);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1 << 20, &a,
					       &n, NULL, &err),
		     -EPROTO);
	cr_assert(strstr(err.msg, "deeper than 32 levels"), "%s", err.msg);
	cr_assert_neq(access(at("dest"), F_OK), 0, "refused unpack left dest");
	free(tar);
}

/* 100,000 members of a few bytes each */
static void
many(struct archive *w)
{
	char name[32];

	for (int i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		add(w, name, AE_IFREG, "", NULL);
	}
}

/* (The timeouts of these two guard against a hang, they measure
 * nothing: making and removing 20,000 entries on the disk of a loaded
 * host took 55 s here.) */
Test(unpack, entries_are_capped, .timeout = 600)
{
	struct artifact_result *a;
	struct transfer_limit lim = { 0 };
	struct error err = { 0 };
	size_t n;
	char *tar = make_tar(many, false);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1 << 20, &a,
					       &n, &lim, &err),
		     -EFBIG);
	cr_assert_str_eq(lim.name, "artifacts_entries");
	cr_assert_eq(lim.value, TRANSFER_MAX_ENTRIES + 1);
	cr_assert_eq(lim.max, TRANSFER_MAX_ENTRIES);
	cr_assert_str_eq(lim.unit, "entries");
	cr_assert_neq(access(at("dest"), F_OK), 0, "refused unpack left dest");
	free(tar);
}

/* 700 files 30 levels down, each in a directory chain of its own: few
 * members, but 20,300 directories for the host to make */
static void
many_dirs(struct archive *w)
{
	char name[200];

	for (int i = 0; i < 700; i++) {
		int k = snprintf(name, sizeof(name), "%d", i);

		for (int j = 0; j < 28; j++)
			k += snprintf(name + k, sizeof(name) - k, "/d");
		snprintf(name + k, sizeof(name) - k, "/f");
		add(w, name, AE_IFREG, "", NULL);
	}
}

Test(unpack, directories_made_count_as_entries, .timeout = 600)
{
	struct artifact_result *a;
	struct transfer_limit lim = { 0 };
	struct error err = { 0 };
	size_t n;
	char *tar = make_tar(many_dirs, false);

	/* an existing --artifacts directory: what was in it stays */
	cr_assert_eq(mkdir(at("dest"), 0755), 0);
	cr_assert_eq(mkdir(at("dest/mine"), 0755), 0);
	cr_assert_eq(close(creat(at("dest/mine/keep"), 0644)), 0);
	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1 << 20, &a,
					       &n, &lim, &err),
		     -EFBIG);
	cr_assert_str_eq(lim.name, "artifacts_entries");
	cr_assert_eq(count_entries(at("dest")), 1, "left in dest");
	cr_assert_eq(access(at("dest/mine/keep"), F_OK), 0);
	free(tar);
}

static void
good_then_bad(struct archive *w)
{
	add(w, "mine/new", AE_IFREG, "new", NULL);
	add(w, "mine/keep", AE_IFREG, "overwritten", NULL);
	add(w, "fresh/dir/x", AE_IFREG, "x", NULL);
	add(w, "top", AE_IFREG, "x", NULL);
	add(w, "bad\x1b]0;title\x07", AE_IFREG, "x", NULL);
}

/* A refusal in an existing directory removes exactly what was unpacked. */
Test(unpack, refusal_in_existing_dir_removes_only_what_it_made)
{
	struct artifact_result *a;
	struct error err = { 0 };
	size_t n;
	char *tar = make_tar(good_then_bad, false);

	cr_assert_eq(mkdir(at("dest"), 0755), 0);
	cr_assert_eq(mkdir(at("dest/mine"), 0755), 0);
	cr_assert_eq(mkdir(at("dest/empty"), 0755), 0);
	cr_assert_eq(close(creat(at("dest/mine/old"), 0644)), 0);
	cr_assert_eq(close(creat(at("dest/mine/keep"), 0644)), 0);
	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1 << 20, &a,
					       &n, NULL, &err),
		     -EPROTO);
	cr_assert(strstr(err.msg, "\"bad?]0;title?\""), "%s", err.msg);
	cr_assert_eq(count_entries(at("dest")), 2, "left in dest");
	cr_assert_eq(count_entries(at("dest/mine")), 1, "left in dest/mine");
	cr_assert_eq(access(at("dest/mine/old"), F_OK), 0);
	cr_assert_eq(access(at("dest/empty"), F_OK), 0);
	free(tar);
}

/* ---- sparse members -------------------------------------------------- */

static void
sparse_bomb(struct archive *w)
{
	add(w, "small", AE_IFREG, "x", NULL);
	add_sparse(w, "huge", 100ll << 30);
}

Test(unpack, sparse_apparent_size_counts_before_writing)
{
	struct artifact_result *a;
	struct transfer_limit lim = { 0 };
	struct error err = { 0 };
	struct stat st;
	size_t n;
	char *tar = make_tar(sparse_bomb, true);

	cr_assert_eq(stat(tar, &st), 0);
	cr_assert_lt(st.st_size, 20000, "the bomb is small");
	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 1 << 20, &a,
					       &n, &lim, &err),
		     -EFBIG);
	cr_assert_str_eq(lim.name, "artifacts_bytes");
	cr_assert_eq(lim.value, (100ull << 30) + 1);
	cr_assert_neq(access(at("dest"), F_OK), 0, "refused unpack left dest");
	free(tar);
}

static void
sparse_ok(struct archive *w)
{
	add_sparse(w, "disk.img", 1 << 20);
	add(w, "after", AE_IFREG, "after", NULL);
}

Test(unpack, sparse_file_size_and_sha256_are_those_on_disk)
{
	struct artifact_result *a;
	struct error err = { 0 };
	struct stat st;
	size_t n;
	char *tar = make_tar(sparse_ok, true);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), 2 << 20, &a,
					       &n, NULL, &err),
		     0, "%s", err.msg);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(a[0].path, "disk.img");
	cr_assert_eq(a[0].bytes, 1 << 20);
	check_results(at("dest"), a, n);
	/* and the host keeps the hole */
	cr_assert_eq(stat(at("dest/disk.img"), &st), 0);
	cr_assert_lt(st.st_blocks * 512, 1 << 20);
	free_results(a, n);
	free(tar);
}

/* the same archive against a cap just below its apparent size */
Test(unpack, sparse_file_at_the_cap)
{
	struct artifact_result *a;
	struct error err = { 0 };
	size_t n;
	char *tar = make_tar(sparse_ok, true);

	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), (1 << 20) + 4,
					       &a, &n, NULL, &err),
		     -EFBIG);
	cr_assert_eq(transfer_unpack_artifacts(tar, at("dest"), (1 << 20) + 5,
					       &a, &n, NULL, &err),
		     0, "%s", err.msg);
	check_results(at("dest"), a, n);
	free_results(a, n);
	free(tar);
}

/* ---- source in ------------------------------------------------------- */

Test(unpack, pack_then_unpack_roundtrip)
{
	struct artifact_result *a;
	size_t n;
	FILE *f;

	mkdir(at("src"), 0755);
	mkdir(at("src/sp ace"), 0755);
	f = fopen(at("src/sp ace/f.txt"), "w");
	fputs("abc", f);
	fclose(f);
	cr_assert_eq(symlink("/etc/passwd", at("src/link")), 0);
	cr_assert_eq(transfer_pack_source(at("src"), at("s.tar"), NULL), 0);
	cr_assert_eq(transfer_unpack_artifacts(at("s.tar"), at("out"), 1 << 20,
					       &a, &n, NULL, NULL),
		     0);
	/* the symlink was packed as a link (not followed): not unpacked */
	cr_assert_eq(n, 1);
	cr_assert_str_eq(a[0].path, "sp ace/f.txt");
	free_results(a, n);
	/* no source: an empty but valid archive */
	cr_assert_eq(transfer_pack_source(NULL, at("s.tar"), NULL), 0);
	cr_assert_eq(transfer_unpack_artifacts(at("s.tar"), at("out2"),
					       1 << 20, &a, &n, NULL, NULL),
		     0);
	cr_assert_eq(n, 0);
	free(a);
}

/* test-transfer.c - tar streams in and out, against hostile archives */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "transfer.h"

Test(transfer, names)
{
	cr_assert_eq(transfer_check_name("out/x.deb"), 0);
	cr_assert_eq(transfer_check_name("a b/c d"), 0);
	cr_assert_eq(transfer_check_name("a/..b/c"), 0);
	cr_assert_lt(transfer_check_name(""), 0);
	cr_assert_lt(transfer_check_name("/etc/passwd"), 0);
	cr_assert_lt(transfer_check_name("../x"), 0);
	cr_assert_lt(transfer_check_name("a/../../x"), 0);
	cr_assert_lt(transfer_check_name("a/.."), 0);
	cr_assert_lt(transfer_check_name("a\nb"), 0);
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
	cr_assert_eq(archive_write_header(w, e), ARCHIVE_OK);
	if (n)
		cr_assert_eq(archive_write_data(w, data, n), (ssize_t)n);
	archive_entry_free(e);
}

static char *
make_tar(const char *dir, void (*fill)(struct archive *))
{
	char *path;
	struct archive *w = archive_write_new();

	cr_assert_gt(asprintf(&path, "%s/in.tar", dir), 0);
	archive_write_set_format_gnutar(w);
	cr_assert_eq(archive_write_open_filename(w, path), ARCHIVE_OK);
	fill(w);
	archive_write_close(w);
	archive_write_free(w);
	return path;
}

static void
good(struct archive *w)
{
	add(w, "out/", AE_IFDIR, NULL, NULL);
	add(w, "out/a b.txt", AE_IFREG, "abc", NULL);
	add(w, "./out/sub/x", AE_IFREG, "", NULL);
	add(w, "out/evil", AE_IFLNK, NULL, "/etc/passwd");
}

Test(transfer, unpack_takes_regular_files_with_sha256)
{
	char dir[] = "/tmp/qctl-tr-XXXXXX", dest[600], p[700];
	struct artifact_result *a;
	size_t n;
	struct stat st;
	char *tar;

	cr_assert_not_null(mkdtemp(dir));
	tar = make_tar(dir, good);
	snprintf(dest, sizeof(dest), "%s/dest", dir);
	cr_assert_eq(transfer_unpack_artifacts(tar, dest, 1000, &a, &n, NULL),
		     0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(a[0].path, "out/a b.txt");
	cr_assert_eq(a[0].bytes, 3);
	cr_assert_str_eq(a[0].sha256, "ba7816bf8f01cfea414140de5dae2223b00361a"
				      "396177a9cb410ff61f20015ad");
	cr_assert_str_eq(a[1].path, "out/sub/x");
	cr_assert_str_eq(a[1].sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e"
				      "4649b934ca495991b7852b855");
	snprintf(p, sizeof(p), "%s/out/evil", dest);
	cr_assert_lt(lstat(p, &st), 0, "symlink from the guest was created");
	for (size_t i = 0; i < n; i++)
		free(a[i].path);
	free(a);
	free(tar);
}

static void
escape(struct archive *w)
{
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

Test(transfer, unpack_refuses_escapes_and_caps_bytes)
{
	char dir[] = "/tmp/qctl-tr-XXXXXX", dest[600], p[700];
	struct artifact_result *a;
	struct error err = { 0 };
	size_t n;
	char *tar;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(dest, sizeof(dest), "%s/dest", dir);
	tar = make_tar(dir, escape);
	cr_assert_lt(transfer_unpack_artifacts(tar, dest, 1000, &a, &n, &err),
		     0);
	snprintf(p, sizeof(p), "%s/escaped", dir);
	cr_assert_neq(access(p, F_OK), 0);
	free(tar);
	for (size_t i = 0; i < n; i++)
		free(a[i].path);
	free(a);

	tar = make_tar(dir, absolute);
	cr_assert_lt(transfer_unpack_artifacts(tar, dest, 1000, &a, &n, &err),
		     0);
	cr_assert_neq(access("/tmp/qctl-absolute-escape", F_OK), 0);
	free(tar);
	for (size_t i = 0; i < n; i++)
		free(a[i].path);
	free(a);

	tar = make_tar(dir, big);
	cr_assert_eq(transfer_unpack_artifacts(tar, dest, 15, &a, &n, &err),
		     -EFBIG);
	free(tar);
	for (size_t i = 0; i < n; i++)
		free(a[i].path);
	free(a);
}

Test(transfer, pack_then_unpack_roundtrip)
{
	char dir[] = "/tmp/qctl-tr-XXXXXX", src[600], p[700], tar[700];
	struct artifact_result *a;
	size_t n;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/src", dir);
	mkdir(src, 0755);
	snprintf(p, sizeof(p), "%s/sp ace", src);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sp ace/f.txt", src);
	f = fopen(p, "w");
	fputs("abc", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/link", src);
	cr_assert_eq(symlink("/etc/passwd", p), 0);
	snprintf(tar, sizeof(tar), "%s/s.tar", dir);
	cr_assert_eq(transfer_pack_source(src, tar, NULL), 0);
	snprintf(p, sizeof(p), "%s/out", dir);
	cr_assert_eq(transfer_unpack_artifacts(tar, p, 1 << 20, &a, &n, NULL),
		     0);
	/* the symlink was packed as a link (not followed): not unpacked */
	cr_assert_eq(n, 1);
	cr_assert_str_eq(a[0].path, "sp ace/f.txt");
	free(a[0].path);
	free(a);
	/* no source: an empty but valid archive */
	cr_assert_eq(transfer_pack_source(NULL, tar, NULL), 0);
	cr_assert_eq(transfer_unpack_artifacts(tar, p, 1 << 20, &a, &n, NULL),
		     0);
	cr_assert_eq(n, 0);
	free(a);
}

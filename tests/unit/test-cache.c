/* test-cache.c - the cache's host side against a temp dir: namespaces,
 * copies, commit and eviction */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "util.h"

static char tmp[64];
static int root = -1;
static struct error err;

static void
setup(void)
{
	strcpy(tmp, "/tmp/test-cache.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	cr_assert_eq(cache_root_open(tmp, &root, &err), 0, "%s", err.msg);
}

static void
teardown(void)
{
	close(root);
	rm_rf(tmp);
}

/* A stored image of size bytes, with data bytes written, used at t. */
static void
put_image(const char *ns, const char *key, off_t size, size_t data, time_t t)
{
	char p[256], buf[4096];
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	int fd;

	snprintf(p, sizeof(p), "%s/%s", tmp, ns);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/%s/%s.img", tmp, ns, key);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, size), 0);
	memset(buf, 'x', sizeof(buf));
	for (size_t i = 0; i < data; i += sizeof(buf))
		cr_assert_eq(pwrite(fd, buf, sizeof(buf), i), sizeof(buf));
	fsync(fd);
	cr_assert_eq(futimens(fd, ts), 0);
	close(fd);
}

static bool
exists(const char *ns, const char *name)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s/%s", tmp, ns, name);
	return access(p, F_OK) == 0;
}

Test(cache, namespaces_do_not_meet, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT, b = CACHE_USE_INIT;
	int fd = -1;

	put_image("1000", "deps", 1 << 20, 4096, 100);
	cr_assert_eq(cache_use_begin(root, 1000, "deps", &a, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(cache_open_image(&a, 1 << 20, &fd, &err), 0);
	cr_assert_geq(fd, 0, "uid 1000 sees its own key");
	close(fd);
	cr_assert_eq(cache_use_begin(root, 1001, "deps", &b, &err), 0);
	cr_assert_eq(cache_open_image(&b, 1 << 20, &fd, &err), 0);
	cr_assert_eq(fd, -1, "uid 1001's \"deps\" is not uid 1000's");
	cache_use_end(&a);
	cache_use_end(&b);
}

Test(cache, other_size_is_empty, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT;
	int fd = -1;

	put_image("0", "k", 1 << 20, 4096, 100);
	cr_assert_eq(cache_use_begin(root, 0, "k", &a, &err), 0);
	cr_assert_eq(cache_open_image(&a, 2 << 20, &fd, &err), 0);
	cr_assert_eq(fd, -1);
	cache_use_end(&a);
}

Test(cache, bad_keys, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT;

	cr_assert_lt(cache_use_begin(root, 0, "..", &a, &err), 0);
	cache_use_end(&a);
	cr_assert_lt(cache_use_begin(root, 0, "a/b", &a, &err), 0);
	cache_use_end(&a);
	cr_assert_lt(cache_use_begin(root, 0, "", &a, &err), 0);
	cache_use_end(&a);
}

Test(cache, copy_keeps_data_and_holes, .init = setup, .fini = teardown)
{
	char p[256], buf[16];
	struct stat st;
	int src, dst;

	put_image("0", "k", 64 << 20, 8192, 100);
	snprintf(p, sizeof(p), "%s/0/k.img", tmp);
	src = open(p, O_RDONLY);
	snprintf(p, sizeof(p), "%s/copy", tmp);
	dst = open(p, O_RDWR | O_CREAT, 0600);
	cr_assert_eq(cache_copy_fd(src, dst, &err), 0, "%s", err.msg);
	cr_assert_eq(fstat(dst, &st), 0);
	cr_assert_eq(st.st_size, 64 << 20);
	cr_assert_lt(st.st_blocks * 512, 1 << 20, "holes stay holes");
	cr_assert_eq(pread(dst, buf, 4, 4096), 4);
	cr_assert_eq(memcmp(buf, "xxxx", 4), 0);
	close(src);
	close(dst);
}

Test(cache, pending_kept_only_on_commit, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT;
	char p[256];
	struct stat st;
	int disk;

	snprintf(p, sizeof(p), "%s/disk", tmp);
	disk = open(p, O_RDWR | O_CREAT, 0600);
	cr_assert_eq(ftruncate(disk, 1 << 20), 0);
	/* a build that fails: the pending copy goes, nothing is stored */
	cr_assert_eq(cache_use_begin(root, 7, "k", &a, &err), 0);
	cr_assert_eq(cache_pending_write(&a, disk, "run-a", &err), 0, "%s",
		     err.msg);
	cr_assert(exists("7", ".k.pending.run-a"));
	cache_use_end(&a);
	cr_assert_not(exists("7", ".k.pending.run-a"));
	cr_assert_not(exists("7", "k.img"));
	/* a build that passes */
	cr_assert_eq(cache_use_begin(root, 7, "k", &a, &err), 0);
	cr_assert_eq(cache_pending_write(&a, disk, "run-b", &err), 0);
	cr_assert_eq(cache_commit(&a, &err), 0, "%s", err.msg);
	cache_use_end(&a);
	snprintf(p, sizeof(p), "%s/7/k.img", tmp);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_size, 1 << 20);
	cr_assert_not(exists("7", ".k.pending.run-b"));
	close(disk);
}

static char evicted[8][80];
static int n_evicted;

static void
on_evict(const char *ns, const char *key, uint64_t bytes, void *opaque)
{
	(void)bytes;
	(void)opaque;
	snprintf(evicted[n_evicted++], sizeof(evicted[0]), "%s/%s", ns, key);
}

Test(cache, evicts_least_recently_used, .init = setup, .fini = teardown)
{
	uint64_t total = 0;

	n_evicted = 0;
	/* 256k of data each: oldest "a" (uid 1), then "b" (uid 2), "c" */
	put_image("1", "a", 16 << 20, 256 << 10, 100);
	put_image("2", "b", 16 << 20, 256 << 10, 200);
	put_image("1", "c", 16 << 20, 256 << 10, 300);
	cr_assert_eq(cache_evict(root, 1 << 20, on_evict, NULL, &total, &err),
		     0, "all fit under 1M");
	cr_assert_eq(cache_evict(root, 600 << 10, on_evict, NULL, &total,
				 &err), 1);
	cr_assert_str_eq(evicted[0], "1/a", "the oldest goes first");
	cr_assert_not(exists("1", "a.img"));
	cr_assert(exists("2", "b.img"));
	cr_assert_leq(total, 600 << 10);
	cr_assert_eq(cache_evict(root, 0, on_evict, NULL, &total, &err), 2);
	cr_assert_str_eq(evicted[1], "2/b");
	cr_assert_str_eq(evicted[2], "1/c");
}

Test(cache, never_evicts_a_key_in_use, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT;
	uint64_t total = 0;

	n_evicted = 0;
	put_image("1", "old", 16 << 20, 256 << 10, 100);
	put_image("1", "new", 16 << 20, 256 << 10, 200);
	/* a build uses "old" (this stamps it as used now, too: make it
	 * the oldest again so only the lock can save it) */
	cr_assert_eq(cache_use_begin(root, 1, "old", &a, &err), 0);
	put_image("1", "old", 16 << 20, 256 << 10, 100);
	cr_assert_eq(cache_evict(root, 0, on_evict, NULL, &total, &err), 1);
	cr_assert_str_eq(evicted[0], "1/new");
	cr_assert(exists("1", "old.img"), "locked by a build: kept");
	cr_assert_geq(total, 256 << 10);
	cache_use_end(&a);
	cr_assert_eq(cache_evict(root, 0, on_evict, NULL, &total, &err), 1);
	cr_assert_not(exists("1", "old.img"));
}

Test(cache, use_stamps_last_use, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT;
	char p[256];
	struct stat st;

	put_image("1", "k", 1 << 20, 4096, 100);
	cr_assert_eq(cache_use_begin(root, 1, "k", &a, &err), 0);
	cache_use_end(&a);
	snprintf(p, sizeof(p), "%s/1/k.img", tmp);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_gt(st.st_mtime, 100);
}

Test(cache, root_must_be_private)
{
	char d[64] = "/tmp/test-cache-root.XXXXXX";
	int fd = -1;

	cr_assert_not_null(mkdtemp(d));
	chmod(d, 0755);
	cr_assert_lt(cache_root_open(d, &fd, &err), 0);
	cr_assert(strstr(err.msg, "private"));
	rmdir(d);
}

Test(cache, stale_pending_goes_live_stays, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT;
	char p[256];
	int fd;

	put_image("1", "k", 1 << 20, 4096, 100);
	put_image("1", "j", 1 << 20, 4096, 100);
	/* a dead manager's pending copy of j; a live build's of k */
	snprintf(p, sizeof(p), "%s/1/.j.pending.run-dead", tmp);
	fd = open(p, O_RDWR | O_CREAT, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s/1/j.lock", tmp);
	close(open(p, O_RDWR | O_CREAT, 0600));
	cr_assert_eq(cache_use_begin(root, 1, "k", &a, &err), 0);
	snprintf(p, sizeof(p), "%s/1/.k.pending.run-live", tmp);
	close(open(p, O_RDWR | O_CREAT, 0600));
	cr_assert_geq(cache_evict(root, 1ull << 40, NULL, NULL, NULL, &err), 0);
	cr_assert_not(exists("1", ".j.pending.run-dead"), "stale: removed");
	cr_assert(exists("1", ".k.pending.run-live"), "its build lives: kept");
	cache_use_end(&a);
}

/* qctl gc: the same rule as eviction's pass, without evicting anything,
 * and never making the root */
Test(cache, gc_drops_stale_pending_only, .init = setup, .fini = teardown)
{
	struct cache_use a = CACHE_USE_INIT;
	char p[256], missing[128];
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	put_image("1", "k", 1 << 20, 4096, 100);
	put_image("2", "j", 1 << 20, 4096, 100);
	snprintf(p, sizeof(p), "%s/2/.j.pending.run-dead", tmp);
	close(open(p, O_RDWR | O_CREAT, 0600));
	snprintf(p, sizeof(p), "%s/2/j.lock", tmp);
	close(open(p, O_RDWR | O_CREAT, 0600));
	cr_assert_eq(cache_use_begin(root, 1, "k", &a, &err), 0);
	snprintf(p, sizeof(p), "%s/1/.k.pending.run-live", tmp);
	close(open(p, O_RDWR | O_CREAT, 0600));
	cr_assert_eq(cache_gc(tmp, out), 1);
	fclose(out);
	cr_assert(strstr(buf, "removed 1 pending cache copy"), "%s", buf);
	free(buf);
	cr_assert_not(exists("2", ".j.pending.run-dead"), "stale: removed");
	cr_assert(exists("1", ".k.pending.run-live"), "its build lives: kept");
	cr_assert(exists("1", "k.img") && exists("2", "j.img"),
		  "gc evicts nothing");
	cache_use_end(&a);
	cr_assert_eq(cache_gc(tmp, NULL), 1, "now that build is gone too");
	/* no root: nothing made */
	snprintf(missing, sizeof(missing), "%s/none", tmp);
	cr_assert_eq(cache_gc(missing, NULL), 0);
	cr_assert_neq(access(missing, F_OK), 0);
	/* a root others may write: not touched */
	snprintf(p, sizeof(p), "%s/2/.j.pending.run-x", tmp);
	close(open(p, O_RDWR | O_CREAT, 0600));
	chmod(tmp, 0777);
	cr_assert_lt(cache_gc(tmp, NULL), 0);
	cr_assert(exists("2", ".j.pending.run-x"));
	chmod(tmp, 0700);
}

/* as the state directory: a root under a directory others may write
 * (not sticky) could be swapped under us, so it is refused */
Test(cache, root_under_a_shared_directory)
{
	char d[64] = "/tmp/test-cache-anc.XXXXXX", p[96];
	int fd = -1;

	cr_assert_not_null(mkdtemp(d));
	chmod(d, 0777);
	snprintf(p, sizeof(p), "%s/cache", d);
	cr_assert_lt(cache_root_open(p, &fd, &err), 0, "a 0777 parent");
	cr_assert_eq(fd, -1);
	chmod(d, 0755);
	cr_assert_eq(cache_root_open(p, &fd, &err), 0, "%s", err.msg);
	close(fd);
	rmdir(p);
	rmdir(d);
}

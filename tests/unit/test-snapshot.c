/* test-snapshot.c - the store of saved VM states (snapshot.h) */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot.h"
#include "vm.h"

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-snapshot.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	rm_rf(dir);
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 60);

/* Save "stream" for desc as QEMU would: header by us, bytes by it. */
static void
save(const char *desc, const char *stream)
{
	struct snapshot s;
	struct error err = { 0 };
	uint64_t bytes = 0;
	int fd;

	snapshot_init(&s, dir, desc);
	fd = snapshot_begin(&s, &err);
	cr_assert_geq(fd, 0, "%s", err.msg);
	cr_assert_eq(write(fd, stream, strlen(stream)),
		     (ssize_t)strlen(stream));
	cr_assert_eq(snapshot_commit(&s, &bytes, &err), 0, "%s", err.msg);
	cr_assert_gt(bytes, strlen(stream));
	snapshot_free(&s);
}

/* What a build starting from desc's state reads: the stream, or NULL. */
static char *
load(const char *desc)
{
	struct snapshot s;
	struct error err = { 0 };
	char buf[256];
	ssize_t n;
	int fd;

	snapshot_init(&s, dir, desc);
	fd = snapshot_open(&s, &err);
	snapshot_free(&s);
	if (fd == -ENOENT)
		return NULL;
	cr_assert_geq(fd, 0, "%s", err.msg);
	n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	close(fd);
	return strdup(buf);
}

Test(snapshot, saved_state_is_read_from_its_stream_start)
{
	char *got;

	cr_assert_null(load("argv a\n"));
	save("argv a\n", "QEVM-stream-1");
	got = load("argv a\n");
	cr_assert_str_eq(got, "QEVM-stream-1");
	free(got);
}

Test(snapshot, another_descriptor_never_gets_it)
{
	save("qemu 1 2 3\nargv a\n", "S1");
	/* a prefix, a longer one, one byte changed */
	cr_assert_null(load("qemu 1 2 3\n"));
	cr_assert_null(load("qemu 1 2 3\nargv a\nX"));
	cr_assert_null(load("qemu 1 2 4\nargv a\n"));
}

Test(snapshot, same_key_other_descriptor_is_not_loaded)
{
	char key[17], path[256];
	FILE *f;

	/* a file under the right name whose header names something else
	 * (a collision, or a file put there) */
	snapshot_key("mine", key);
	save("theirs", "S");
	snprintf(path, sizeof(path), "%s/snapshots/%s.vmstate", dir, key);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("qctl-snapshot 1\n6\ntheirsS", f);
	fclose(f);
	cr_assert_null(load("mine"));
	/* garbage headers */
	f = fopen(path, "w");
	fputs("qctl-snapshot 1\n99999999999999999999999\nmine", f);
	fclose(f);
	cr_assert_null(load("mine"));
	f = fopen(path, "w");
	fputs("QEVM", f);
	fclose(f);
	cr_assert_null(load("mine"));
}

Test(snapshot, what_qemu_keeps_open_never_reaches_the_saved_state)
{
	struct snapshot s;
	struct error err = { 0 };
	uint64_t bytes;
	char *got;
	int fd, qemu_fd;

	snapshot_init(&s, dir, "d");
	fd = snapshot_begin(&s, &err);
	cr_assert_geq(fd, 0, "%s", err.msg);
	/* QEMU's copy of the fd, kept after the stream was written */
	qemu_fd = dup(fd);
	cr_assert_eq(write(fd, "good", 4), 4);
	cr_assert_eq(snapshot_commit(&s, &bytes, &err), 0, "%s", err.msg);
	snapshot_free(&s);
	cr_assert_eq(pwrite(qemu_fd, "EVIL-EVIL-EVIL-EVIL", 19, 0), 19);
	cr_assert_eq(write(qemu_fd, "EVIL", 4), 4);
	close(qemu_fd);
	got = load("d");
	cr_assert_str_eq(got, "good");
	free(got);
}

Test(snapshot, one_writer_at_a_time_and_abort_leaves_nothing)
{
	struct snapshot a, b;
	struct error err = { 0 };
	char path[256];
	int fa;

	snapshot_init(&a, dir, "d");
	snapshot_init(&b, dir, "d");
	fa = snapshot_begin(&a, &err);
	cr_assert_geq(fa, 0, "%s", err.msg);
	cr_assert_eq(snapshot_begin(&b, &err), -EBUSY);
	snapshot_abort(&a);
	snprintf(path, sizeof(path), "%s/snapshots/%s", dir, a.tmp);
	cr_assert_neq(access(path, F_OK), 0, "the temporary file stayed");
	cr_assert_null(load("d"));
	/* the lock went with it */
	cr_assert_geq(snapshot_begin(&b, &err), 0, "%s", err.msg);
	snapshot_free(&a);
	snapshot_free(&b);
}

Test(snapshot, invalidate_removes_it)
{
	struct snapshot s;

	save("d", "S");
	snapshot_init(&s, dir, "d");
	snapshot_invalidate(&s);
	snapshot_free(&s);
	cr_assert_null(load("d"));
}

Test(snapshot, a_directory_others_may_write_is_refused)
{
	struct snapshot s;
	struct error err = { 0 };
	char path[256];

	save("d", "S");
	snprintf(path, sizeof(path), "%s/snapshots", dir);
	cr_assert_eq(chmod(path, 0777), 0);
	snapshot_init(&s, dir, "d");
	cr_assert_eq(snapshot_open(&s, &err), -EPERM);
	cr_assert_eq(snapshot_begin(&s, &err), -EPERM);
	snapshot_free(&s);
}

Test(snapshot, least_recently_used_go_beyond_the_cap)
{
	char d[32], *got;
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	char key[17], path[256];

	for (int i = 0; i < SNAPSHOT_KEEP; i++) {
		snprintf(d, sizeof(d), "d%d", i);
		save(d, "S");
		/* d0 oldest, each next one newer */
		snapshot_key(d, key);
		snprintf(path, sizeof(path), "%s/snapshots/%s.vmstate", dir,
			 key);
		old[0].tv_sec = old[1].tv_sec = 1000 + i;
		cr_assert_eq(utimensat(AT_FDCWD, path, old, 0), 0);
	}
	/* using d0 makes d1 the least recently used */
	got = load("d0");
	cr_assert_str_eq(got, "S");
	free(got);
	save("new", "S");
	cr_assert_null(load("d1"));
	for (int i = 0; i < SNAPSHOT_KEEP; i++) {
		if (i == 1)
			continue;
		snprintf(d, sizeof(d), "d%d", i);
		got = load(d);
		cr_assert_not_null(got, "%s was removed", d);
		free(got);
	}
	got = load("new");
	cr_assert_not_null(got);
	free(got);
}

/* What makes a VM shape: the name does not, memory, disk size, a NIC and
 * the image's files do (vm_describe, vm.h). */
Test(snapshot, descriptor_sees_the_shape_and_the_files_not_the_name)
{
	char kpath[128], ipath[128], dpath[128];
	struct qemu_config c = {
		.accel = ACCEL_TCG, .cpus = 1, .memory = 512ull << 20,
		.kernel = "k", .initrd = "i", .cmdline = "quiet",
		.qmp_fd = 3, .agent_fd = 4, .console_fd = 5, .tap_fd = -1,
		.disk_fd = -1, .root_file = -1, .root_fd = -1,
		.name = "qctl-run-a", .sandbox = true,
	};
	struct error err = { 0 };
	char *a, *b;
	int disk;
	struct timespec t[2] = { { 5, 0 }, { 5, 0 } };

	snprintf(kpath, sizeof(kpath), "%s/k", dir);
	snprintf(ipath, sizeof(ipath), "%s/i", dir);
	snprintf(dpath, sizeof(dpath), "%s/d", dir);
	close(open(kpath, O_WRONLY | O_CREAT, 0600));
	close(open(ipath, O_WRONLY | O_CREAT, 0600));
	c.kernel_file = open(kpath, O_RDONLY);
	c.initrd_file = open(ipath, O_RDONLY);
	disk = open(dpath, O_RDWR | O_CREAT, 0600);
	cr_assert(c.kernel_file >= 0 && c.initrd_file >= 0 && disk >= 0);
	cr_assert_eq(ftruncate(disk, 1 << 20), 0);
	cr_assert_eq(vm_describe(&c, -1, disk, &a, &err), 0, "%s", err.msg);
	c.name = "qctl-run-b";
	cr_assert_eq(vm_describe(&c, -1, disk, &b, &err), 0, "%s", err.msg);
	cr_assert_str_eq(a, b, "the VM's name changed the shape");
	free(b);
	c.memory = 256ull << 20;
	cr_assert_eq(vm_describe(&c, -1, disk, &b, &err), 0, "%s", err.msg);
	cr_assert_str_neq(a, b, "memory is not in the shape");
	free(b);
	c.memory = 512ull << 20;
	cr_assert_eq(ftruncate(disk, 2 << 20), 0);
	cr_assert_eq(vm_describe(&c, -1, disk, &b, &err), 0, "%s", err.msg);
	cr_assert_str_neq(a, b, "the disk's size is not in the shape");
	free(b);
	cr_assert_eq(ftruncate(disk, 1 << 20), 0);
	cr_assert_eq(vm_describe(&c, 6, disk, &b, &err), 0, "%s", err.msg);
	cr_assert_str_neq(a, b, "a NIC is not in the shape");
	free(b);
	/* the initrd rewritten: a new modification time */
	cr_assert_eq(futimens(c.initrd_file, t), 0);
	cr_assert_eq(vm_describe(&c, -1, disk, &b, &err), 0, "%s", err.msg);
	cr_assert_str_neq(a, b, "a rewritten initrd is not seen");
	free(b);
	free(a);
	close(disk);
	close(c.kernel_file);
	close(c.initrd_file);
}

/*
 * root.c - boot into a builder image's root file system.
 *
 * An image with a root (image.json "root", e.g. a Debian made by
 * mmdebstrap) reaches the guest as a read-only virtio disk with serial
 * "qctl-root", and the manager adds the word "qctl.root" to the kernel
 * command line.  The agent, still PID 1 in the initramfs, then mounts
 * that disk read-only, the build's scratch disk (serial "scratch") beside
 * it, and an overlay of the two: the base is shared by every build and
 * never written; each build's writes land on its own scratch disk.  It
 * moves /dev, /proc, /sys, /tmp and /run into the overlay and makes it
 * the root, so that every step runs in the image's system while the agent
 * stays PID 1.  The initramfs's busybox stays reachable as
 * GA_ROOT_BUSYBOX, for the manager's set-up script.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROOT_DIR "/.qctl"
#define ROOT_LOWER ROOT_DIR "/lower"
#define ROOT_SCRATCH ROOT_DIR "/scratch"
#define ROOT_NEW ROOT_DIR "/root"
/* how long the disks may take to appear after virtio_blk is loaded */
#define ROOT_WAIT_MS 5000

static bool
cmdline_has_word(const char *word)
{
	char line[4096];
	size_t n = strlen(word);
	const char *p;
	FILE *f = fopen("/proc/cmdline", "re");

	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	for (p = line; (p = strstr(p, word)) != NULL; p += n)
		if ((p == line || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

bool
root_wanted(void)
{
	return cmdline_has_word("qctl.root");
}

/* "/dev/vdX" of the virtio disk whose serial is SERIAL: 0, or -ENOENT. */
static int
disk_scan(const char *serial, char *dev, size_t size)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	int r = -ENOENT;

	if (!d)
		return -errno;
	while (r < 0 && (e = readdir(d)) != NULL) {
		char path[300], buf[64];
		ssize_t n;
		int fd;

		if (strncmp(e->d_name, "vd", 2) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (strcmp(buf, serial) == 0 &&
		    (size_t)snprintf(dev, size, "/dev/%s", e->d_name) < size &&
		    access(dev, F_OK) == 0)
			r = 0;
	}
	closedir(d);
	return r;
}

static int
disk_find(const char *serial, char *dev, size_t size)
{
	int64_t end = ga_now_ms() + ROOT_WAIT_MS;
	const struct timespec tick = {0, 10 * 1000 * 1000};
	int r;

	/* no udev: the probe may still be running, so poll */
	while ((r = disk_scan(serial, dev, size)) < 0 && ga_now_ms() < end)
		nanosleep(&tick, NULL);
	return r;
}

static int
mkdir_ok(const char *path, mode_t mode)
{
	return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -errno;
}

#define TRY(what, call)                                                        \
	do {                                                                   \
		if ((call) < 0) {                                              \
			int e_ = errno;                                        \
			ga_log("root: %s: %s", what, strerror(e_));            \
			return -e_;                                            \
		}                                                              \
	} while (0)

/* The busybox of the initramfs, bind-mounted where the new root sees it. */
static int
keep_busybox(void)
{
	int fd;

	TRY("mkdir /run/qctl", mkdir_ok("/run/qctl", 0755));
	fd = open(GA_ROOT_BUSYBOX, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	TRY("create " GA_ROOT_BUSYBOX, fd);
	close(fd);
	TRY("bind busybox", mount("/bin/busybox", GA_ROOT_BUSYBOX, NULL,
				  MS_BIND, NULL));
	return 0;
}

int
root_switch(void)
{
	static const char *const moved[] = {"/dev", "/proc", "/sys", "/tmp",
					    "/run"};
	char rootdev[64], scratchdev[64], path[128];
	int r;

	r = disk_find(GA_ROOT_SERIAL, rootdev, sizeof(rootdev));
	if (r < 0) {
		ga_log("root: no disk with serial %s: %s", GA_ROOT_SERIAL,
		       strerror(-r));
		return r;
	}
	r = disk_find(GA_SCRATCH_SERIAL, scratchdev, sizeof(scratchdev));
	if (r < 0) {
		ga_log("root: no disk with serial %s: %s", GA_SCRATCH_SERIAL,
		       strerror(-r));
		return r;
	}
	TRY("mkdir " ROOT_DIR, mkdir_ok(ROOT_DIR, 0700));
	TRY("mkdir " ROOT_LOWER, mkdir_ok(ROOT_LOWER, 0755));
	TRY("mkdir " ROOT_SCRATCH, mkdir_ok(ROOT_SCRATCH, 0755));
	TRY("mkdir " ROOT_NEW, mkdir_ok(ROOT_NEW, 0755));
	/* the base: read-only at both ends (QEMU opened it read-only) */
	TRY("mount base", mount(rootdev, ROOT_LOWER, "ext4",
				MS_RDONLY | MS_NOATIME, NULL));
	TRY("mount scratch", mount(scratchdev, ROOT_SCRATCH, "ext4",
				   MS_NOATIME, NULL));
	TRY("mkdir upper", mkdir_ok(ROOT_SCRATCH "/upper", 0755));
	TRY("mkdir work", mkdir_ok(ROOT_SCRATCH "/work", 0755));
	TRY("mount overlay",
	    mount("overlay", ROOT_NEW, "overlay", MS_NOATIME,
		  "lowerdir=" ROOT_LOWER ",upperdir=" ROOT_SCRATCH
		  "/upper,workdir=" ROOT_SCRATCH "/work"));
	r = keep_busybox();
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		snprintf(path, sizeof(path), ROOT_NEW "%s", moved[i]);
		TRY(path, mkdir_ok(path, 0755));
		TRY(path, mount(moved[i], path, NULL, MS_MOVE, NULL));
	}
	/* what switch_root does, minus emptying the initramfs: its few MiB
	 * are not worth the risk of deleting from the wrong tree */
	TRY("chdir " ROOT_NEW, chdir(ROOT_NEW));
	TRY("move root", mount(".", "/", NULL, MS_MOVE, NULL));
	TRY("chroot", chroot("."));
	TRY("chdir /", chdir("/"));
	return 0;
}

bool
root_handoff_wanted(void)
{
	return cmdline_has_word("qctl.ssh");
}

/*
 * The image's init becomes PID 1 with the root, /dev, /proc, /sys, /run
 * and the loaded modules as root_switch left them; the agent is gone.
 * Signals as a fresh process has them, a minimal environment.
 */
int
root_handoff(void)
{
	char *const argv[] = {(char *)GA_SSH_INIT, NULL};
	char *const envp[] = {
		(char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
			"/usr/bin:/sbin:/bin",
		(char *)"HOME=/root", (char *)"TERM=dumb", NULL};
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	execve(GA_SSH_INIT, argv, envp);
	ga_log("root: exec %s: %s", GA_SSH_INIT, strerror(errno));
	return -1;
}

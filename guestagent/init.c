/*
 * init.c - the PID-1 half of guestagent: what an init must do before the
 * agent can serve (file systems, console, hostname, loopback, modules) and
 * the way out (power off).  Nothing here runs when the agent is a service.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GA_HOSTNAME "builder"
#define GA_MODULES_ORDER "/etc/modules.order"

struct ga_mount {
	const char *src;
	const char *dir;
	const char *type;
	unsigned long flags;
	const char *data;
};

static const struct ga_mount mounts[] = {
	{"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
	{"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
	/* devtmpfs: device nodes appear without udev, including vportNpM */
	{"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	 "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
	{"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
};

/* target, link */
static const char *const links[][2] = {
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
};

static void
mount_all(void)
{
	size_t i;

	for (i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		const struct ga_mount *m = &mounts[i];

		if (mkdir(m->dir, 0755) < 0 && errno != EEXIST)
			ga_log("mkdir %s: %s", m->dir, strerror(errno));
		if (mount(m->src, m->dir, m->type, m->flags, m->data) < 0 &&
		    errno != EBUSY)
			ga_log("mount %s: %s", m->dir, strerror(errno));
	}
	/* what bash process substitution and "cat /dev/stdin" expect (the
	 * result checked: a distribution's _FORTIFY_SOURCE insists) */
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			ga_log("symlink %s: %s", links[i][1], strerror(errno));
}

/*
 * The kernel opens /dev/console as fds 0-2 only if the initramfs has the
 * node; make sure 0-2 are open so no pipe or port lands on them.
 */
static void
console_setup(void)
{
	int fd, i;

	for (i = 0; i < 3; i++) {
		if (fcntl(i, F_GETFD) >= 0)
			continue;
		fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd < 0)
			fd = open("/dev/null", O_RDWR);
		if (fd >= 0 && fd != i) {
			dup2(fd, i);
			close(fd);
		}
	}
}

/* Bring up lo: builds and their tests expect localhost to work. */
static void
loopback_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			ga_log("lo up: %s", strerror(errno));
	}
	close(s);
}

/*
 * Parameters for module name from the kernel command line ("name.p=v"),
 * as modprobe would pass them: the kernel keeps those for loadable modules
 * to userspace, and microvm without ACPI describes its virtio-mmio devices
 * only as virtio_mmio.device=... there.
 */
static void
module_params(const char *cmdline, const char *path, char *out, size_t size)
{
	char name[128], tok[512];
	const char *base = strrchr(path, '/'), *p = cmdline;
	size_t n, i, used = 0;

	base = base ? base + 1 : path;
	n = strcspn(base, ".");
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	for (i = 0; i < n; i++)
		name[i] = base[i] == '-' ? '_' : base[i];
	name[n] = '\0';
	out[0] = '\0';
	while (*p) {
		size_t len;

		p += strspn(p, " \t\n");
		len = strcspn(p, " \t\n");
		if (!len)
			break;
		if (len < sizeof(tok) && len > n + 1 && !strncmp(p, name, n) &&
		    p[n] == '.' && used + (len - n - 1) + 2 < size) {
			memcpy(tok, p + n + 1, len - n - 1);
			tok[len - n - 1] = '\0';
			used += snprintf(out + used, size - used, "%s%s",
					 used ? " " : "", tok);
		}
		p += len;
	}
}

/*
 * qctl names the modules this VM has no device for in
 * "qctl.skip_modules=a,b" (no NIC: no virtio_net; PCI: no virtio_mmio):
 * loading them costs boot time under TCG and buys nothing.
 */
static bool
module_skipped(const char *cmdline, const char *path)
{
	static const char key[] = "qctl.skip_modules=";
	const char *base = strrchr(path, '/'), *p = strstr(cmdline, key);
	size_t n;

	base = base ? base + 1 : path;
	n = strcspn(base, ".");
	if (!p || (p != cmdline && p[-1] != ' '))
		return false;
	p += sizeof(key) - 1;
	while (*p && *p != ' ' && *p != '\n') {
		size_t len = strcspn(p, ", \n");
		bool same = len == n;

		for (size_t i = 0; same && i < n; i++)
			same = (p[i] == '-' ? '_' : p[i]) ==
			       (base[i] == '-' ? '_' : base[i]);
		if (same)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

static void
load_module(const char *path, const char *cmdline)
{
	char params[1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		ga_log("module %s: %s", path, strerror(errno));
		return;
	}
	module_params(cmdline, path, params, sizeof(params));
	/* glibc has no finit_module wrapper; EEXIST means built in or loaded */
	if (syscall(SYS_finit_module, fd, params, 0) < 0 && errno != EEXIST)
		ga_log("finit_module %s: %s", path, strerror(errno));
	close(fd);
}

/* Load every module listed in /etc/modules.order, dependencies first. */
static void
load_modules(void)
{
	char line[1024], cmdline[4096] = "";
	FILE *f = fopen("/proc/cmdline", "re");

	if (f) {
		if (!fgets(cmdline, sizeof(cmdline), f))
			cmdline[0] = '\0';
		fclose(f);
	}
	f = fopen(GA_MODULES_ORDER, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#' ||
		    module_skipped(cmdline, line))
			continue;
		load_module(line, cmdline);
	}
	fclose(f);
}

void
init_system(void)
{
	mount_all();
	console_setup();
	if (sethostname(GA_HOSTNAME, strlen(GA_HOSTNAME)) < 0)
		ga_log("sethostname: %s", strerror(errno));
	/* Ctrl-Alt-Del becomes SIGINT to us, which is ignored */
	reboot(RB_DISABLE_CAD);
	loopback_up();
	load_modules();
	if (root_wanted() && root_switch() < 0)
		ga_fatal("cannot enter the image's root file system");
	/* an image served over ssh: its own init takes PID 1 from here on,
	 * and the agent never serves (docs/ssh-transport.md) */
	if (root_wanted() && root_handoff_wanted() && root_handoff() < 0)
		ga_fatal("cannot start the image's init " GA_SSH_INIT);
}

_Noreturn void
init_poweroff(void)
{
	/* the build's processes must not write to disks while they go away */
	kill(-1, SIGKILL);
	sync();
	/*
	 * Without ACPI the kernel has no power-off method and turns
	 * RB_POWER_OFF into a halt that never returns, leaving QEMU running;
	 * a reset instead makes QEMU (-no-reboot) exit.
	 */
	if (access("/sys/firmware/acpi", F_OK) == 0)
		reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	ga_log("power off failed: %s", strerror(errno));
	if (getpid() != 1)
		_exit(1);
	for (;;)
		pause();
}

/* qemu-argv.c - QEMU command line: a pure function of the VM's config */
#include "qemu-argv.h"

#include <cpuid.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

struct argv_builder {
	char **v;
	size_t n, cap;
};

static void
argv_add(struct argv_builder *b, char *s)
{
	if (b->n + 2 > b->cap) {
		b->cap = b->cap ? b->cap * 2 : 32;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	b->v[b->n++] = s;
	b->v[b->n] = NULL;
}

static void
argv_addf(struct argv_builder *b, const char *a, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
argv_addf(struct argv_builder *b, const char *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a)
		argv_add(b, xstrdup(a));
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	argv_add(b, s ? s : xstrdup(""));
}

/*
 * QEMU's option syntax splits on ',' (a literal comma is ",,"); a path with
 * a comma could otherwise smuggle extra options into -kernel or -initrd.
 */
static char *
qemu_escape(const char *s)
{
	size_t n = 0;
	char *out, *p;

	for (const char *q = s; *q; q++)
		n += *q == ',' ? 2 : 1;
	out = p = xmalloc(n + 1);
	for (const char *q = s; *q; q++) {
		*p++ = *q;
		if (*q == ',')
			*p++ = ',';
	}
	*p = '\0';
	return out;
}

void
qemu_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

static bool
has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int
qemu_argv_build(const struct qemu_config *cfg, char ***argv,
		struct error *err)
{
	struct argv_builder b = { 0 };
	const char *machine = cfg->machine ? cfg->machine : "q35";
	bool microvm = !strcmp(machine, "microvm");
	uint64_t mib;
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;

	if (strcmp(machine, "q35") && !microvm)
		return error_set(err, EINVAL, "unsupported machine type %s",
				 machine);
	if (cfg->accel != ACCEL_KVM && cfg->accel != ACCEL_TCG)
		return error_set(err, EINVAL, "accelerator not resolved");
	if (cfg->cpus < 1 || cfg->cpus > 64)
		return error_set(err, EINVAL, "cpus %d out of range 1..64",
				 cfg->cpus);
	if (cfg->memory < (16u << 20) || cfg->memory > (1ull << 40))
		return error_set(err, EINVAL, "memory %llu out of range",
				 (unsigned long long)cfg->memory);
	if (!cfg->kernel || !cfg->initrd)
		return error_set(err, EINVAL, "kernel and initrd required");
	if (has_ctl(cfg->kernel) || has_ctl(cfg->initrd) ||
	    (cfg->cmdline && has_ctl(cfg->cmdline)))
		return error_set(err, EINVAL,
				 "control character in kernel, initrd or cmdline");
	if (cfg->qmp_fd < 0 || cfg->agent_fd < 0)
		return error_set(err, EINVAL, "QMP and agent fds required");
	if (cfg->name && strspn(cfg->name, "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
				 strlen(cfg->name))
		return error_set(err, EINVAL, "bad VM name");

	mib = (cfg->memory + (1 << 20) - 1) >> 20;
	kernel = qemu_escape(cfg->kernel);
	initrd = qemu_escape(cfg->initrd);

	argv_add(&b, xstrdup(cfg->binary ? cfg->binary : "qemu-system-x86_64"));
	if (cfg->name)
		argv_addf(&b, "-name", "%s,debug-threads=on", cfg->name);
	/* Start paused: nothing runs until the manager has QMP and says cont. */
	argv_add(&b, xstrdup("-S"));
	argv_add(&b, xstrdup("-nodefaults"));
	argv_add(&b, xstrdup("-no-user-config"));
	argv_addf(&b, "-display", "none");
	/* A reboot request ends the VM instead of running it again; a guest
	 * power-off stops it but QEMU stays for a last look (final stats)
	 * until the manager says quit. */
	argv_add(&b, xstrdup("-no-reboot"));
	argv_add(&b, xstrdup("-no-shutdown"));
	if (microvm)
		argv_addf(&b, "-machine", "microvm,pit=off,pic=off,rtc=on,"
			  "isa-serial=%s",
			  cfg->console_fd >= 0 ? "on" : "off");
	else
		argv_addf(&b, "-machine", "q35,smbus=off,vmport=off,sata=off,"
			  "usb=off,graphics=off");
	/* TCG's translation cache defaults to 1 GiB; a fixed, smaller one
	 * keeps QEMU's memory overhead known (see limit.c). */
	if (cfg->accel == ACCEL_TCG)
		argv_addf(&b, "-accel", "tcg,tb-size=%d",
			  cfg->tb_size_mib ? cfg->tb_size_mib : 256);
	else
		argv_addf(&b, "-accel", "kvm");
	argv_addf(&b, "-cpu", "%s", cfg->accel == ACCEL_KVM ? "host" : "max");
	argv_addf(&b, "-smp", "%d", cfg->cpus);
	argv_addf(&b, "-m", "%llu", (unsigned long long)mib);
	argv_addf(&b, "-kernel", "%s", kernel);
	argv_addf(&b, "-initrd", "%s", initrd);
	argv_addf(&b, "-append", "%s", cfg->cmdline ? cfg->cmdline : "");
	/* The channels are inherited socketpair ends: nothing to connect to
	 * in the filesystem, so no other local user can reach QMP. */
	argv_addf(&b, "-chardev", "socket,id=qmp,fd=%d", cfg->qmp_fd);
	argv_addf(&b, "-mon", "chardev=qmp,mode=control");
	if (cfg->console_fd >= 0) {
		argv_addf(&b, "-chardev", "socket,id=console,fd=%d",
			  cfg->console_fd);
		argv_addf(&b, "-serial", "chardev:console");
	} else {
		argv_addf(&b, "-serial", "none");
	}
	argv_addf(&b, "-chardev", "socket,id=agent,fd=%d", cfg->agent_fd);
	argv_addf(&b, "-device", "%s",
		  microvm ? "virtio-serial-device" : "virtio-serial-pci");
	/* With an id, QEMU says VSERPORT_CHANGE when the guest closes the
	 * port: an agent that left is seen at once, not at a timeout. */
	argv_addf(&b, "-device", "virtserialport,chardev=agent,id=%s,name=%s",
		  QEMU_AGENT_PORT_ID, "org.qctl.agent.0");
	if (cfg->disk_fd >= 0) {
		/* Handed over as an fd set: QEMU dups the open file and never
		 * needs a path to (or permission on) the run directory. */
		argv_addf(&b, "-add-fd", "fd=%d,set=1,opaque=scratch",
			  cfg->disk_fd);
		argv_addf(&b, "-add-fd", "fd=%d,set=1,opaque=scratch-ro",
			  cfg->disk_fd + 1);
		/* No image locking: the file is this VM's alone, and a
		 * VM resumed after its state was saved (snapshot.h) must
		 * take its write lock again, which the read-only twin's
		 * own lock would refuse. */
		argv_addf(&b, "-drive", "if=none,id=disk0,file=/dev/fdset/1,"
			  "format=raw,file.locking=off,discard=unmap,"
			  "detect-zeroes=unmap");
		argv_addf(&b, "-device", "%s,drive=disk0,serial=scratch",
			  microvm ? "virtio-blk-device" : "virtio-blk-pci");
	}
	if (cfg->root_fd >= 0) {
		/* The image's base: shared by every build, never written.
		 * The guest finds it by its serial, and overlays it with
		 * the scratch disk (guestagent/root.c). */
		argv_addf(&b, "-add-fd", "fd=%d,set=2,opaque=root",
			  cfg->root_fd);
		argv_addf(&b, "-drive", "if=none,id=disk1,file=/dev/fdset/2,"
			  "format=raw,read-only=on");
		argv_addf(&b, "-device", "%s,drive=disk1,serial=qctl-root",
			  microvm ? "virtio-blk-device" : "virtio-blk-pci");
	}
	if (cfg->cache_fd > 0) {
		/* The recipe's cache: the build's own copy, by fd like the
		 * scratch disk; the guest finds it by its serial. */
		argv_addf(&b, "-add-fd", "fd=%d,set=3,opaque=cache",
			  cfg->cache_fd);
		argv_addf(&b, "-add-fd", "fd=%d,set=3,opaque=cache-ro",
			  cfg->cache_fd + 1);
		argv_addf(&b, "-drive", "if=none,id=disk2,file=/dev/fdset/3,"
			  "format=raw");
		argv_addf(&b, "-device", "%s,drive=disk2,serial=qctl-cache",
			  microvm ? "virtio-blk-device" : "virtio-blk-pci");
	}
	if (cfg->tap_fd >= 0) {
		/* The tap lives in the builder's own namespace; QEMU only
		 * gets its fd, never the right to make or configure one. */
		argv_addf(&b, "-netdev", "tap,id=net0,fd=%d", cfg->tap_fd);
		argv_addf(&b, "-device",
			  "%s,netdev=net0,mac=52:54:00:71:c7:02",
			  microvm ? "virtio-net-device" : "virtio-net-pci");
	}
	if (cfg->incoming_fd > 0)
		/* the saved state of a VM with this very command line
		 * (snapshot.h); -S holds it paused until cont */
		argv_addf(&b, "-incoming", "fd:%d", cfg->incoming_fd);
	argv_addf(&b, "-parallel", "none");
	argv_addf(&b, "-monitor", "none");
	if (cfg->sandbox)
		/* The guest may own QEMU: deny it new privileges, spawning
		 * processes, changing resource controls, obsolete syscalls. */
		argv_addf(&b, "-sandbox", "on,obsolete=deny,elevateprivileges="
			  "deny,spawn=deny,resourcecontrol=deny");
	*argv = b.v;
	return 0;
}

int
accel_parse(const char *s, enum accel *out, struct error *err)
{
	if (!strcmp(s, "auto"))
		*out = ACCEL_AUTO;
	else if (!strcmp(s, "kvm"))
		*out = ACCEL_KVM;
	else if (!strcmp(s, "tcg"))
		*out = ACCEL_TCG;
	else
		return error_set(err, EINVAL,
				 "--accel: \"%s\" is not auto, kvm or tcg", s);
	return 0;
}

const char *
accel_name(enum accel a)
{
	switch (a) {
	case ACCEL_KVM:
		return "kvm";
	case ACCEL_TCG:
		return "tcg";
	default:
		return "auto";
	}
}

const char *
cpu_hypervisor(char sig[13])
{
	sig[0] = 0;
#if defined(__x86_64__) || defined(__i386__)
	unsigned int a, b, c, d;

	/* the hypervisor bit, then its vendor leaf */
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 31)))
		return sig;
	__cpuid(0x40000000, a, b, c, d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	sig[12] = 0;
#endif
	return sig;
}

enum accel
accel_detect(const char *devroot, const char *sysroot, const char *hv,
	     char *why, size_t whylen)
{
	char path[4096];
	struct stat st;
	int fd, ver;

	/* Under QEMU's TCG (the appliance on a host without KVM), a CPU
	 * model with SVM or VMX lets kvm_amd or kvm_intel load on
	 * emulated virtualization that does not run our guests: TCG
	 * directly is the one that works. */
	if (hv && !strcmp(hv, "TCGTCGTCGTCG")) {
		snprintf(why, whylen,
			 "this machine is itself emulated (QEMU TCG): its KVM "
			 "would be emulated too: using TCG");
		return ACCEL_TCG;
	}

	/* A paravirtual KVM (kvm_pvm) opens fine but hangs ordinary
	 * guests: treat it as no KVM at all. */
	snprintf(path, sizeof(path), "%s/module/kvm_pvm", sysroot);
	if (stat(path, &st) == 0) {
		snprintf(why, whylen,
			 "KVM is paravirtual here (kvm_pvm): using TCG");
		return ACCEL_TCG;
	}
	snprintf(path, sizeof(path), "%s/kvm", devroot);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s unusable (%s): using TCG", path,
			 strerror(errno));
		return ACCEL_TCG;
	}
	ver = ioctl(fd, KVM_GET_API_VERSION, 0);
	close(fd);
	if (ver != KVM_API_VERSION) {
		snprintf(why, whylen, "%s: unexpected KVM API %d: using TCG",
			 path, ver);
		return ACCEL_TCG;
	}
	snprintf(why, whylen, "KVM available: using KVM");
	return ACCEL_KVM;
}

/* qemu-argv.h - build QEMU's command line (a pure function) */
#ifndef QCTL_QEMU_ARGV_H
#define QCTL_QEMU_ARGV_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* id of the agent's virtserialport: QEMU names it in VSERPORT_CHANGE */
#define QEMU_AGENT_PORT_ID "agentport"

enum accel {
	ACCEL_AUTO,
	ACCEL_KVM,
	ACCEL_TCG,
};

struct qemu_config {
	const char *binary;	/* default "qemu-system-x86_64" */
	enum accel accel;	/* KVM or TCG; AUTO must be resolved first */
	const char *machine;	/* "q35" (default) or "microvm" */
	int cpus;
	uint64_t memory;	/* bytes; rounded up to MiB */
	const char *kernel;
	const char *initrd;
	int kernel_file;	/* vm_spawn: the open kernel and initrd */
	int initrd_file;
	const char *cmdline;
	int qmp_fd;		/* fd numbers as the child will see them */
	int agent_fd;
	int console_fd;		/* -1: no serial console */
	int tap_fd;		/* -1: no network card at all */
	int disk_fd;		/* raw scratch disk (read-write; its
				 * read-only twin is disk_fd + 1), or -1 */
	int root_file;		/* vm_spawn: the image's open root disk, -1 */
	int root_fd;		/* the image's read-only root disk, or -1 */
	/* the build's copy of its cache disk (read-write, twin cache_fd + 1):
	 * vm_spawn's open file and the child's number; 0 (fd 0 is QEMU's
	 * stdin, never a disk) or -1: none */
	int cache_file;
	int cache_fd;
	int incoming_fd;	/* a saved state to start from (-incoming
				 * fd:N), or -1; set 0 means none too */
	const char *name;	/* VM name for ps/QMP, may be NULL */
	bool sandbox;		/* QEMU's -sandbox (default on) */
	int tb_size_mib;	/* TCG translation cache; 0: 256 */
};

/* Build a NULL-terminated argv; free with qemu_argv_free. */
int qemu_argv_build(const struct qemu_config *cfg, char ***argv,
		    struct error *err);
void qemu_argv_free(char **argv);
/* Parse "auto", "kvm", "tcg". */
int accel_parse(const char *s, enum accel *out, struct error *err);
const char *accel_name(enum accel a);
/* The CPU's hypervisor vendor signature (CPUID 0x40000000), "" when
 * there is none: sig, for accel_detect. */
const char *cpu_hypervisor(char sig[13]);
/*
 * Decide what --accel auto means on this host: KVM when /dev/kvm (under
 * devroot) opens, no paravirtual KVM module is loaded (under sysroot) and
 * the machine is not itself under QEMU's TCG (hv, from cpu_hypervisor).
 * why receives a short human explanation.
 */
enum accel accel_detect(const char *devroot, const char *sysroot,
			const char *hv, char *why, size_t whylen);

#endif

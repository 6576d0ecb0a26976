/* test-qemu-argv.c - the QEMU command line builder and accel detection */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "qemu-argv.h"

static struct qemu_config
base(void)
{
	struct qemu_config c = {
		.accel = ACCEL_TCG,
		.cpus = 2,
		.memory = 512ull << 20,
		.kernel = "/img/vmlinuz",
		.initrd = "/img/initrd.img",
		.cmdline = "console=ttyS0 quiet",
		.qmp_fd = 3,
		.agent_fd = 4,
		.console_fd = 5,
		.tap_fd = -1,
		.disk_fd = -1,
		.root_fd = -1,
		.name = "qctl-run-abc",
		.sandbox = true,
	};
	return c;
}

static char *
joined(char **argv)
{
	size_t n = 1;
	char *s;

	for (char **p = argv; *p; p++)
		n += strlen(*p) + 1;
	s = calloc(1, n);
	for (char **p = argv; *p; p++) {
		strcat(s, *p);
		if (p[1])
			strcat(s, " ");
	}
	return s;
}

/* index of the value following option opt, or -1 */
static const char *
opt_value(char **argv, const char *opt)
{
	for (char **p = argv; *p; p++)
		if (!strcmp(*p, opt))
			return p[1];
	return NULL;
}

Test(qemu_argv, golden_q35_tcg)
{
	struct qemu_config c = base();
	char **argv = NULL;
	char *s;

	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	s = joined(argv);
	cr_assert_str_eq(
		s,
		"qemu-system-x86_64 -name qctl-run-abc,debug-threads=on -S "
		"-nodefaults -no-user-config -display none -no-reboot -no-shutdown "
		"-machine q35,smbus=off,vmport=off,sata=off,usb=off,"
		"graphics=off -accel tcg,tb-size=256 -cpu max -smp 2 -m 512 -kernel /img/vmlinuz "
		"-initrd /img/initrd.img -append console=ttyS0 quiet "
		"-chardev socket,id=qmp,fd=3 -mon chardev=qmp,mode=control "
		"-chardev socket,id=console,fd=5 -serial chardev:console "
		"-chardev socket,id=agent,fd=4 -device virtio-serial-pci "
		"-device virtserialport,chardev=agent,id=agentport,"
		"name=org.qctl.agent.0 "
		"-parallel none -monitor none -sandbox on,obsolete=deny,"
		"elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	free(s);
	qemu_argv_free(argv);
}

Test(qemu_argv, kvm_uses_host_cpu_and_starts_paused)
{
	struct qemu_config c = base();
	char **argv = NULL;

	c.accel = ACCEL_KVM;
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	cr_assert_str_eq(opt_value(argv, "-cpu"), "host");
	cr_assert_str_eq(opt_value(argv, "-accel"), "kvm");
	cr_assert_null(strstr(opt_value(argv, "-machine"), "tcg"));
	cr_assert_not_null(opt_value(argv, "-S") ? argv[0] : NULL);
	qemu_argv_free(argv);
}

Test(qemu_argv, microvm_uses_mmio_devices)
{
	struct qemu_config c = base();
	char **argv = NULL;
	char *s;

	c.machine = "microvm";
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	s = joined(argv);
	cr_assert_not_null(strstr(s, "-machine microvm,"));
	cr_assert_not_null(strstr(s, "-accel tcg"));
	cr_assert_not_null(strstr(s, "virtio-serial-device"));
	cr_assert_null(strstr(s, "virtio-serial-pci"));
	free(s);
	qemu_argv_free(argv);
}

Test(qemu_argv, commas_in_paths_are_escaped)
{
	struct qemu_config c = base();
	char **argv = NULL;

	c.kernel = "/a,b/vmlinuz";
	c.initrd = "/x/initrd,if=evil";
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	cr_assert_str_eq(opt_value(argv, "-kernel"), "/a,,b/vmlinuz");
	cr_assert_str_eq(opt_value(argv, "-initrd"), "/x/initrd,,if=evil");
	qemu_argv_free(argv);
}

Test(qemu_argv, tap_fd_gives_one_virtio_nic_and_none_without)
{
	struct qemu_config c = base();
	char **argv = NULL;
	char *s;

	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	s = joined(argv);
	cr_assert_null(strstr(s, "-netdev"));
	cr_assert_null(strstr(s, "virtio-net"));
	free(s);
	qemu_argv_free(argv);
	c.tap_fd = 6;
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	cr_assert_str_eq(opt_value(argv, "-netdev"), "tap,id=net0,fd=6");
	s = joined(argv);
	cr_assert_not_null(strstr(s, "virtio-net-pci,netdev=net0"));
	free(s);
	qemu_argv_free(argv);
}

Test(qemu_argv, disk_is_passed_as_fdset)
{
	struct qemu_config c = base();
	char **argv = NULL;
	char *s;

	c.disk_fd = 9;
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	cr_assert_str_eq(opt_value(argv, "-add-fd"),
			 "fd=9,set=1,opaque=scratch");
	s = joined(argv);
	cr_assert_not_null(strstr(s, "file=/dev/fdset/1,format=raw"));
	cr_assert_not_null(strstr(s, "virtio-blk-pci,drive=disk0"));
	free(s);
	qemu_argv_free(argv);
}

Test(qemu_argv, root_disk_is_read_only_and_named)
{
	struct qemu_config c = base();
	char **argv = NULL;
	char *s;

	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	s = joined(argv);
	cr_assert_null(strstr(s, "qctl-root"), "no root disk unless given");
	free(s);
	qemu_argv_free(argv);

	c.disk_fd = 9;
	c.root_fd = 11;
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	s = joined(argv);
	cr_assert_not_null(strstr(s, "fd=11,set=2,opaque=root"));
	cr_assert_not_null(strstr(s, "file=/dev/fdset/2,format=raw,"
				     "read-only=on"));
	cr_assert_not_null(strstr(s, "virtio-blk-pci,drive=disk1,"
				     "serial=qctl-root"));
	/* the scratch disk stays the first: /dev/vda in the guest */
	cr_assert_lt(strstr(s, "drive=disk0"), strstr(s, "drive=disk1"));
	free(s);
	qemu_argv_free(argv);
}

Test(qemu_argv, memory_rounds_up_to_mib)
{
	struct qemu_config c = base();
	char **argv = NULL;

	c.memory = (256ull << 20) + 1;
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	cr_assert_str_eq(opt_value(argv, "-m"), "257");
	qemu_argv_free(argv);
}

Test(qemu_argv, no_console_means_serial_none_and_no_sandbox_flag)
{
	struct qemu_config c = base();
	char **argv = NULL;

	c.console_fd = -1;
	c.sandbox = false;
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	cr_assert_str_eq(opt_value(argv, "-serial"), "none");
	cr_assert_null(opt_value(argv, "-sandbox"));
	qemu_argv_free(argv);
}

Test(qemu_argv, rejects_bad_configs)
{
	struct qemu_config c;
	struct error err = { 0 };
	char **argv = NULL;

	c = base();
	c.accel = ACCEL_AUTO;
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	c = base();
	c.cpus = 0;
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	c = base();
	c.cpus = 65;
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	c = base();
	c.memory = 1 << 20;
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	c = base();
	c.machine = "pc";
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	cr_assert_not_null(strstr(err.msg, "pc"));
	c = base();
	c.cmdline = "quiet\ninit=/bin/sh";
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	c = base();
	c.name = "x,debug-threads=off";
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	c = base();
	c.kernel = NULL;
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	c = base();
	c.agent_fd = -1;
	cr_assert_lt(qemu_argv_build(&c, &argv, &err), 0);
	cr_assert_null(argv);
}

Test(accel, parse)
{
	enum accel a;
	struct error err = { 0 };

	cr_assert_eq(accel_parse("auto", &a, &err), 0);
	cr_assert_eq(a, ACCEL_AUTO);
	cr_assert_eq(accel_parse("kvm", &a, &err), 0);
	cr_assert_eq(a, ACCEL_KVM);
	cr_assert_eq(accel_parse("tcg", &a, &err), 0);
	cr_assert_eq(a, ACCEL_TCG);
	cr_assert_lt(accel_parse("KVM", &a, &err), 0);
	cr_assert_lt(accel_parse("", &a, &err), 0);
}

/* the fake tree of the test that runs; removed after it, pass or fail */
static char accel_root[64];

static void
rmtree(void)
{
	if (accel_root[0])
		rm_rf(accel_root);
	accel_root[0] = '\0';
}

static void
mktree(char *root, bool dev_kvm, bool pvm)
{
	char p[512];

	cr_assert_not_null(mkdtemp(root));
	snprintf(accel_root, sizeof(accel_root), "%s", root);
	snprintf(p, sizeof(p), "%s/dev", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys/module", root);
	mkdir(p, 0755);
	if (pvm) {
		snprintf(p, sizeof(p), "%s/sys/module/kvm_pvm", root);
		mkdir(p, 0755);
	}
	if (dev_kvm) {
		/* a regular file: opens, but the KVM ioctl fails */
		snprintf(p, sizeof(p), "%s/dev/kvm", root);
		close(open(p, O_CREAT | O_WRONLY, 0600));
	}
}

Test(accel, detect_pvm_host_chooses_tcg, .fini = rmtree)
{
	char root[] = "/tmp/qctl-accel-XXXXXX", dev[600], sys[600], why[256];

	mktree(root, true, true);
	snprintf(dev, sizeof(dev), "%s/dev", root);
	snprintf(sys, sizeof(sys), "%s/sys", root);
	cr_assert_eq(accel_detect(dev, sys, "", why, sizeof(why)), ACCEL_TCG);
	cr_assert_not_null(strstr(why, "kvm_pvm"));
}

Test(accel, detect_missing_or_broken_kvm_chooses_tcg, .fini = rmtree)
{
	char root[] = "/tmp/qctl-accel-XXXXXX", dev[600], sys[600], why[256];
	char kvm[700];

	mktree(root, false, false);
	snprintf(dev, sizeof(dev), "%s/dev", root);
	snprintf(sys, sizeof(sys), "%s/sys", root);
	cr_assert_eq(accel_detect(dev, sys, "", why, sizeof(why)), ACCEL_TCG);
	/* present but not a KVM device */
	snprintf(kvm, sizeof(kvm), "%s/kvm", dev);
	close(open(kvm, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(accel_detect(dev, sys, "", why, sizeof(why)), ACCEL_TCG);
	cr_assert_not_null(strstr(why, "API"));
}

Test(accel, detect_under_tcg_chooses_tcg, .fini = rmtree)
{
	char root[] = "/tmp/qctl-accel-XXXXXX", dev[600], sys[600], why[256];

	/* no kvm_pvm, a /dev/kvm: only the signature says no */
	mktree(root, true, false);
	snprintf(dev, sizeof(dev), "%s/dev", root);
	snprintf(sys, sizeof(sys), "%s/sys", root);
	cr_assert_eq(accel_detect(dev, sys, "TCGTCGTCGTCG", why, sizeof(why)),
		     ACCEL_TCG);
	cr_assert_not_null(strstr(why, "emulated"), "%s", why);
	/* another hypervisor's signature is no reason */
	accel_detect(dev, sys, "KVMKVMKVM", why, sizeof(why));
	cr_assert_null(strstr(why, "emulated"), "%s", why);
}

/* A saved state comes in as an inherited fd; without one, no -incoming. */
Test(qemu_argv, incoming_state_is_an_fd_and_absent_by_default)
{
	struct qemu_config c = base();
	struct error err = { 0 };
	char **argv = NULL;

	cr_assert_eq(qemu_argv_build(&c, &argv, &err), 0, "%s", err.msg);
	cr_assert_null(opt_value(argv, "-incoming"));
	qemu_argv_free(argv);
	c.incoming_fd = -1;
	cr_assert_eq(qemu_argv_build(&c, &argv, &err), 0, "%s", err.msg);
	cr_assert_null(opt_value(argv, "-incoming"));
	qemu_argv_free(argv);
	c.incoming_fd = 12;
	cr_assert_eq(qemu_argv_build(&c, &argv, &err), 0, "%s", err.msg);
	cr_assert_str_eq(opt_value(argv, "-incoming"), "fd:12");
	/* still paused until cont: the build decides when it runs */
	cr_assert_not_null(opt_value(argv, "-S") ? argv[0] : NULL);
	qemu_argv_free(argv);
}

Test(qemu_argv, cache_disk_is_an_fdset_with_its_serial)
{
	struct qemu_config c = base();
	char **argv = NULL;
	char *s;

	/* unset (0) and -1: no cache disk */
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	s = joined(argv);
	cr_assert_null(strstr(s, "qctl-cache"), "no cache disk unless given");
	free(s);
	qemu_argv_free(argv);

	c.disk_fd = 9;
	c.cache_fd = 12;
	cr_assert_eq(qemu_argv_build(&c, &argv, NULL), 0);
	s = joined(argv);
	cr_assert_not_null(strstr(s, "fd=12,set=3,opaque=cache "));
	cr_assert_not_null(strstr(s, "fd=13,set=3,opaque=cache-ro"));
	/* writable (the build's own copy), never a path */
	cr_assert_not_null(strstr(s, "id=disk2,file=/dev/fdset/3,format=raw "));
	cr_assert_not_null(strstr(s, "virtio-blk-pci,drive=disk2,"
				     "serial=qctl-cache"));
	cr_assert_lt(strstr(s, "drive=disk0"), strstr(s, "drive=disk2"));
	free(s);
	qemu_argv_free(argv);
}

/*
 * poweroff-init.c - PID 1 for bench/run.sh's floor: power off at once.
 *
 * Appended to the image's initrd and started with rdinit=/poweroff-init,
 * it measures what a boot of the same kernel and initramfs costs before
 * any of the agent's work.  It leaves the way guestagent does
 * (init_poweroff): RB_POWER_OFF when the kernel has ACPI, else RB_AUTOBOOT,
 * which QEMU's -no-reboot turns into an exit.  (Without a power-off method
 * the kernel turns RB_POWER_OFF into a halt that never returns, so the
 * order "power off, else reset" needs the ACPI check first.)
 *
 * bench/run.sh builds it with `cc -static -O2 -nostdlib`: no libc, so it
 * adds some 9 KiB to the initrd instead of a static glibc's 700 KiB, which
 * the kernel would unpack on every floor boot (~25 ms of CPU under TCG,
 * measured) and which would flatter qctl's ratio.  Without BENCH_NOSTDLIB
 * it builds against libc the ordinary way.
 */
#include <linux/reboot.h>
#include <sys/syscall.h>

#define SYSFS "/sys"
#define ACPI_DIR "/sys/firmware/acpi"

#if defined(__x86_64__) && defined(BENCH_NOSTDLIB)
#define F_OK 0

static long
sys5(long nr, long a, long b, long c, long d, long e)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

static void
sys_reboot(unsigned int cmd)
{
	sys5(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, cmd, 0, 0);
}

static int
have_acpi(void)
{
	sys5(SYS_mount, (long)"sysfs", (long)SYSFS, (long)"sysfs", 0, 0);
	return sys5(SYS_access, (long)ACPI_DIR, F_OK, 0, 0, 0) == 0;
}

void _start(void) __attribute__((noreturn));

void
_start(void)
{
	if (have_acpi())
		sys_reboot(LINUX_REBOOT_CMD_POWER_OFF);
	sys_reboot(LINUX_REBOOT_CMD_RESTART);
	/* PID 1 must not return: wait for the kernel to stop us */
	for (;;)
		__asm__ volatile("pause");
}
#else
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

int
main(void)
{
	mount("sysfs", SYSFS, "sysfs", 0, NULL);
	if (access(ACPI_DIR, F_OK) == 0)
		reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	/* PID 1 exiting panics the kernel; panic=-1 resets, QEMU exits */
	return 1;
}
#endif

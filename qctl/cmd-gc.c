/* cmd-gc.c - qctl gc: reap what dead managers left behind */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "result.h"
#include "rundir.h"
#include "state.h"

int
cmd_gc(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = getenv("QCTL_STATE_DIR");
	const char *run_root = getenv("QCTL_RUN_ROOT");
	struct error err = { 0 };
	int opt, n;

	if (!dir || !*dir)
		dir = STATE_DIR_DEFAULT;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			dir = optarg;
			break;
		case 'r':
			run_root = optarg;
			break;
		case 'h':
			puts("usage: qctl gc [--state-dir DIR] [--run-root DIR]"
			     "\n\n  --state-dir DIR  records (default "
			     "$QCTL_STATE_DIR or " STATE_DIR_DEFAULT ")\n"
			     "  --run-root DIR   where run directories are "
			     "(default $QCTL_RUN_ROOT\n"
			     "                   or " RUN_ROOT_DEFAULT ")\n\n"
			     "Removes the VMs, helpers, namespaces, cgroups "
			     "and run directories of\nbuilds whose manager is "
			     "gone, printing each.  Only run-XXXXXX\n"
			     "directories directly under the run root are "
			     "removed.");
			return 0;
		default:
			fprintf(stderr, "qctl gc: bad option \"%s\"\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	n = state_gc(dir, run_root, stdout, &err);
	if (n < 0) {
		fprintf(stderr, "qctl gc: %s\n", err.msg);
		return EXIT_INFRA;
	}
	printf("qctl gc: %d dead build%s reaped\n", n, n == 1 ? "" : "s");
	return 0;
}

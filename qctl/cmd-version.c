/* cmd-version.c - qctl version [-v] */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "image.h"
#include "result.h"

#include "version.h"

/* The programs qctl runs, by the variable that names each. */
static const struct {
	const char *env;
	const char *name;
} helpers[] = {
	{"QCTL_NETFILTER", "qctl-netfilter"},
	{"QCTL_PROXY", "qctl-proxy"},
	{"QCTL_SSHD", "qctl-sshd"},
	{"QCTL_SSHBRIDGE", "qctl-sshbridge"},
	{NULL, "guestagent"},
};

/*
 * -v: where this qctl finds its helpers and the minimal image, as a build
 * would (the environment, beside the binary, then the installed paths):
 * an operator's first check after an install.
 */
static int
version_paths(void)
{
	struct error err = {0};
	struct image img;
	int rc = 0;

	for (size_t i = 0; i < ARRAY_SIZE(helpers); i++) {
		_cleanup_free_ char *p =
			helper_path(helpers[i].env, helpers[i].name);
		bool ok = access(p, X_OK) == 0;

		printf("%-15s %s%s\n", helpers[i].name, p,
		       ok ? "" : " (missing)");
		if (!ok)
			rc = 1;
	}
	if (image_open("minimal", &img, &err) < 0) {
		printf("%-15s %s\n", "image minimal", err.msg);
		return 1;
	}
	printf("%-15s %s\n", "image minimal", img.dir);
	image_close(&img);
	return rc;
}

int
cmd_version(int argc, char **argv)
{
	if (argc == 2 &&
	    (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--verbose"))) {
		printf("qctl %s\n", QCTL_VERSION);
		return version_paths();
	}
	if (argc > 1) {
		bool help = argc == 2 && (!strcmp(argv[1], "-h") ||
					  !strcmp(argv[1], "--help"));

		fputs("usage: qctl version [-v]\n\n"
		      "  -v, --verbose  also where the helper programs and "
		      "the minimal image\n"
		      "                 are found (exit 1 if one is "
		      "missing)\n",
		      help ? stdout : stderr);
		return help ? 0 : EXIT_USAGE;
	}
	printf("qctl %s\n", QCTL_VERSION);
	return 0;
}

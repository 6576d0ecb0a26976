/* main.c - qctl's command table */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{ "run", cmd_run, "run a recipe in a fresh VM (default ./qctl.yaml)" },
	{ "serve", cmd_serve, "daemon with a QMP-style control socket" },
	{ "gc", cmd_gc, "reap what dead managers left behind" },
	{ "image", cmd_image, "build an image from a definition (image build)" },
	{ "version", cmd_version, "print the version" },
};

static void
usage(FILE *f)
{
	fputs("usage: qctl COMMAND [OPTIONS]\n\ncommands:\n", f);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
	fputs("\n`qctl COMMAND --help` describes each command's options.\n",
	      f);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	/* not in the table: no user's command, only qctl serve's child */
	if (!strcmp(argv[1], "__peer"))
		return cmd_peer(argc - 1, argv + 1);
	/* ... and the appliance init's (docs/appliance.md) */
	if (!strcmp(argv[1], "__relay"))
		return cmd_relay(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "qctl: unknown command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return 2;
}

/* cmd-version.c - qctl version */
#include <stdio.h>

#include "cmd.h"

#ifndef QCTL_VERSION
#define QCTL_VERSION "0.1"
#endif

int
cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("qctl %s\n", QCTL_VERSION);
	return 0;
}

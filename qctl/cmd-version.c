/* cmd-version.c - qctl version */
#include <stdio.h>

#include "cmd.h"

#include "version.h"

int
cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("qctl %s\n", QCTL_VERSION);
	return 0;
}

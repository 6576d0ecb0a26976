/* cmd-serve.c - qctl serve: not built yet (issue 5) */
#include <stdio.h>

#include "cmd.h"
#include "result.h"

int
cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("qctl serve: not implemented yet\n", stderr);
	return EXIT_USAGE;
}

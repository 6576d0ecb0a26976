/*
 * built-program.h - for unit suites that start a program of the build:
 * $ENV if set, else BUILD/NAME beside BUILD/tests/ where the suite runs
 * (build/ or build/san/).  The path stays valid until the next call.
 */
#ifndef QCTL_TEST_BUILT_PROGRAM_H
#define QCTL_TEST_BUILT_PROGRAM_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline const char *
built_program(const char *env_name, const char *name)
{
	static char path[4096];
	const char *env = getenv(env_name);
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", path, sizeof(path) - 32 - strlen(name));
	cr_assert_gt(n, 0);
	path[n] = '\0';
	*strrchr(path, '/') = '\0';
	strcat(path, "/../");
	strcat(path, name);
	return path;
}

#endif

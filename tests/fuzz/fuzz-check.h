/* fuzz-check.h - check(x): a broken promise of the code under test says
 * which (file, line, expression), then crashes for libFuzzer. */
#ifndef QCTL_FUZZ_CHECK_H
#define QCTL_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define check(x) ((x) ? (void)0 : fuzz_check_fail(__FILE__, __LINE__, #x))

static inline void __attribute__((noreturn))
fuzz_check_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	abort();
}

#endif

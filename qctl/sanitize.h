/* sanitize.h - the sanitized test build (make SANITIZE=1) and nothing else */
#ifndef QCTL_SANITIZE_H
#define QCTL_SANITIZE_H

#ifdef QCTL_SANITIZE
#include <seccomp.h>

/* The sanitizer runtime calls these for its default options. */
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);

/*
 * Right before seccomp_load(), after the program's own rules: let the
 * sanitizer runtime write a report under the filter (qctl/sanitize.c).
 * 0 or a negative errno from libseccomp.
 */
int san_seccomp_add(scmp_filter_ctx ctx);
#endif

#endif

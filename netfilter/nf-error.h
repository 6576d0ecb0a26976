/*
 * nf-error.h - fill qctl's error object inside the helper.
 *
 * qctl-netfilter links only the files in netfilter/ (the less code in the
 * privileged helper the better), so it cannot call error_set() from
 * qctl/util.c; this static inline twin keeps the same contract without a
 * symbol clash when unit tests link libqctl.a and libnf.a together.
 */
#ifndef QCTL_NF_ERROR_H
#define QCTL_NF_ERROR_H

#include <stdarg.h>
#include <stdio.h>

#include "util.h"

/* Fill err (may be NULL) and return -code (code > 0). */
static inline int __attribute__((format(printf, 3, 4)))
nf_error(struct error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

#endif

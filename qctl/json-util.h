/* json-util.h - jansson cleanup helper */
#ifndef QCTL_JSON_UTIL_H
#define QCTL_JSON_UTIL_H

#include <jansson.h>
#include <string.h>

#include "util.h"

static inline void
cleanup_jsonp(json_t **p)
{
	json_decref(*p);
}

/*
 * A JSON string of text that may come from a guest or a client: valid
 * UTF-8 as it is, any other byte (and NUL) as '?', never NULL.
 */
static inline json_t *
json_string_lossy(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *c;
	json_t *j;

	if (!s)
		return json_string("");
	j = json_stringn(s, n);
	if (j)
		return j;
	c = xstrdup(s);
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq((unsigned char *)c + i, n - i);

		if (!k) {
			c[i++] = '?';
			continue;
		}
		i += k;
	}
	j = json_stringn(c, n);
	free(c);
	return j;
}

#endif

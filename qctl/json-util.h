/* json-util.h - jansson cleanup helper */
#ifndef QCTL_JSON_UTIL_H
#define QCTL_JSON_UTIL_H

#include <jansson.h>

static inline void
cleanup_jsonp(json_t **p)
{
	json_decref(*p);
}

#endif

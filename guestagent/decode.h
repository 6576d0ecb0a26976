/*
 * decode.h - pure decoders for the host -> guest payloads of agent-proto.h.
 *
 * No I/O, no allocation: every function takes a payload buffer and fills a
 * struct whose string pointers point into that buffer, so the unit tests and
 * fuzz targets link this file alone.  A decoder either accepts the whole
 * payload (exact length, every string inside it, every count in range) or
 * rejects it with a static message for the ERROR frame.
 */
#ifndef GA_DECODE_H
#define GA_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "agent-proto.h"

/* Base environment of every EXEC; entries given by the host override it. */
#define GA_ENV_PATH                                                            \
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define GA_ENV_HOME "HOME=/root"
#define GA_ENV_TERM "TERM=dumb"
#define GA_ENV_BASE_N 3

/* Longest signal number SIGNAL accepts (SIGRTMAX on Linux). */
#define GA_SIGNO_MAX 64u


struct ga_exec {
	uint32_t flags;	 /* AGENT_EXEC_* */
	const char *cwd; /* absolute */
	uint32_t argc;	 /* >= 1 */
	uint32_t envc;
	const char *argv[AGENT_MAX_STRINGS + 1]; /* NULL-terminated */
	const char *envv[AGENT_MAX_STRINGS + 1]; /* NULL-terminated */
};

struct ga_file_in {
	const char *dir; /* absolute */
};

struct ga_file_out {
	const char *dir; /* absolute */
	uint32_t n;	 /* number of globs, may be 0 */
	const char *globs[AGENT_MAX_STRINGS + 1]; /* NULL-terminated */
};

/* Decode an EXEC payload; 0, or -1 with *why set to a static message. */
int ga_exec_decode(const void *buf, size_t len, struct ga_exec *out,
		   const char **why);
/* Decode a FILE_IN payload; 0, or -1 with *why set. */
int ga_file_in_decode(const void *buf, size_t len, struct ga_file_in *out,
		      const char **why);
/* Decode a FILE_OUT payload; 0, or -1 with *why set. */
int ga_file_out_decode(const void *buf, size_t len, struct ga_file_out *out,
		       const char **why);
/* Decode a SIGNAL payload (u32 signo in 1..GA_SIGNO_MAX); 0 or -1. */
int ga_signal_decode(const void *buf, size_t len, int *signo, const char **why);
/* Decode a WINSIZE payload (u32 rows, u32 cols, each 1..65535); 0 or -1. */
int ga_winsize_decode(const void *buf, size_t len, uint32_t *rows,
		      uint32_t *cols, const char **why);

struct ga_identity {
	uint64_t sec;		/* CLOCK_REALTIME to set */
	uint32_t nsec;
	uint32_t seed_len;	/* AGENT_SEED_MIN..AGENT_SEED_MAX */
	const unsigned char *seed;
	const char *hostname;	/* 1..64 of [A-Za-z0-9.-] */
};

/* Decode an IDENTITY payload; 0, or -1 with *why set. */
int ga_identity_decode(const void *buf, size_t len, struct ga_identity *out,
		       const char **why);

/*
 * Merge the base environment with the host's entries into out (capacity
 * cap, including the NULL terminator): a host entry replaces a base entry
 * or an earlier host entry with the same key.  Returns the entry count, or
 * -1 if out is too small.  Strings are not copied.
 */
int ga_env_merge(const char *const *base, size_t nbase,
		 const char *const *extra, size_t nextra, const char **out,
		 size_t cap);

/*
 * Encode "u32 v, a '\0', b '\0'" (HELLO) or "i32 v, a '\0'" (ERROR,
 * FILE_DONE; pass b = NULL) into out; strings are truncated so the payload
 * fits in cap.  Returns the payload length.
 */
size_t ga_encode_u32_strs(unsigned char *out, size_t cap, uint32_t v,
			  const char *a, const char *b);

#endif

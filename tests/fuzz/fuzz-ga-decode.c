/*
 * fuzz-ga-decode.c - libFuzzer target: the guest agent's decoders of what
 * the host sends (guestagent/decode.c), and the environment merge that
 * follows an EXEC.
 *
 * The host is the more trusted side, but the agent is PID 1 of the
 * guest: a confused or hostile frame must be refused, not crash it.  The
 * bytes are one payload given to every decoder (EXEC, FILE_IN, FILE_OUT,
 * SIGNAL, WINSIZE, IDENTITY) (a frame type picks one in
 * the agent; here all of them run).  What a decoder accepts must hold its
 * promises: strings lie wholly inside the payload, counts within
 * AGENT_MAX_STRINGS, lists NULL-terminated, paths absolute, environment
 * entries KEY=VALUE; the merged environment fits the agent's array, has
 * each key once, and the host's value wins.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *buf_lo, *buf_hi;

/* s and its NUL lie inside the payload */
static void
check_inside(const char *s)
{
	check(s >= buf_lo && s < buf_hi);
	check(memchr(s, '\0', buf_hi - s) != NULL);
}

static size_t
key_len(const char *e)
{
	const char *eq = strchr(e, '=');

	return eq ? (size_t)(eq - e) : strlen(e);
}

static void
check_env(const struct ga_exec *x)
{
	static const char *const base[GA_ENV_BASE_N] = {
		GA_ENV_PATH, GA_ENV_HOME, GA_ENV_TERM
	};
	/* the agent's own array (job.c) */
	static const char *envp[GA_ENV_BASE_N + AGENT_MAX_STRINGS + 1];
	size_t cap = sizeof(envp) / sizeof(envp[0]);
	const char **small;
	int n = ga_env_merge(base, GA_ENV_BASE_N, x->envv, x->envc, envp, cap);

	/* what the decoder accepts always fits */
	check(n >= GA_ENV_BASE_N && (size_t)n < cap && !envp[n]);
	/* a too small array is refused, never overrun */
	small = malloc(n * sizeof(*small));
	check(ga_env_merge(base, GA_ENV_BASE_N, x->envv, x->envc, small,
			   (size_t)n) == -1);
	free(small);
	/* the quadratic checks on small lists only: speed over big ones */
	if (x->envc > 64)
		return;
	for (int i = 0; i < n; i++)
		for (int k = i + 1; k < n; k++)
			check(key_len(envp[i]) != key_len(envp[k]) ||
			      memcmp(envp[i], envp[k], key_len(envp[i])));
	/* the last host entry for a key is the one the child sees */
	for (uint32_t i = 0; i < x->envc; i++) {
		bool later = false, found = false;

		for (uint32_t k = i + 1; k < x->envc; k++)
			later |= key_len(x->envv[k]) == key_len(x->envv[i]) &&
				 !memcmp(x->envv[k], x->envv[i],
					 key_len(x->envv[i]));
		for (int k = 0; k < n; k++)
			found |= envp[k] == x->envv[i];
		check(found == !later);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ga_exec x;
	struct ga_file_in fi;
	struct ga_file_out fo;
	const char *why = NULL;
	uint32_t rows, cols;
	struct ga_identity id;
	int signo;

	buf_lo = (const char *)data;
	buf_hi = buf_lo + size;

	if (ga_exec_decode(data, size, &x, &why) == 0) {
		check(!(x.flags & ~AGENT_EXEC_FLAGS));
		check(x.argc >= 1 && x.argc <= AGENT_MAX_STRINGS &&
		      x.envc <= AGENT_MAX_STRINGS - x.argc);
		check_inside(x.cwd);
		check(x.cwd[0] == '/');
		for (uint32_t i = 0; i < x.argc; i++)
			check_inside(x.argv[i]);
		check(x.argv[0][0] && !x.argv[x.argc]);
		for (uint32_t i = 0; i < x.envc; i++) {
			check_inside(x.envv[i]);
			check(x.envv[i][0] != '=' && strchr(x.envv[i], '='));
		}
		check(!x.envv[x.envc]);
		/* consumed exactly: the last string ends the payload */
		check(buf_hi[-1] == '\0');
		check_env(&x);
	} else {
		check(why && why[0]);
	}

	why = NULL;
	if (ga_file_in_decode(data, size, &fi, &why) == 0) {
		check_inside(fi.dir);
		check(fi.dir[0] == '/' && fi.dir + strlen(fi.dir) + 1 == buf_hi);
	} else {
		check(why && why[0]);
	}

	why = NULL;
	if (ga_file_out_decode(data, size, &fo, &why) == 0) {
		check(fo.n <= AGENT_MAX_STRINGS);
		check_inside(fo.dir);
		check(fo.dir[0] == '/');
		for (uint32_t i = 0; i < fo.n; i++) {
			check_inside(fo.globs[i]);
			check(fo.globs[i][0]);
		}
		check(!fo.globs[fo.n] && buf_hi[-1] == '\0');
	} else {
		check(why && why[0]);
	}

	why = NULL;
	if (ga_signal_decode(data, size, &signo, &why) == 0)
		check(size == 4 && signo >= 1 && signo <= (int)GA_SIGNO_MAX);
	else
		check(why && why[0]);

	why = NULL;
	if (ga_winsize_decode(data, size, &rows, &cols, &why) == 0)
		check(size == 8 && rows >= 1 && rows <= AGENT_WINSIZE_MAX &&
		      cols >= 1 && cols <= AGENT_WINSIZE_MAX);
	else
		check(why && why[0]);

	why = NULL;
	if (ga_identity_decode(data, size, &id, &why) == 0) {
		check(id.nsec < 1000000000u);
		check(id.seed_len >= AGENT_SEED_MIN &&
		      id.seed_len <= AGENT_SEED_MAX);
		check((const char *)id.seed == buf_lo + 16);
		check_inside(id.hostname);
		check(id.hostname + strlen(id.hostname) + 1 == buf_hi);
		check(strlen(id.hostname) >= 1 && strlen(id.hostname) <= 64);
	} else {
		check(why && why[0]);
	}
	return 0;
}

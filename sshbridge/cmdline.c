/* cmdline.c - the command lines the bridge asks sshd to run (cmdline.h) */
#include "cmdline.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static int
append(char *out, size_t cap, const char *s)
{
	size_t have = strlen(out), n = strlen(s);

	if (have + n + 1 > cap)
		return -1;
	memcpy(out + have, s, n + 1);
	return 0;
}

int
sb_quote(char *out, size_t cap, const char *s)
{
	size_t have = strlen(out), need = 2;

	for (const char *p = s; *p; p++)
		need += *p == '\'' ? 4 : 1;
	if (have + need + 1 > cap)
		return -1;
	out += have;
	*out++ = '\'';
	/* Inside single quotes nothing is special but the quote itself,
	 * which ends the quoting, is escaped, and starts it again. */
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(out, "'\\''", 4);
			out += 4;
		} else
			*out++ = *p;
	}
	*out++ = '\'';
	*out = '\0';
	return 0;
}

/* " 'a' 'b'..." */
static int
append_quoted(char *out, size_t cap, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (append(out, cap, " ") < 0 || sb_quote(out, cap, v[i]) < 0)
			return -1;
	return 0;
}

int
sb_exec_command(const struct ga_exec *e, uint32_t id, const char *jobdir,
		char *out, size_t cap)
{
	char num[16];
	static const char *const base[GA_ENV_BASE_N] = {
		GA_ENV_PATH, GA_ENV_HOME, GA_ENV_TERM};
	const char *env[AGENT_MAX_STRINGS + GA_ENV_BASE_N + 1];
	int n;

	if (!cap)
		return -1;
	out[0] = '\0';
	n = ga_env_merge(base, GA_ENV_BASE_N, e->envv, e->envc, env,
			 sizeof(env) / sizeof(env[0]));
	if (n < 0)
		return -1;
	/* cd fails loudly (exit 1) where the agent would say ERROR; env -i:
	 * nothing of sshd's environment (SSH_*, the login's) reaches the
	 * step; "--": an entry can never be read as an option of env. */
	snprintf(num, sizeof(num), "/%u", id);
	/* $$ is the process group: sshd's child called setsid(), and every
	 * exec below keeps the pid */
	if (append(out, cap, "mkdir -p -- ") < 0 ||
	    sb_quote(out, cap, jobdir) < 0 ||
	    append(out, cap, " && echo $$ > ") < 0 ||
	    sb_quote(out, cap, jobdir) < 0 || append(out, cap, num) < 0 ||
	    append(out, cap, " && cd -- ") < 0 ||
	    sb_quote(out, cap, e->cwd) < 0 ||
	    append(out, cap, " && exec env -i --") < 0 ||
	    append_quoted(out, cap, env, (size_t)n) < 0)
		return -1;
	if (e->flags & AGENT_EXEC_SHELL) {
		if (append(out, cap, " /bin/sh -c") < 0)
			return -1;
	}
	if (append_quoted(out, cap, e->argv, e->argc) < 0)
		return -1;
	return strlen(out) > SB_CMDLINE_MAX ? -1 : 0;
}

int
sb_file_in_command(const struct ga_file_in *f, char *out, size_t cap)
{
	if (!cap)
		return -1;
	out[0] = '\0';
	if (append(out, cap, "mkdir -p -- ") < 0 ||
	    sb_quote(out, cap, f->dir) < 0 ||
	    append(out, cap, " && cd -- ") < 0 ||
	    sb_quote(out, cap, f->dir) < 0 ||
	    append(out, cap, " && exec tar -x -f -") < 0)
		return -1;
	return strlen(out) > SB_CMDLINE_MAX ? -1 : 0;
}

/* The globs are bash's $2...: expanded by the guest's bash with IFS empty
 * (no word splitting), nullglob (nothing for no match), and kept only if
 * the file exists (a plain name that is not there is no match either). */
static const char file_out_script[] =
	"cd -- \"$1\" || exit 2; shift; shopt -s nullglob; IFS=; m=(); "
	"for g in \"$@\"; do k=0; r=($g); for x in \"${r[@]}\"; do "
	"if [ -e \"$x\" ] || [ -L \"$x\" ]; then m+=(\"$x\"); k=1; fi; "
	"done; [ $k = 1 ] || printf 'no match: %s\\n' \"$g\" >&2; done; "
	"[ ${#m[@]} -gt 0 ] || exit 0; exec tar -c -f - -- \"${m[@]}\"";

int
sb_file_out_command(const struct ga_file_out *f, char *out, size_t cap)
{
	if (!cap)
		return -1;
	out[0] = '\0';
	if (append(out, cap, "exec /bin/bash -c ") < 0 ||
	    sb_quote(out, cap, file_out_script) < 0 ||
	    append(out, cap, " qctl-file-out ") < 0 ||
	    sb_quote(out, cap, f->dir) < 0 ||
	    append_quoted(out, cap, f->globs, f->n) < 0)
		return -1;
	return strlen(out) > SB_CMDLINE_MAX ? -1 : 0;
}

int
sb_signal_command(uint32_t id, int signo, const char *jobdir, char *out,
		  size_t cap)
{
	char tail[128];

	if (!cap || signo < 1 || signo > 64)
		return -1;
	out[0] = '\0';
	snprintf(tail, sizeof(tail),
		 "/%u; i=0; while [ ! -s \"$f\" ] && [ $i -lt 10 ]; do "
		 "sleep 0.1; i=$((i + 1)); done; read -r g < \"$f\" && "
		 "kill -%d \"-$g\"",
		 id, signo);
	if (append(out, cap, "f=") < 0 || sb_quote(out, cap, jobdir) < 0 ||
	    append(out, cap, tail) < 0)
		return -1;
	return 0;
}

static const struct {
	int signo;
	const char *name;
} signals[] = {
	{SIGABRT, "ABRT"}, {SIGALRM, "ALRM"}, {SIGFPE, "FPE"},
	{SIGHUP, "HUP"},   {SIGILL, "ILL"},   {SIGINT, "INT"},
	{SIGKILL, "KILL"}, {SIGPIPE, "PIPE"}, {SIGQUIT, "QUIT"},
	{SIGSEGV, "SEGV"}, {SIGTERM, "TERM"}, {SIGUSR1, "USR1"},
	{SIGUSR2, "USR2"},
};

const char *
sb_signal_name(int signo)
{
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (signals[i].signo == signo)
			return signals[i].name;
	return NULL;
}

int
sb_signal_number(const char *name)
{
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (!strcmp(signals[i].name, name))
			return signals[i].signo;
	return 0;
}

/*
 * fuzz-sshd-msg.c - libFuzzer target: the frames between the manager and
 * qctl-sshd (sshd-proto.h), as a stream of packets.
 *
 * The input is a sequence of packets, each a big-endian u16 length and
 * that many bytes.  Every packet is decoded in both directions; a frame
 * that decodes must encode back to the same bytes, and its strings must
 * keep their promises (NUL-terminated within bounds, printable where
 * text).  Each packet also goes to one manager-side state (a compromised
 * sshd talking to the manager), which answers key requests and opens as
 * the manager would and sends output into its windows, so that the order
 * and window checks run on what the fuzzer makes up.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "sshd-proto.h"
#include "sshd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static void
check_msg(const struct sshd_msg *m, const uint8_t *p, size_t n)
{
	struct buf b = { 0 };
	struct error err = { 0 };

	/* What decodes, encodes to the very same frame. */
	check(sshd_msg_encode(m, &b, &err) == 0);
	check(b.len == n && !memcmp(b.data, p, n));
	buf_free(&b);
	if (m->build)
		check(sshd_build_ok(m->build));
	if (m->text)
		check(strlen(m->text) <= SSHD_TEXT_MAX && printable(m->text));
	if (m->peer)
		check(printable(m->peer));
	if (m->fingerprint)
		check(!strncmp(m->fingerprint, "SHA256:", 7));
	for (uint32_t i = 0; i < m->nkeys; i++)
		check(strlen(m->keys[i]) <= SSHD_KEY_MAX &&
		      printable(m->keys[i]));
	if (m->data)
		check(m->len >= 1 && m->len <= SSHD_DATA_MAX);
}

static void
on_keys(struct sshd *s, uint32_t req, const char *b, void *o)
{
	const char *k[] = { "ssh-ed25519 AAAA" };

	(void)o;
	check(sshd_build_ok(b));
	check(sshd_send_keys(s, req, k, 1, NULL) == 0);
}

static void
on_open(struct sshd *s, const struct sshd_open *op, void *o)
{
	static const char out[100];

	(void)o;
	check(sshd_build_ok(op->build));
	if (op->sid & 1) {
		check(sshd_send_refused(s, op->sid, "no\x1b", NULL) == 0);
		return;
	}
	check(sshd_send_opened(s, op->sid, NULL) == 0);
	check(sshd_send_output(s, op->sid, false, out, sizeof(out), NULL) ==
	      sizeof(out));
}

static void
on_stdin(struct sshd *s, uint32_t sid, const uint8_t *d, size_t n, void *o)
{
	(void)d;
	(void)o;
	check(n >= 1 && n <= SSHD_DATA_MAX);
	check(sshd_stdin_done(s, sid, n, NULL) == 0);
}

static void
on_writable(struct sshd *s, uint32_t sid, void *o)
{
	(void)o;
	check(sshd_output_room(s, sid) > 0);
}

static void
on_log(struct sshd *s, const char *l, void *o)
{
	(void)s;
	(void)o;
	check(printable(l));
}

static const struct sshd_callbacks cbs = {
	.keys = on_keys,
	.open = on_open,
	.stdin_data = on_stdin,
	.writable = on_writable,
	.log = on_log,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sshd *sd = sshd_new_detached(&cbs, NULL);
	bool broken = false;

	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		struct sshd_msg m;
		struct error err = { 0 };

		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		for (int dir = 0; dir < 2; dir++) {
			err.code = 0;
			if (sshd_msg_decode(dir, data, n, &m, &err) == 0)
				check_msg(&m, data, n);
			else
				check(err.code == EPROTO && err.msg[0]);
		}
		/* The manager stops a sshd at its first bad frame. */
		if (!broken) {
			err.code = 0;
			if (sshd_feed(sd, data, n, &err) < 0) {
				check(err.msg[0]);
				broken = true;
			}
		}
		data += n;
		size -= n;
	}
	sshd_stop(sd);
	return 0;
}

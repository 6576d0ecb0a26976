/* sshd-proto.c - frames between the manager and qctl-sshd: encode, decode
 * and check (sshd-proto.h).  Pure functions over buffers: linked into
 * both programs, unit-tested and fuzzed. */
#include "sshd-proto.h"

#include <string.h>

/* The alphabets a string field may use. */
enum alpha {
	A_BUILD,    /* [A-Za-z0-9._-], not starting with '.' or '-' */
	A_FPR,	    /* "SHA256:" then base64 */
	A_TERM,	    /* [A-Za-z0-9._+-] */
	A_TEXT,	    /* printable ASCII */
	A_HOSTKEY,  /* printable ASCII and newlines */
	A_COMMAND,  /* any byte but NUL */
};

static const struct {
	uint16_t type;
	const char *name;
} names[] = {
	{ SSHD_M_CONFIG, "config" },   { SSHD_M_KEYS, "keys" },
	{ SSHD_M_OPENED, "opened" },   { SSHD_M_REFUSED, "refused" },
	{ SSHD_M_STDOUT, "stdout" },   { SSHD_M_STDERR, "stderr" },
	{ SSHD_M_EOF, "eof" },	       { SSHD_M_EXIT, "exit" },
	{ SSHD_M_CLOSE, "close" },     { SSHD_M_ACK, "ack" },
	{ SSHD_S_READY, "ready" },     { SSHD_S_FAIL, "fail" },
	{ SSHD_S_LOG, "log" },	       { SSHD_S_KEYS_REQ, "keys?" },
	{ SSHD_S_OPEN, "open" },       { SSHD_S_STDIN, "stdin" },
	{ SSHD_S_EOF, "eof" },	       { SSHD_S_WINCH, "window-change" },
	{ SSHD_S_ACK, "ack" },	       { SSHD_S_CLOSED, "closed" },
};

const char *
sshd_msg_name(uint16_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].type == type)
			return names[i].name;
	return "?";
}

int
sshd_msg_dir(uint16_t type)
{
	if (type >= SSHD_M_CONFIG && type <= SSHD_M_ACK)
		return SSHD_TO_SSHD;
	if (type >= SSHD_S_READY && type <= SSHD_S_CLOSED)
		return SSHD_TO_MANAGER;
	return -1;
}

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static bool
alpha_ok(enum alpha a, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		switch (a) {
		case A_BUILD:
			if (!is_alnum(c) && c != '_' &&
			    !((c == '.' || c == '-') && i > 0))
				return false;
			break;
		case A_FPR:
			if (i < 7 ? c != "SHA256:"[i]
				  : !is_alnum(c) && c != '+' && c != '/' &&
					    c != '=')
				return false;
			break;
		case A_TERM:
			if (!is_alnum(c) && !strchr("._+-", c))
				return false;
			break;
		case A_TEXT:
			if (c < 0x20 || c > 0x7e)
				return false;
			break;
		case A_HOSTKEY:
			if ((c < 0x20 || c > 0x7e) && c != '\n')
				return false;
			break;
		case A_COMMAND:
			break;
		}
	}
	/* A fingerprint is more than its prefix. */
	return a != A_FPR || n > 7;
}

bool
sshd_build_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= SSHD_BUILD_MAX && alpha_ok(A_BUILD, s, n);
}

/* ---- decoding ----------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t left;
	struct error *err;
	const char *field;
	int bad; /* -EPROTO once a rule broke */
};

static int
rd_fail(struct rd *r, const char *why)
{
	if (!r->bad)
		error_set(r->err, EPROTO, "sshd frame: %s: %s",
			  r->field ? r->field : "header", why);
	r->bad = -EPROTO;
	return -EPROTO;
}

static uint32_t
rd_u32(struct rd *r, const char *field)
{
	uint32_t v;

	r->field = field;
	if (r->bad)
		return 0;
	if (r->left < 4) {
		rd_fail(r, "truncated");
		return 0;
	}
	v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 |
	    (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	r->left -= 4;
	return v;
}

static uint8_t
rd_u8(struct rd *r, const char *field)
{
	uint8_t v;

	r->field = field;
	if (r->bad)
		return 0;
	if (r->left < 1) {
		rd_fail(r, "truncated");
		return 0;
	}
	v = r->p[0];
	r->p++;
	r->left--;
	return v;
}

static bool
rd_bool(struct rd *r, const char *field)
{
	uint8_t v = rd_u8(r, field);

	if (v > 1)
		rd_fail(r, "not 0 or 1");
	return v == 1;
}

/* A u32 within [lo, hi]. */
static uint32_t
rd_range(struct rd *r, const char *field, uint32_t lo, uint32_t hi)
{
	uint32_t v = rd_u32(r, field);

	if (!r->bad && (v < lo || v > hi))
		rd_fail(r, "out of range");
	return v;
}

static const char *
rd_str(struct rd *r, const char *field, size_t max, enum alpha a,
       bool may_be_empty)
{
	uint32_t n = rd_u32(r, field);
	const char *s;

	if (r->bad)
		return "";
	if (n > max)
		return rd_fail(r, "too long"), "";
	if (!n && !may_be_empty)
		return rd_fail(r, "empty"), "";
	if (r->left < (size_t)n + 1)
		return rd_fail(r, "truncated"), "";
	s = (const char *)r->p;
	if (s[n] != '\0')
		return rd_fail(r, "not NUL-terminated"), "";
	if (memchr(s, '\0', n))
		return rd_fail(r, "NUL inside"), "";
	if (!alpha_ok(a, s, n))
		return rd_fail(r, "bad character"), "";
	r->p += n + 1;
	r->left -= n + 1;
	return s;
}

static const uint8_t *
rd_data(struct rd *r, uint32_t *len)
{
	const uint8_t *d;

	*len = rd_range(r, "data", 1, SSHD_DATA_MAX);
	if (r->bad)
		return NULL;
	if (r->left < *len)
		return rd_fail(r, "truncated"), NULL;
	d = r->p;
	r->p += *len;
	r->left -= *len;
	return d;
}

static void
decode_payload(struct rd *r, struct sshd_msg *m)
{
	switch (m->type) {
	case SSHD_M_CONFIG:
		m->version = rd_range(r, "version", SSHD_PROTO_VERSION,
				      SSHD_PROTO_VERSION);
		m->uid = rd_u32(r, "uid");
		m->gid = rd_u32(r, "gid");
		m->max_conns = rd_range(r, "max_conns", 1, SSHD_CONNS_MAX);
		m->max_sessions =
			rd_range(r, "max_sessions", 1, SSHD_SESSIONS_MAX);
		m->grace_ms = rd_range(r, "grace_ms", SSHD_GRACE_MS_MIN,
				       SSHD_GRACE_MS_MAX);
		m->max_auth = rd_range(r, "max_auth", 1, SSHD_AUTH_MAX);
		m->nhostkeys = rd_range(r, "nhostkeys", 1, SSHD_HOSTKEYS_MAX);
		for (uint32_t i = 0; i < m->nhostkeys && !r->bad; i++)
			m->hostkeys[i] = rd_str(r, "hostkey", SSHD_HOSTKEY_MAX,
						A_HOSTKEY, false);
		break;
	case SSHD_M_KEYS:
		m->nkeys = rd_range(r, "nkeys", 0, SSHD_KEYS_MAX);
		for (uint32_t i = 0; i < m->nkeys && !r->bad; i++)
			m->keys[i] =
				rd_str(r, "key", SSHD_KEY_MAX, A_TEXT, false);
		break;
	case SSHD_M_REFUSED:
	case SSHD_M_CLOSE:
	case SSHD_S_CLOSED:
		m->text = rd_str(r, "reason", SSHD_TEXT_MAX, A_TEXT, true);
		break;
	case SSHD_S_FAIL:
	case SSHD_S_LOG:
		m->text = rd_str(r, "text", SSHD_TEXT_MAX, A_TEXT, false);
		break;
	case SSHD_M_STDOUT:
	case SSHD_M_STDERR:
	case SSHD_S_STDIN:
		m->data = rd_data(r, &m->len);
		break;
	case SSHD_M_EXIT:
		m->exit_kind = rd_range(r, "exit kind", 0, 1) & 0xff;
		if (m->exit_kind == SSHD_EXIT_STATUS)
			m->exit_value = rd_range(r, "exit status", 0, 255);
		else
			m->exit_value = rd_range(r, "exit signal", 1, 64);
		break;
	case SSHD_M_ACK:
	case SSHD_S_ACK:
		m->ack = rd_range(r, "ack", 1, SSHD_WINDOW);
		break;
	case SSHD_S_KEYS_REQ:
		m->build = rd_str(r, "build", SSHD_BUILD_MAX, A_BUILD, false);
		break;
	case SSHD_S_OPEN:
		m->build = rd_str(r, "build", SSHD_BUILD_MAX, A_BUILD, false);
		m->fingerprint =
			rd_str(r, "fingerprint", SSHD_FPR_MAX, A_FPR, false);
		m->peer = rd_str(r, "peer", SSHD_PEER_MAX, A_TEXT, false);
		m->has_pty = rd_bool(r, "has_pty");
		m->term = rd_str(r, "term", SSHD_TERM_MAX, A_TERM, true);
		m->rows = rd_range(r, "rows", 0, SSHD_PTY_DIM_MAX);
		m->cols = rd_range(r, "cols", 0, SSHD_PTY_DIM_MAX);
		m->has_command = rd_bool(r, "has_command");
		m->command = rd_str(r, "command", SSHD_COMMAND_MAX, A_COMMAND,
				    true);
		if (!r->bad && !m->has_pty &&
		    (*m->term || m->rows || m->cols)) {
			r->field = "pty";
			rd_fail(r, "size or term without a pty");
		}
		if (!r->bad && !m->has_command && *m->command) {
			r->field = "command";
			rd_fail(r, "a command with has_command 0");
		}
		break;
	case SSHD_S_WINCH:
		m->rows = rd_range(r, "rows", 0, SSHD_PTY_DIM_MAX);
		m->cols = rd_range(r, "cols", 0, SSHD_PTY_DIM_MAX);
		break;
	default: /* OPENED, EOF both ways, READY: no payload */
		break;
	}
}

int
sshd_msg_decode(enum sshd_dir dir, const uint8_t *buf, size_t len,
		struct sshd_msg *m, struct error *err)
{
	struct rd r = { buf, len, err, NULL, 0 };
	uint32_t flen;
	uint16_t flags;
	bool id_zero;

	memset(m, 0, sizeof(*m));
	if (len < SSHD_HDR_LEN || len > SSHD_FRAME_MAX)
		return rd_fail(&r, "frame size out of bounds");
	flen = rd_u32(&r, NULL);
	m->type = (uint16_t)(buf[4] << 8 | buf[5]);
	flags = (uint16_t)(buf[6] << 8 | buf[7]);
	r.p += 4;
	r.left -= 4;
	m->id = rd_u32(&r, NULL);
	if (flen != len)
		return rd_fail(&r, "length differs from the packet's");
	if (flags)
		return rd_fail(&r, "flags not 0");
	if (sshd_msg_dir(m->type) != (int)dir)
		return rd_fail(&r, "type unknown or of the other direction");
	id_zero = m->type == SSHD_M_CONFIG || m->type == SSHD_S_READY ||
		  m->type == SSHD_S_FAIL || m->type == SSHD_S_LOG;
	if (id_zero != (m->id == 0))
		return rd_fail(&r, id_zero ? "id not 0" : "id 0");
	decode_payload(&r, m);
	if (r.bad)
		return r.bad;
	if (r.left) {
		r.field = sshd_msg_name(m->type);
		return rd_fail(&r, "trailing bytes");
	}
	return 0;
}

/* ---- encoding ----------------------------------------------------------- */

static void
wr_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { v >> 24, v >> 16, v >> 8, v };

	buf_append(b, x, 4);
}

static void
wr_u8(struct buf *b, uint8_t v)
{
	buf_append(b, &v, 1);
}

static void
wr_str(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	/* Too long for a u32 is too long for every field: the check after
	 * encoding refuses it. */
	wr_u32(b, n > UINT32_MAX - 1 ? UINT32_MAX : (uint32_t)n);
	buf_append(b, s ? s : "", n + 1);
}

static void
wr_data(struct buf *b, const uint8_t *d, uint32_t n)
{
	wr_u32(b, n);
	buf_append(b, d, n);
}

static void
encode_payload(const struct sshd_msg *m, struct buf *b)
{
	switch (m->type) {
	case SSHD_M_CONFIG:
		wr_u32(b, m->version);
		wr_u32(b, m->uid);
		wr_u32(b, m->gid);
		wr_u32(b, m->max_conns);
		wr_u32(b, m->max_sessions);
		wr_u32(b, m->grace_ms);
		wr_u32(b, m->max_auth);
		wr_u32(b, m->nhostkeys);
		for (uint32_t i = 0;
		     i < m->nhostkeys && i < SSHD_HOSTKEYS_MAX; i++)
			wr_str(b, m->hostkeys[i]);
		break;
	case SSHD_M_KEYS:
		wr_u32(b, m->nkeys);
		for (uint32_t i = 0; i < m->nkeys && i < SSHD_KEYS_MAX; i++)
			wr_str(b, m->keys[i]);
		break;
	case SSHD_M_REFUSED:
	case SSHD_M_CLOSE:
	case SSHD_S_CLOSED:
	case SSHD_S_FAIL:
	case SSHD_S_LOG:
		wr_str(b, m->text);
		break;
	case SSHD_M_STDOUT:
	case SSHD_M_STDERR:
	case SSHD_S_STDIN:
		wr_data(b, m->data, m->len);
		break;
	case SSHD_M_EXIT:
		wr_u32(b, m->exit_kind);
		wr_u32(b, m->exit_value);
		break;
	case SSHD_M_ACK:
	case SSHD_S_ACK:
		wr_u32(b, m->ack);
		break;
	case SSHD_S_KEYS_REQ:
		wr_str(b, m->build);
		break;
	case SSHD_S_OPEN:
		wr_str(b, m->build);
		wr_str(b, m->fingerprint);
		wr_str(b, m->peer);
		wr_u8(b, m->has_pty);
		wr_str(b, m->term);
		wr_u32(b, m->rows);
		wr_u32(b, m->cols);
		wr_u8(b, m->has_command);
		wr_str(b, m->command);
		break;
	case SSHD_S_WINCH:
		wr_u32(b, m->rows);
		wr_u32(b, m->cols);
		break;
	default:
		break;
	}
}

int
sshd_msg_encode(const struct sshd_msg *m, struct buf *out, struct error *err)
{
	struct sshd_msg check;
	size_t start = out->len, n;
	int dir = sshd_msg_dir(m->type);
	uint8_t *h;

	if (dir < 0)
		return error_set(err, EINVAL, "sshd frame: unknown type %u",
				 (unsigned int)m->type);
	/* Bounded before anything is copied: a data length beyond the
	 * frame is refused whatever the pointer holds. */
	if ((m->type == SSHD_M_STDOUT || m->type == SSHD_M_STDERR ||
	     m->type == SSHD_S_STDIN) &&
	    (m->len == 0 || m->len > SSHD_DATA_MAX))
		return error_set(err, EINVAL, "sshd frame: %u data bytes",
				 (unsigned int)m->len);
	wr_u32(out, 0);
	buf_append(out, (uint8_t[]){ m->type >> 8, m->type & 0xff, 0, 0 }, 4);
	wr_u32(out, m->id);
	encode_payload(m, out);
	n = out->len - start;
	h = (uint8_t *)out->data + start;
	h[0] = n >> 24;
	h[1] = n >> 16;
	h[2] = n >> 8;
	h[3] = n;
	/* What the peer would refuse is never sent. */
	if (n > SSHD_FRAME_MAX ||
	    sshd_msg_decode(dir, h, n, &check, err) < 0) {
		if (n > SSHD_FRAME_MAX)
			error_set(err, EINVAL, "sshd frame: %zu bytes", n);
		out->len = start;
		if (err)
			err->code = EINVAL;
		return -EINVAL;
	}
	return 0;
}

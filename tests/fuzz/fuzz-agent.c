/* fuzz-agent.c - libFuzzer target: hostile bytes from the guest agent */
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

static int
on_frame(const struct agent_hdr *h, const void *p, void *opaque,
	 struct error *err)
{
	struct agent_hello hello;
	int32_t a, b;
	char msg[256];

	(void)opaque;
	switch (h->type) {
	case AGENT_HELLO:
		return agent_decode_hello(p, h->len, &hello, err) < 0 ? 0 : 0;
	case AGENT_EXIT:
		agent_decode_exit(p, h->len, &a, &b, err);
		return 0;
	case AGENT_ERROR:
	case AGENT_FILE_DONE:
		agent_decode_status(p, h->len, &a, msg, sizeof(msg), err);
		return 0;
	default:
		return 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf in = { 0 };
	struct error err = { 0 };
	size_t off = 0;

	/* feed in uneven pieces to exercise reassembly */
	while (off < size) {
		size_t n = 1 + (data[off] % 97);

		if (n > size - off)
			n = size - off;
		buf_append(&in, data + off, n);
		off += n;
		if (agent_frames_parse(&in, on_frame, NULL, &err) < 0)
			break;
	}
	buf_free(&in);
	return 0;
}

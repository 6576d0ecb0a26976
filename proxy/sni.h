/* sni.h - server name from the first bytes of a TLS connection (RFC 8446,
 * RFC 6066).  A pure function over a buffer: hostile input, bounded. */
#ifndef QCTL_SNI_H
#define QCTL_SNI_H

#include <stddef.h>
#include <stdint.h>

/* TLS record content type of a handshake: the first byte of a TLS client. */
#define SNI_TLS_HANDSHAKE 22
/* Largest ClientHello accepted (handshake message body, all fragments). */
#define SNI_HELLO_MAX 16384
/* Bytes of records that can carry SNI_HELLO_MAX (5-byte headers, up to
 * four fragments): a caller that holds this many and still hears
 * SNI_NEED_MORE may give up. */
#define SNI_BUF_MAX (SNI_HELLO_MAX + 4 + 4 * 5)

enum sni_result {
	SNI_FOUND,     /* a host_name is in out */
	SNI_ABSENT,    /* a complete, well-formed ClientHello without SNI */
	SNI_NEED_MORE, /* well-formed so far, but incomplete */
	SNI_MALFORMED, /* not a ClientHello, or broken, or too large */
};

/*
 * Parse the TLS records at the start of buf (len bytes, the client's
 * first bytes) and extract the server_name host_name of the ClientHello,
 * reassembled across records.  The name is copied NUL-terminated into out
 * (outlen bytes; a longer name is SNI_MALFORMED) as it appears on the
 * wire: letters, digits, '-', '.', '_' only, else SNI_MALFORMED.
 */
enum sni_result sni_parse(const uint8_t *buf, size_t len, char *out,
			  size_t outlen);

/* "found", "absent", "need-more", "malformed". */
const char *sni_result_name(enum sni_result r);

#endif

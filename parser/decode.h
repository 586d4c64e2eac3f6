/* Content-transfer decoding (quoted-printable, base64) with GMime's semantics and state, for
 * extract_part.c's bodies and attachment sizes. GMime's own step looks at every byte through a
 * switch; these copy runs whole. Checked against g_mime_encoding_step() by test_decode. */
#ifndef MP_DECODE_H
#define MP_DECODE_H

#include <gmime/gmime.h>
#include <stddef.h>

/* g_mime_encoding_step() for a decoder initialised with g_mime_encoding_init_decode() for
 * quoted-printable or base64: the same bytes out (out needs g_mime_encoding_outlen(st, len))
 * and the same state in st. Returns the bytes written. */
size_t decode_qp_step(GMimeEncoding *st, const char *in, size_t len, char *out);
size_t decode_base64_step(GMimeEncoding *st, const char *in, size_t len, char *out);

/* How many bytes GMime's decoder makes of the whole of in[0..len), without decoding. */
size_t decode_base64_size(const char *in, size_t len);
size_t decode_qp_size(const char *in, size_t len);

#endif

/* parser/decode.c against GMime's own decoder: the same bytes and the same state after every
 * step, on inputs built to hit the edges (escapes cut at chunk ends, soft breaks, CRLF, stray
 * '=', padding, junk between digits), fed whole and in random pieces; and the decoded size
 * counted without decoding equals what GMime's decoder makes. Deterministic (fixed seed). */
#include "../../parser/decode.h"

#include "test.h"

enum { CASES = 20000, MAX_LEN = 400 };

static unsigned long long rng = 0x9e3779b97f4a7c15ULL;

static unsigned next(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* A random input over the characters that matter to enc, a few of anything else. */
static size_t make_input(GMimeContentEncoding enc, char *buf)
{
	static const char qp[] = "====0123456789ABCDEFabcdef\r\n\n\n  \tQ=z";
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
				  "\r\n\n =";
	const char *set = enc == GMIME_CONTENT_ENCODING_BASE64 ? b64 : qp;
	size_t nset = strlen(set), len = next(MAX_LEN + 1);
	for (size_t i = 0; i < len; i++)
		buf[i] = next(40) == 0 ? (char)next(256) : set[next((unsigned)nset)];
	return len;
}

static size_t ours(GMimeContentEncoding enc, GMimeEncoding *st, const char *in, size_t len,
		   char *out)
{
	return enc == GMIME_CONTENT_ENCODING_BASE64 ? decode_base64_step(st, in, len, out)
						    : decode_qp_step(st, in, len, out);
}

static void differential(GMimeContentEncoding enc, const char *name)
{
	static char in[MAX_LEN], want[MAX_LEN + 64], got[MAX_LEN + 64];
	size_t failures = 0;
	for (int k = 0; k < CASES && failures < 5; k++) {
		size_t len = make_input(enc, in), wlen, glen = 0;
		GMimeEncoding g, o;
		g_mime_encoding_init_decode(&g, enc);
		wlen = g_mime_encoding_step(&g, in, len, want);
		/* Ours in random pieces (the parser feeds bodies in chunks). */
		g_mime_encoding_init_decode(&o, enc);
		for (size_t off = 0; off < len;) {
			size_t n = 1 + next(k % 2 ? 8 : 64);
			n = n > len - off ? len - off : n;
			glen += ours(enc, &o, in + off, n, got + glen);
			off += n;
		}
		/* save carries state only mid-escape (quoted-printable state 2) or mid-quartet
		 * (base64 1..3); elsewhere the two may leave different leftovers in it. */
		int live = enc == GMIME_CONTENT_ENCODING_BASE64 ? g.state > 0 : g.state == 2;
		int same = glen == wlen && memcmp(got, want, wlen) == 0 && o.state == g.state &&
			   (!live || o.save == g.save);
		size_t size = enc == GMIME_CONTENT_ENCODING_BASE64 ? decode_base64_size(in, len)
								   : decode_qp_size(in, len);
		if (!same || size != wlen) {
			printf("  %s case %d (%zu bytes): GMime %zu bytes state %d, ours %zu bytes "
			       "state %d, size %zu\n", name, k, len, wlen, g.state, glen, o.state, size);
			failures++;
		}
	}
	CHECK_EQ_INT(failures, 0);
}

static void test_qp_like_gmime(void)
{
	differential(GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE, "quoted-printable");
}

static void test_base64_like_gmime(void)
{
	differential(GMIME_CONTENT_ENCODING_BASE64, "base64");
}

/* A few by hand, so that a failure above has a readable neighbour. */
static void test_known(void)
{
	char out[64];
	GMimeEncoding st;
	g_mime_encoding_init_decode(&st, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	size_t n = decode_qp_step(&st, "caf=C3=A9 =\nau lait=3", 21, out);
	CHECK_EQ_INT(n, 13); /* the "=3" at the end waits for its second digit */
	CHECK(memcmp(out, "caf\xc3\xa9 au lait", 13) == 0);
	CHECK_EQ_INT(st.state, 2);
	g_mime_encoding_init_decode(&st, GMIME_CONTENT_ENCODING_BASE64);
	n = decode_base64_step(&st, "aGVs\nbG8=ignored", 16, out);
	CHECK_EQ_INT(n, 5);
	CHECK(memcmp(out, "hello", 5) == 0);
	CHECK_EQ_INT(decode_base64_size("aGVs\nbG8=ignored", 16), 5);
	CHECK_EQ_INT(decode_qp_size("a=41=\r\nb", 8), 3);
}

int main(void)
{
	g_mime_init();
	TEST_RUN(test_known);
	TEST_RUN(test_qp_like_gmime);
	TEST_RUN(test_base64_like_gmime);
	g_mime_shutdown();
	return test_summary();
}

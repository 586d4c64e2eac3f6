/* Unit tests for common/mutf7.c: RFC 3501 examples, round trips through UTF-8 (accents,
 * Japanese, emoji as surrogate pairs, control bytes), and the inputs decode must refuse. */
#include "mutf7.h"
#include "test.h"

#include <stdint.h>

static void check_pair(const char *utf8, const char *mutf7)
{
	char *enc = mutf7_encode(utf8);
	char *dec = mutf7_decode(mutf7);

	CHECK_EQ_STR(enc, mutf7);
	CHECK_EQ_STR(dec, utf8);
	free(enc);
	free(dec);
}

static void test_ascii(void)
{
	check_pair("", "");
	check_pair("INBOX", "INBOX");
	check_pair("Sent Items/2024 ~ [old]", "Sent Items/2024 ~ [old]");
	check_pair("&", "&-");
	check_pair("Tom & Jerry &&", "Tom &- Jerry &-&-");
	check_pair("a-b&-c", "a-b&--c");
}

static void test_rfc_examples(void)
{
	/* RFC 3501 section 5.1.3. */
	check_pair("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		   "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	check_pair("Projekte/Caf\xc3\xa9 Z\xc3\xbcrich", "Projekte/Caf&AOk- Z&APw-rich");
	check_pair("Entw\xc3\xbcrfe", "Entw&APw-rfe");
	check_pair("\xe3\x83\xa1\xe3\x83\xbc\xe3\x83\xab", "&MOEw,DDr-");
	check_pair(
	    "\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbd"
	    "\xd1\x8b\xd0\xb5",
	    "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-");
}

static void test_surrogates(void)
{
	/* U+1F4E7 (e-mail symbol) is D83D DCE7 in UTF-16. */
	check_pair("\xf0\x9f\x93\xa7", "&2D3c5w-");
	check_pair("Mail \xf0\x9f\x93\xa7\xf0\x9f\x98\x80!", "Mail &2D3c59g93gA-!");
	/* U+10FFFF, the last code point. */
	check_pair("\xf4\x8f\xbf\xbf", "&2,,f,w-");
}

static void test_controls(void)
{
	/* Not printable ASCII, so base64; decode takes them back. */
	check_pair("a\tb", "a&AAk-b");
	check_pair("\x7f", "&AH8-");
}

static void test_decode_invalid(void)
{
	static const char *bad[] = {
	    "&",	   /* unterminated */
	    "&AOk",	   /* unterminated run */
	    "&AO-",	   /* 12 bits: not a whole UTF-16 unit */
	    "&AOl-",	   /* nonzero padding bits */
	    "&AOkA-",	   /* 8 leftover bits: not minimal */
	    "&AGE-",	   /* "a" hidden in base64 */
	    "&ACY-",	   /* "&" hidden in base64 */
	    "&2D0-",	   /* lone high surrogate */
	    "&3Oc-",	   /* lone low surrogate */
	    "&2D3YPQ-",	   /* high surrogate followed by high */
	    "&AAA-",	   /* U+0000 */
	    "&AO*-",	   /* not base64 */
	    "&AO/-",	   /* "/" is "," in modified base64 */
	    "Caf\xc3\xa9", /* raw 8-bit */
	    "a\tb",	   /* raw control */
	    "\x7f",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *d = mutf7_decode(bad[i]);

		if (d)
			printf("  decode(\"%s\") = \"%s\", expected NULL\n", bad[i], d);
		CHECK(d == NULL);
		free(d);
	}
}

static void test_encode_invalid(void)
{
	static const char *bad[] = {
	    "\xc3",		/* truncated */
	    "\xc3\x28",		/* bad continuation */
	    "\xc0\xaf",		/* overlong "/" */
	    "\xe0\x80\xaf",	/* overlong */
	    "\xed\xa0\x80",	/* UTF-16 surrogate D800 */
	    "\xf4\x90\x80\x80", /* > U+10FFFF */
	    "\xff",
	    "ok \x80",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *e = mutf7_encode(bad[i]);

		CHECK(e == NULL);
		free(e);
	}
}

/* Every code point class, in random runs: encode then decode must give the input back, and
 * the output must stay inside the buffer bounds the codec computes (run under ASan). */
static void test_random_round_trip(void)
{
	uint32_t x = 2463534242u;

	for (int round = 0; round < 20000; round++) {
		char in[256];
		size_t n = 0;
		int len = (int)(x % 12);

		for (int k = 0; k < len; k++) {
			uint32_t cp;

			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			switch (x % 6) {
			case 0:
				cp = 0x20 + (x >> 8) % 0x5f;
				break;
			case 1:
				cp = '&';
				break;
			case 2:
				cp = 1 + (x >> 8) % 0x1f;
				break;
			case 3:
				cp = 0x80 + (x >> 8) % 0x780;
				break;
			case 4:
				cp = 0x800 + (x >> 8) % 0xf800;
				break;
			default:
				cp = 0x10000 + (x >> 8) % 0x100000;
				break;
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 'x';
			if (cp < 0x80) {
				in[n++] = (char)cp;
			} else if (cp < 0x800) {
				in[n++] = (char)(0xc0 | (cp >> 6));
				in[n++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				in[n++] = (char)(0xe0 | (cp >> 12));
				in[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				in[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				in[n++] = (char)(0xf0 | (cp >> 18));
				in[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				in[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				in[n++] = (char)(0x80 | (cp & 0x3f));
			}
		}
		in[n] = '\0';
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;

		char *enc = mutf7_encode(in);
		char *dec = enc ? mutf7_decode(enc) : NULL;

		CHECK(enc != NULL);
		CHECK(dec != NULL && strcmp(dec, in) == 0);
		if (test_case_failed) {
			printf("  round %d: in=\"%s\" enc=\"%s\"\n", round, in,
			       enc ? enc : "(null)");
			free(enc);
			free(dec);
			return;
		}
		free(enc);
		free(dec);
	}
}

int main(void)
{
	TEST_RUN(test_ascii);
	TEST_RUN(test_rfc_examples);
	TEST_RUN(test_surrogates);
	TEST_RUN(test_controls);
	TEST_RUN(test_decode_invalid);
	TEST_RUN(test_encode_invalid);
	TEST_RUN(test_random_round_trip);
	return test_summary();
}

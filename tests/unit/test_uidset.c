/* Unit tests for common/uidset.c: add/normalize/format/parse/contains, the parse limits, and
 * format -> parse round trips of random sets. */
#include "uidset.h"
#include "test.h"

#include <errno.h>

static void test_empty(void)
{
	struct uidset s;
	char *f;

	uidset_init(&s);
	f = uidset_format(&s);
	CHECK_EQ_STR(f, "");
	CHECK(!uidset_contains(&s, 1));
	uidset_normalize(&s);
	CHECK_EQ_INT(uidset_parse(&s, ""), 0);
	CHECK_EQ_INT(s.n, 0);
	free(f);
	uidset_release(&s);
	uidset_release(&s);
	uidset_release(NULL);
}

static void test_format(void)
{
	struct uidset s;
	static const uint32_t in[] = {9, 3, 1,	2, 12, 10,	    7,
				      4, 5, 11, 3, 9,  4294967295u, 4294967294u};
	char *f;

	uidset_init(&s);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		CHECK_EQ_INT(uidset_add(&s, in[i]), 0);
	CHECK_EQ_INT(uidset_add(&s, 0), -EINVAL);
	f = uidset_format(&s);
	CHECK_EQ_STR(f, "1:5,7,9:12,4294967294:4294967295");
	/* format works on a copy: the set keeps its insertion order. */
	CHECK_EQ_INT(s.n, sizeof(in) / sizeof(in[0]));
	CHECK_EQ_INT(s.v[0], 9);
	free(f);
	uidset_normalize(&s);
	CHECK_EQ_INT(s.n, 12);
	CHECK(uidset_contains(&s, 1) && uidset_contains(&s, 5) && uidset_contains(&s, 12));
	CHECK(uidset_contains(&s, 4294967295u));
	CHECK(!uidset_contains(&s, 6) && !uidset_contains(&s, 8) && !uidset_contains(&s, 13));
	CHECK(!uidset_contains(&s, 0));
	uidset_release(&s);

	uidset_init(&s);
	CHECK_EQ_INT(uidset_add(&s, 42), 0);
	f = uidset_format(&s);
	CHECK_EQ_STR(f, "42");
	free(f);
	uidset_release(&s);
}

static void test_parse(void)
{
	struct uidset s;
	char *f;

	uidset_init(&s);
	CHECK_EQ_INT(uidset_parse(&s, "1:5,7"), 0);
	f = uidset_format(&s);
	CHECK_EQ_STR(f, "1:5,7");
	free(f);
	CHECK_EQ_INT(uidset_parse(&s, "12:9,3,3,1:2,4294967295"), 0);
	f = uidset_format(&s);
	CHECK_EQ_STR(f, "1:3,9:12,4294967295");
	free(f);
	CHECK_EQ_INT(s.n, 8);
	CHECK(uidset_contains(&s, 10) && !uidset_contains(&s, 4));
	/* 10 million UIDs are allowed, one more is not. */
	CHECK_EQ_INT(uidset_parse(&s, "1:10000000"), 0);
	CHECK_EQ_INT(s.n, 10000000);
	CHECK_EQ_INT(uidset_parse(&s, "1:10000001"), -E2BIG);
	CHECK_EQ_INT(s.n, 0);
	CHECK_EQ_INT(uidset_parse(&s, "1:4294967295"), -E2BIG);
	CHECK_EQ_INT(uidset_parse(&s, "4294967295:1"), -E2BIG);
	CHECK_EQ_INT(uidset_parse(&s, "1:6000000,7000000:13000000"), -E2BIG);
	uidset_release(&s);
}

static void test_parse_invalid(void)
{
	static const char *bad[] = {
	    "*",    "1:*",	  "*:4",
	    "0",    "0:5",	  "5:0",
	    "1,0",  "4294967296", "99999999999999999999",
	    "1,",   ",1",	  "1,,2",
	    "1::2", "1:2:3",	  " 1",
	    "1 ",   "1, 2",	  "a",
	    "1a",   "-1",	  "+1",
	    "1:",   ":1",	  "1;2",
	    "1.5",
	};
	struct uidset s;

	uidset_init(&s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc;

		CHECK_EQ_INT(uidset_add(&s, 5), 0);
		rc = uidset_parse(&s, bad[i]);
		if (rc != -EINVAL)
			printf("  uidset_parse(\"%s\") = %d\n", bad[i], rc);
		CHECK_EQ_INT(rc, -EINVAL);
		CHECK_EQ_INT(s.n, 0);
	}
	uidset_release(&s);
}

static void test_round_trip(void)
{
	uint32_t x = 88172645u;

	for (int round = 0; round < 500; round++) {
		struct uidset a, b;
		char *fa, *fb;
		int n = (int)(x % 200);

		uidset_init(&a);
		uidset_init(&b);
		for (int i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			/* Dense low values make ranges; a few huge ones test the top end. */
			uint32_t u = (x & 7) ? 1 + x % 300 : 4294967295u - x % 5;

			CHECK_EQ_INT(uidset_add(&a, u), 0);
		}
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		fa = uidset_format(&a);
		CHECK_EQ_INT(uidset_parse(&b, fa), 0);
		fb = uidset_format(&b);
		CHECK_EQ_STR(fb, fa);
		uidset_normalize(&a);
		CHECK_EQ_INT(b.n, a.n);
		CHECK(a.n == b.n && (a.n == 0 || memcmp(a.v, b.v, a.n * sizeof(*a.v)) == 0));
		for (uint32_t u = 1; u <= 301; u++) {
			int in = 0;

			for (size_t k = 0; k < a.n; k++)
				in |= a.v[k] == u;
			CHECK_EQ_INT(uidset_contains(&b, u), in);
		}
		free(fa);
		free(fb);
		uidset_release(&a);
		uidset_release(&b);
		if (test_case_failed)
			return;
	}
}

static void test_add_range(void)
{
	struct uidset s;
	char *f;

	uidset_init(&s);
	CHECK_EQ_INT(uidset_add_range(&s, 7, 3), 0);
	CHECK_EQ_INT(uidset_add_range(&s, 4294967290u, 4294967295u), 0);
	CHECK_EQ_INT(uidset_add_range(&s, 0, 3), -EINVAL);
	f = uidset_format(&s);
	CHECK_EQ_STR(f, "3:7,4294967290:4294967295");
	free(f);
	uidset_release(&s);
}

int main(void)
{
	TEST_RUN(test_empty);
	TEST_RUN(test_format);
	TEST_RUN(test_add_range);
	TEST_RUN(test_parse);
	TEST_RUN(test_parse_invalid);
	TEST_RUN(test_round_trip);
	return test_summary();
}

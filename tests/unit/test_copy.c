/* writer/copy.c: the binary COPY encoding of the values the writer sends (timestamps, text[],
 * jsonb, integers), byte for byte as PostgreSQL's binary receive functions read them. The
 * round trip through a real server is test_pipeline's "COPY and INSERT paths" check. */
#include "../../writer/copy.h"
#include "test.h"

#include <errno.h>

static void test_iso_times(void)
{
	static const struct {
		const char *in;
		long long usec;
	} ok[] = {
		{ "2000-01-01T00:00:00Z", 0 },
		{ "1999-12-31T23:59:59Z", -1000000 },
		{ "1970-01-01T00:00:00Z", -946684800000000LL },
		{ "2024-02-29T12:34:56+02:00", 762518096000000LL },
		{ "9999-12-31T23:59:59-05:30", 252455635799000000LL },
		{ "0001-01-01T00:00:00Z", -63082281600000000LL },
		{ "2016-12-31T23:59:60Z", 536544000000000LL }, /* a leap second rolls over */
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t usec = 42;
		CHECK_EQ_INT(copy_parse_iso(ok[i].in, &usec), 0);
		CHECK_EQ_INT(usec, ok[i].usec);
	}
	/* Anything else is left to the server's parser (the INSERT path), never guessed. */
	static const char *const bad[] = {
		"", "2024-02-29", "2024-02-29 12:34:56Z", "2024-02-29T12:34:56", "2024-13-01T00:00:00Z",
		"2024-02-29T24:00:00Z", "2024-02-29T12:34:56+0200", "2024-02-29T12:34:56+02:00x",
		"2024-02-29T12:34:56.5Z", "0000-01-01T00:00:00Z", "2023-02-29T00:00:00Z",
		"2024-04-31T00:00:00Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t usec;
		if (copy_parse_iso(bad[i], &usec) != -EINVAL) {
			printf("  accepted \"%s\"\n", bad[i]);
			test_case_failed = 1;
		}
	}
	int64_t usec;
	CHECK_EQ_INT(copy_parse_iso(NULL, &usec), -EINVAL);
}

static int bytes_are(const struct copy *c, const void *want, size_t n)
{
	if (c->len == n && memcmp(c->buf, want, n) == 0)
		return 1;
	printf("  got %zu bytes:", c->len);
	for (size_t i = 0; i < c->len; i++)
		printf(" %02x", (unsigned char)c->buf[i]);
	printf("\n");
	return 0;
}

static void reset(struct copy *c)
{
	free(c->buf);
	*c = (struct copy){ 0 };
}

static void test_values(void)
{
	struct copy c = { 0 };

	copy_int8(&c, -2);
	CHECK(bytes_are(&c, "\0\0\0\x08\xff\xff\xff\xff\xff\xff\xff\xfe", 12));
	reset(&c);
	copy_int4(&c, 70000);
	CHECK(bytes_are(&c, "\0\0\0\x04\0\x01\x11\x70", 8));
	reset(&c);
	copy_null(&c);
	copy_text(&c, NULL);
	CHECK(bytes_are(&c, "\xff\xff\xff\xff\xff\xff\xff\xff", 8));
	reset(&c);
	copy_bool(&c, 1);
	copy_text(&c, "h\xc3\xa9");
	CHECK(bytes_are(&c, "\0\0\0\x01\x01\0\0\0\x03h\xc3\xa9", 12));
	reset(&c);

	/* jsonb: a version byte before the text; the fallback for a missing value. */
	json_t *v = json_pack("[{s:s}]", "email", "a@b");
	copy_jsonb(&c, v, "[]");
	const char want[] = "\0\0\0\x12\x01[{\"email\":\"a@b\"}]";
	CHECK(bytes_are(&c, want, sizeof(want) - 1));
	reset(&c);
	copy_jsonb(&c, NULL, "[]");
	copy_jsonb(&c, json_null(), "[]");
	CHECK(bytes_are(&c, "\0\0\0\x03\x01[]\0\0\0\x03\x01[]", 14));
	reset(&c);
	json_decref(v);

	/* text[]: one dimension with lower bound 1, element type text (25), non-strings skipped;
	 * an empty or missing array has no dimension. */
	v = json_pack("[s, i, s]", "<a@x>", 7, "");
	copy_text_array(&c, v);
	const char arr[] = "\0\0\0\x21"		/* field length 33 */
			   "\0\0\0\x01\0\0\0\0\0\0\0\x19" /* ndim 1, no nulls, text */
			   "\0\0\0\x02\0\0\0\x01"	/* 2 elements from index 1 */
			   "\0\0\0\x05<a@x>"
			   "\0\0\0\0";
	CHECK(bytes_are(&c, arr, sizeof(arr) - 1));
	reset(&c);
	copy_text_array(&c, NULL);
	CHECK(bytes_are(&c, "\0\0\0\x0c\0\0\0\0\0\0\0\0\0\0\0\x19", 16));
	reset(&c);
	json_decref(v);

	/* A timestamp it cannot read poisons the COPY instead of writing something else. */
	copy_timestamptz(&c, "2000-01-01T00:00:01Z");
	CHECK(bytes_are(&c, "\0\0\0\x08\0\0\0\0\0\x0f\x42\x40", 12));
	CHECK_EQ_INT(c.err, 0);
	copy_timestamptz(&c, "yesterday");
	CHECK_EQ_INT(c.err, -EINVAL);
	reset(&c);
}

int main(void)
{
	TEST_RUN(test_iso_times);
	TEST_RUN(test_values);
	return test_summary();
}

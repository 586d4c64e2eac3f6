/* Unit tests for common/secretbox.c: AES-256-GCM round trip, and that a wrong key, a tampered
 * byte or another account's associated data all fail to open; key parsing (hex, base64, junk),
 * key ids, reference lists. */
#include "secretbox.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *HEX_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/* The same 32 bytes as base64. */
static const char *B64_KEY = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";

static void key(struct secretbox_key *k, const char *text)
{
	CHECK_EQ_INT(secretbox_key_parse(k, text), 0);
}

static void test_round_trip(void)
{
	struct secretbox_key k;
	struct secretbox_sealed s;
	char aad[64];
	const char *pw = "correct horse battery staple";

	key(&k, HEX_KEY);
	secretbox_aad(aad, sizeof(aad), 42);
	CHECK_EQ_INT(secretbox_seal(&k, aad, pw, strlen(pw), &s), 0);
	CHECK_EQ_INT(s.ctlen, strlen(pw));
	CHECK_EQ_STR(s.key_id, k.id);
	CHECK(memcmp(s.ct, pw, s.ctlen) != 0);
	char *out = secretbox_open(&k, aad, &s);
	CHECK_EQ_STR(out, pw);
	secretbox_free_secret(out);

	/* A fresh nonce per seal: the same secret twice gives two ciphertexts. */
	struct secretbox_sealed s2;
	CHECK_EQ_INT(secretbox_seal(&k, aad, pw, strlen(pw), &s2), 0);
	CHECK(memcmp(s.nonce, s2.nonce, sizeof(s.nonce)) != 0);
	CHECK(memcmp(s.ct, s2.ct, s.ctlen) != 0);
	secretbox_sealed_release(&s2);
	secretbox_sealed_release(&s);
	secretbox_sealed_release(&s);
	secretbox_sealed_release(NULL);
	secretbox_free_secret(NULL);
}

static void test_wrong_key(void)
{
	struct secretbox_key k, other;
	struct secretbox_sealed s;
	char aad[64];

	key(&k, HEX_KEY);
	key(&other, "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
	CHECK(strcmp(k.id, other.id) != 0);
	secretbox_aad(aad, sizeof(aad), 1);
	CHECK_EQ_INT(secretbox_seal(&k, aad, "pw", 2, &s), 0);
	CHECK(secretbox_open(&other, aad, &s) == NULL);
	/* Even under the right key id, other key bytes do not open it. */
	memcpy(other.id, k.id, sizeof(other.id));
	CHECK(secretbox_open(&other, aad, &s) == NULL);
	secretbox_sealed_release(&s);
}

static void test_tampered(void)
{
	struct secretbox_key k;
	struct secretbox_sealed s;
	char aad[64], *out;

	key(&k, HEX_KEY);
	secretbox_aad(aad, sizeof(aad), 7);
	CHECK_EQ_INT(secretbox_seal(&k, aad, "hunter2-hunter2", 15, &s), 0);
	for (size_t i = 0; i < s.ctlen; i++) {
		s.ct[i] ^= 1;
		CHECK((out = secretbox_open(&k, aad, &s)) == NULL);
		secretbox_free_secret(out);
		s.ct[i] ^= 1;
	}
	s.tag[0] ^= 0x80;
	CHECK(secretbox_open(&k, aad, &s) == NULL);
	s.tag[0] ^= 0x80;
	s.nonce[11] ^= 1;
	CHECK(secretbox_open(&k, aad, &s) == NULL);
	s.nonce[11] ^= 1;
	/* Truncated ciphertext. */
	s.ctlen--;
	CHECK(secretbox_open(&k, aad, &s) == NULL);
	s.ctlen++;
	out = secretbox_open(&k, aad, &s);
	CHECK_EQ_STR(out, "hunter2-hunter2");
	secretbox_free_secret(out);
	secretbox_sealed_release(&s);
}

static void test_wrong_aad(void)
{
	struct secretbox_key k;
	struct secretbox_sealed s;
	char aad[64], other[64];

	key(&k, HEX_KEY);
	secretbox_aad(aad, sizeof(aad), 12);
	secretbox_aad(other, sizeof(other), 13);
	CHECK_EQ_INT(secretbox_seal(&k, aad, "pw-of-12", 8, &s), 0);
	CHECK(secretbox_open(&k, other, &s) == NULL);
	CHECK(secretbox_open(&k, "", &s) == NULL);
	secretbox_sealed_release(&s);
}

static void test_key_parse(void)
{
	struct secretbox_key a, b;

	key(&a, HEX_KEY);
	key(&b, B64_KEY);
	CHECK(memcmp(a.key, b.key, sizeof(a.key)) == 0);
	CHECK_EQ_STR(a.id, b.id);
	CHECK_EQ_INT(strlen(a.id), 16);
	/* Blanks and a trailing newline, as `openssl rand -base64 32 > key` writes. */
	key(&b, "  ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=\n");
	CHECK_EQ_STR(a.id, b.id);
	CHECK_EQ_INT(secretbox_key_parse(&b, ""), -EINVAL);
	CHECK_EQ_INT(secretbox_key_parse(&b, "00112233"), -EINVAL);
	CHECK_EQ_INT(secretbox_key_parse(&b, "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"), -EINVAL);
	/* base64 of 31 and of 33 bytes. */
	CHECK_EQ_INT(secretbox_key_parse(&b, "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7g=="), -EINVAL);
	CHECK_EQ_INT(secretbox_key_parse(&b, "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8A"), -EINVAL);
	CHECK_EQ_INT(secretbox_key_parse(&b, "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8= extra"), -EINVAL);
	CHECK_EQ_INT(secretbox_key_parse(&b, "a password, not a key"), -EINVAL);
}

static void test_keys_load(void)
{
	struct secretbox_key keys[3];
	char err[400], path[] = "/tmp/mp-test-key-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, B64_KEY, strlen(B64_KEY)) == (ssize_t)strlen(B64_KEY));
	CHECK(write(fd, "\n", 1) == 1);
	close(fd);
	setenv("MP_TEST_KEY", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100", 1);

	char refs[200];
	snprintf(refs, sizeof(refs), "file:%s, env:MP_TEST_KEY", path);
	CHECK_EQ_INT(secretbox_keys_load(keys, 3, "V", refs, err, sizeof(err)), 2);
	struct secretbox_key want;
	key(&want, HEX_KEY);
	CHECK(secretbox_key_find(keys, 2, want.id) == &keys[0]);
	CHECK(secretbox_key_find(keys, 2, "0000000000000000") == NULL);
	CHECK_EQ_INT(secretbox_keys_load(keys, 3, "V", "", err, sizeof(err)), 0);
	CHECK_EQ_INT(secretbox_keys_load(keys, 1, "V", refs, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "more than 1") != NULL);
	CHECK(secretbox_keys_load(keys, 3, "V", "env:MP_TEST_UNSET_VAR", err, sizeof(err)) < 0);
	CHECK(strstr(err, "V: env:MP_TEST_UNSET_VAR is not set") == err);
	setenv("MP_TEST_BAD", "s3cret-not-a-key", 1);
	CHECK(secretbox_keys_load(keys, 3, "V", "env:MP_TEST_BAD", err, sizeof(err)) < 0);
	/* The error names the reference, never its content. */
	CHECK(strstr(err, "env:MP_TEST_BAD") != NULL && strstr(err, "s3cret") == NULL);
	CHECK(secretbox_keys_load(keys, 3, "V", "s3cret", err, sizeof(err)) < 0);
	unlink(path);
}

static void test_hex(void)
{
	unsigned char in[] = { 0, 1, 0xab, 0xff }, *out;
	char h[9];
	size_t n;

	secretbox_hex(h, in, 4);
	CHECK_EQ_STR(h, "0001abff");
	CHECK_EQ_INT(secretbox_unhex("0001ABff", &out, &n), 0);
	CHECK_EQ_INT(n, 4);
	CHECK(memcmp(out, in, 4) == 0);
	free(out);
	CHECK_EQ_INT(secretbox_unhex("abc", &out, &n), -EINVAL);
	CHECK_EQ_INT(secretbox_unhex("zz", &out, &n), -EINVAL);
	CHECK_EQ_INT(secretbox_unhex("", &out, &n), 0);
	CHECK_EQ_INT(n, 0);
	free(out);
}

int main(void)
{
	TEST_RUN(test_round_trip);
	TEST_RUN(test_wrong_key);
	TEST_RUN(test_tampered);
	TEST_RUN(test_wrong_aad);
	TEST_RUN(test_key_parse);
	TEST_RUN(test_keys_load);
	TEST_RUN(test_hex);
	return test_summary();
}

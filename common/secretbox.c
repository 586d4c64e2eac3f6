/* AES-256-GCM sealing of account secrets and the loading of its keys: see secretbox.h. Used by
 * the CLI (account add --secret-stdin, account secret, secrets rotate) and the fetcher. */
#include "secretbox.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *secretbox_ref_read(const char *ref, char *err, size_t errlen)
{
	char buf[SECRETBOX_MAX_SECRET + 1];
	size_t n = 0;

	if (strncmp(ref, "env:", 4) == 0 && ref[4]) {
		const char *v = getenv(ref + 4);
		if (!v || !*v) {
			snprintf(err, errlen, "%s is not set in this process's environment", ref);
			return NULL;
		}
		n = strlen(v);
		if (n > SECRETBOX_MAX_SECRET) {
			snprintf(err, errlen, "%s is longer than %d bytes", ref, SECRETBOX_MAX_SECRET);
			return NULL;
		}
		memcpy(buf, v, n);
	} else if (strncmp(ref, "file:", 5) == 0 && ref[5]) {
		FILE *fp = fopen(ref + 5, "r");
		if (!fp) {
			snprintf(err, errlen, "%s cannot be read: %s", ref, strerror(errno));
			return NULL;
		}
		n = fread(buf, 1, sizeof(buf), fp);
		int bad = ferror(fp);
		fclose(fp);
		if (bad || n > SECRETBOX_MAX_SECRET) {
			OPENSSL_cleanse(buf, sizeof(buf));
			snprintf(err, errlen, "%s cannot be read: %s", ref,
				 bad ? "read error" : "longer than 8192 bytes");
			return NULL;
		}
	} else {
		snprintf(err, errlen, "'%.40s' is not a reference (env:VAR or file:PATH)", ref);
		return NULL;
	}
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = 0;
	char *s = n ? strdup(buf) : NULL;
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!n)
		snprintf(err, errlen, "%s is empty", ref);
	else if (!s)
		snprintf(err, errlen, "%s: out of memory", ref);
	return s;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void secretbox_hex(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = 0;
}

int secretbox_unhex(const char *hex, unsigned char **out, size_t *n)
{
	size_t len = strlen(hex);
	*out = NULL;
	*n = 0;
	if (len % 2)
		return -EINVAL;
	unsigned char *b = malloc(len / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(b);
			return -EINVAL;
		}
		b[i] = (unsigned char)(hi << 4 | lo);
	}
	*out = b;
	*n = len / 2;
	return 0;
}

static void key_set_id(struct secretbox_key *k)
{
	static const char label[] = "mailpipe secret key id v1";
	unsigned char in[sizeof(label) + SECRETBOX_KEY_LEN], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	memcpy(in, label, sizeof(label));
	memcpy(in + sizeof(label), k->key, SECRETBOX_KEY_LEN);
	if (EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL) != 1)
		memset(md, 0, sizeof(md));
	secretbox_hex(k->id, md, 8);
	OPENSSL_cleanse(in, sizeof(in));
}

int secretbox_key_parse(struct secretbox_key *k, const char *text)
{
	char t[128];
	size_t n = 0;
	int rc = -EINVAL;

	while (isspace((unsigned char)*text))
		text++;
	for (; *text && !isspace((unsigned char)*text); text++)
		if (n < sizeof(t) - 1)
			t[n++] = *text;
		else
			goto out;
	t[n] = 0;
	while (isspace((unsigned char)*text))
		text++;
	if (*text)
		goto out;
	if (n == 2 * SECRETBOX_KEY_LEN) {
		unsigned char *b;
		size_t bn;
		if (secretbox_unhex(t, &b, &bn) == 0) {
			memcpy(k->key, b, SECRETBOX_KEY_LEN);
			OPENSSL_cleanse(b, bn);
			free(b);
			rc = 0;
		}
	} else if (n == 44 && t[43] == '=' && t[42] != '=') {
		/* base64 of 32 bytes: 44 characters with one '=' of padding. */
		unsigned char b[33];
		if (EVP_DecodeBlock(b, (const unsigned char *)t, (int)n) == 33) {
			memcpy(k->key, b, SECRETBOX_KEY_LEN);
			rc = 0;
		}
		OPENSSL_cleanse(b, sizeof(b));
	}
	if (rc == 0)
		key_set_id(k);
out:
	OPENSSL_cleanse(t, sizeof(t));
	return rc;
}

int secretbox_keys_load(struct secretbox_key *keys, int max, const char *var, const char *refs,
			char *err, size_t errlen)
{
	char *list = strdup(refs ? refs : ""), *save = NULL, *ref;
	int n = 0;

	if (!list) {
		snprintf(err, errlen, "%s: out of memory", var);
		return -ENOMEM;
	}
	for (ref = strtok_r(list, ",", &save); ref; ref = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*ref))
			ref++;
		if (!*ref)
			continue;
		if (n == max) {
			snprintf(err, errlen, "%s names more than %d keys", var, max);
			n = -EINVAL;
			break;
		}
		char why[300];
		char *text = secretbox_ref_read(ref, why, sizeof(why));
		if (!text) {
			snprintf(err, errlen, "%s: %s", var, why);
			n = -EINVAL;
			break;
		}
		int rc = secretbox_key_parse(&keys[n], text);
		secretbox_free_secret(text);
		if (rc < 0) {
			snprintf(err, errlen, "%s: %.200s does not hold a key (32 bytes as base64 or 64 hex "
					      "digits; make one with `openssl rand -base64 32`)", var, ref);
			n = -EINVAL;
			break;
		}
		n++;
	}
	free(list);
	return n;
}

void secretbox_aad(char *buf, size_t len, long long account_id)
{
	snprintf(buf, len, "mailpipe account %lld", account_id);
}

int secretbox_seal(const struct secretbox_key *k, const char *aad, const void *pt, size_t len,
		   struct secretbox_sealed *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, rc = -EIO;

	memset(out, 0, sizeof(*out));
	out->ct = malloc(len + 1);
	if (!c || !out->ct)
		goto out;
	if (RAND_bytes(out->nonce, sizeof(out->nonce)) != 1)
		goto out;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SECRETBOX_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(c, NULL, NULL, k->key, out->nonce) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(c, out->ct, &n, pt, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, out->ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SECRETBOX_TAG_LEN, out->tag) != 1)
		goto out;
	out->ctlen = (size_t)(n + fin);
	memcpy(out->key_id, k->id, sizeof(out->key_id));
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	if (rc < 0)
		secretbox_sealed_release(out);
	return rc;
}

char *secretbox_open(const struct secretbox_key *k, const char *aad, const struct secretbox_sealed *s)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	char *pt = malloc(s->ctlen + 1);
	int n = 0, fin = 0, ok = 0;

	if (!c || !pt || strcmp(k->id, s->key_id) != 0 || s->ctlen > SECRETBOX_MAX_SECRET)
		goto out;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SECRETBOX_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(c, NULL, NULL, k->key, s->nonce) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(c, (unsigned char *)pt, &n, s->ct, (int)s->ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SECRETBOX_TAG_LEN, (void *)s->tag) != 1 ||
	    EVP_DecryptFinal_ex(c, (unsigned char *)pt + n, &fin) != 1)
		goto out;
	pt[n + fin] = 0;
	/* A secret with a NUL inside would be cut short at login: refuse it whole. */
	ok = strlen(pt) == (size_t)(n + fin) && n + fin > 0;
out:
	EVP_CIPHER_CTX_free(c);
	if (!ok && pt) {
		OPENSSL_cleanse(pt, s->ctlen + 1);
		free(pt);
		pt = NULL;
	}
	return pt;
}

const struct secretbox_key *secretbox_key_find(const struct secretbox_key *keys, int n,
					       const char *key_id)
{
	for (int i = 0; i < n; i++)
		if (strcmp(keys[i].id, key_id) == 0)
			return &keys[i];
	return NULL;
}

void secretbox_sealed_release(struct secretbox_sealed *s)
{
	if (!s)
		return;
	free(s->ct);
	s->ct = NULL;
	s->ctlen = 0;
}

void secretbox_free_secret(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

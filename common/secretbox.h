/* Account secrets sealed at rest: AES-256-GCM (OpenSSL EVP) under a key named by a reference
 * (MAILPIPE_SECRET_KEY), with the account as associated data. Owns the crypto, key loading and
 * env:/file: reference reading; not the table (cli/secrets.c) nor the login (fetcher/secret.c). */
#ifndef MP_SECRETBOX_H
#define MP_SECRETBOX_H

#include <stddef.h>

#define SECRETBOX_KEY_LEN 32
#define SECRETBOX_NONCE_LEN 12
#define SECRETBOX_TAG_LEN 16
#define SECRETBOX_MAX_SECRET 8192
#define SECRETBOX_MAX_KEYS 8

/* SQL for the sealed secret of the account aliased `a`, as JSON (key_id, nonce, ciphertext, tag,
 * bytes in hex), or NULL: what jobs and IDLE targets carry to the fetcher as `secret_box`.
 * Ciphertext may travel through Redis; the clear text never does. */
#define SECRETBOX_SQL_JSON                                                                      \
	"(SELECT json_build_object('key_id', s.key_id, 'nonce', encode(s.nonce, 'hex'), "      \
	"'ciphertext', encode(s.ciphertext, 'hex'), 'tag', encode(s.tag, 'hex')) "             \
	"FROM account_secrets s WHERE s.account_id = a.id)"

/* A key and its id: 16 hex digits of SHA-256 over a label and the key, stored beside each
 * ciphertext so that a reader knows which of its keys opens it, without revealing the key. */
struct secretbox_key {
	unsigned char key[SECRETBOX_KEY_LEN];
	char id[17];
};

/* One sealed secret. ct is owned: release with secretbox_sealed_release. */
struct secretbox_sealed {
	char key_id[17];
	unsigned char nonce[SECRETBOX_NONCE_LEN];
	unsigned char tag[SECRETBOX_TAG_LEN];
	unsigned char *ct;
	size_t ctlen;
};

/* Reads an env:VAR or file:PATH reference, trailing newlines and blanks stripped. A malloc'd
 * string, or NULL with one line in err naming the reference, never its value. */
char *secretbox_ref_read(const char *ref, char *err, size_t errlen);

/* text is 64 hex digits or base64 of 32 bytes (blanks around it ignored). 0 or -EINVAL. */
int secretbox_key_parse(struct secretbox_key *k, const char *text);

/* Loads the keys of a reference list: refs separated by commas (MAILPIPE_SECRET_KEY_OLD may
 * name several; MAILPIPE_SECRET_KEY one). var names the list in errors. Returns the number
 * loaded (0 for an empty list), or negative after one line in err. */
int secretbox_keys_load(struct secretbox_key *keys, int max, const char *var, const char *refs,
			char *err, size_t errlen);

/* The associated data binding a ciphertext to its account: a ciphertext copied to another
 * account's row does not open. */
void secretbox_aad(char *buf, size_t len, long long account_id);

/* Seals len bytes of pt under k with a fresh random nonce. 0, or negative (out is then empty). */
int secretbox_seal(const struct secretbox_key *k, const char *aad, const void *pt, size_t len,
		   struct secretbox_sealed *out);

/* Opens s with k (whose id must match s's). The clear text, NUL-terminated, malloc'd: the
 * caller wipes and frees it with secretbox_free_secret. NULL when the key, the associated data
 * or any byte is wrong: GCM cannot tell which. */
char *secretbox_open(const struct secretbox_key *k, const char *aad, const struct secretbox_sealed *s);

/* Finds the key of keys[0..n) whose id is key_id; NULL when none has it. */
const struct secretbox_key *secretbox_key_find(const struct secretbox_key *keys, int n,
					       const char *key_id);

void secretbox_sealed_release(struct secretbox_sealed *s);
/* Wipes and frees a clear-text secret; NULL does nothing. */
void secretbox_free_secret(char *s);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void secretbox_hex(char *out, const unsigned char *in, size_t n);
/* Decodes hex text into a malloc'd buffer (*out, *n). 0 or -EINVAL. */
int secretbox_unhex(const char *hex, unsigned char **out, size_t *n);

#endif

/* Secrets at rest from the command line: `account add --secret-stdin` and `account secret NAME`
 * seal a secret into account_secrets (common/secretbox.c), `secrets rotate` re-seals every
 * stored secret under the current MAILPIPE_SECRET_KEY. Not the login (fetcher/secret.c). */
#include "cli.h"
#include "pg.h"
#include "secretbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int secrets_ref_valid(const char *ref)
{
	return ref && ((!strncmp(ref, "env:", 4) && ref[4]) || (!strncmp(ref, "file:", 5) && ref[5]) ||
		       (!strncmp(ref, "cmd:", 4) && ref[4]));
}

/* The current key, or an exit status after one line: 2 when MAILPIPE_SECRET_KEY is unset or
 * not a key (the operator's setup is wrong, nothing was done). */
static int load_current_key(const struct cli *c, struct secretbox_key *k)
{
	char err[400];
	if (!*c->cfg.secret_key) {
		fprintf(stderr, "mailpipe: MAILPIPE_SECRET_KEY is not set: a stored secret needs a key "
				"(file:PATH or env:VAR holding `openssl rand -base64 32`); nothing stored\n");
		return 2;
	}
	int n = secretbox_keys_load(k, 1, "MAILPIPE_SECRET_KEY", c->cfg.secret_key, err, sizeof(err));
	if (n != 1) {
		fprintf(stderr, "mailpipe: %s\n", n == 0 ? "MAILPIPE_SECRET_KEY names no key" : err);
		return 2;
	}
	return 0;
}

/* One line from stdin, its newline stripped; echo off at a terminal. */
static int read_stdin_secret(char **out)
{
	char buf[SECRETBOX_MAX_SECRET + 2];
	struct termios old, quiet;
	int tty = isatty(0) && tcgetattr(0, &old) == 0;

	*out = NULL;
	if (tty) {
		fputs("secret: ", stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	size_t n = fread(buf, 1, tty ? 0 : sizeof(buf) - 1, stdin);
	if (tty) {
		n = fgets(buf, sizeof(buf) - 1, stdin) ? strlen(buf) : 0;
		tcsetattr(0, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	if (n && buf[n - 1] == '\r')
		buf[--n] = 0;
	int rc = 0;
	if (n > SECRETBOX_MAX_SECRET)
		rc = fprintf(stderr, "mailpipe: the secret on stdin is longer than %d bytes\n",
			     SECRETBOX_MAX_SECRET);
	else if (!n)
		rc = fprintf(stderr, "mailpipe: --secret-stdin read an empty secret; nothing stored\n");
	else if (memchr(buf, '\n', n) || strlen(buf) != n)
		rc = fprintf(stderr, "mailpipe: --secret-stdin takes one line (the secret), and stdin "
				     "held more; nothing stored\n");
	else if (!(*out = strdup(buf)))
		rc = fprintf(stderr, "mailpipe: out of memory\n");
	explicit_bzero(buf, sizeof(buf));
	return rc ? 2 : 0;
}

int secrets_prepare_stdin(struct cli *c, struct cli_secret *s)
{
	memset(s, 0, sizeof(*s));
	int rc = load_current_key(c, &s->key);
	return rc ? rc : read_stdin_secret(&s->clear);
}

void secrets_release(struct cli_secret *s)
{
	if (!s)
		return;
	secretbox_free_secret(s->clear);
	explicit_bzero(s, sizeof(*s));
}

/* Writes sealed for account_id (insert or replace). 0 or -EIO after one line. */
static int store_sealed(PGconn *pg, const char *account_id, const struct secretbox_sealed *sealed)
{
	char nonce[2 * SECRETBOX_NONCE_LEN + 1], tag[2 * SECRETBOX_TAG_LEN + 1];
	char *ct = malloc(2 * sealed->ctlen + 1);
	if (!ct)
		return -ENOMEM;
	secretbox_hex(nonce, sealed->nonce, sizeof(sealed->nonce));
	secretbox_hex(tag, sealed->tag, sizeof(sealed->tag));
	secretbox_hex(ct, sealed->ct, sealed->ctlen);
	const char *params[] = { account_id, sealed->key_id, nonce, ct, tag };
	int rc = pg_cmd(pg, "store secret",
			"INSERT INTO account_secrets (account_id, key_id, nonce, ciphertext, tag) "
			"VALUES ($1::bigint, $2, decode($3, 'hex'), decode($4, 'hex'), decode($5, 'hex')) "
			"ON CONFLICT (account_id) DO UPDATE SET key_id = excluded.key_id, "
			" nonce = excluded.nonce, ciphertext = excluded.ciphertext, tag = excluded.tag, "
			" created_at = now(), rotated_at = NULL",
			5, params);
	free(ct);
	return rc < 0 ? -EIO : 0;
}

int secrets_store(PGconn *pg, const char *account_id, const struct cli_secret *s)
{
	struct secretbox_sealed sealed;
	char aad[64];

	secretbox_aad(aad, sizeof(aad), strtoll(account_id, NULL, 10));
	if (secretbox_seal(&s->key, aad, s->clear, strlen(s->clear), &sealed) < 0) {
		fprintf(stderr, "mailpipe: the secret could not be encrypted (OpenSSL)\n");
		return -EIO;
	}
	int rc = store_sealed(pg, account_id, &sealed);
	secretbox_sealed_release(&sealed);
	return rc;
}

/* account secret NAME --secret-stdin | --secret REF */
int cmd_account_secret(struct cli *c, int argc, char **argv)
{
	const char *name = NULL, *ref = NULL;
	int from_stdin = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--secret-stdin"))
			from_stdin = 1;
		else if (!strcmp(argv[i], "--secret")) {
			if (!(ref = cli_arg(argc, argv, &i)))
				return 2;
		} else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else {
			fprintf(stderr, "mailpipe: account secret: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!name || from_stdin == !!ref) {
		fprintf(stderr, "mailpipe: usage: account secret NAME --secret-stdin | --secret "
				"env:VAR|file:PATH|cmd:COMMAND (one of the two)\n");
		return 2;
	}
	if (ref && !secrets_ref_valid(ref)) {
		fprintf(stderr, "mailpipe: --secret must be a reference, env:VAR, file:PATH or "
				"cmd:COMMAND, never the secret itself (use --secret-stdin)\n");
		return 2;
	}
	struct cli_secret s = { 0 };
	int rc = from_stdin ? secrets_prepare_stdin(c, &s) : 0;
	if (rc) {
		secrets_release(&s);
		return rc;
	}
	PGconn *pg = cli_db(c, 1);
	if (!pg) {
		secrets_release(&s);
		return 1;
	}
	rc = 1;
	const char *params[] = { name, from_stdin ? "stored:" : ref };
	PGresult *r = NULL;
	if (pg_cmd(pg, "begin", "BEGIN", 0, NULL) < 0)
		goto out;
	r = PQexecParams(pg, "UPDATE accounts SET secret_ref = $2, secret_changed_at = now() "
			     "WHERE name = $1 RETURNING id", 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "mailpipe: account '%s': secret not changed: %s", name, PQerrorMessage(pg));
		goto out;
	}
	if (PQntuples(r) == 0) {
		fprintf(stderr, "mailpipe: no account named '%s'\n", name);
		goto out;
	}
	const char *id = PQgetvalue(r, 0, 0);
	const char *idp[] = { id };
	/* A reference replaces the stored secret: no ciphertext outlives its use. */
	if (from_stdin ? secrets_store(pg, id, &s) < 0
		       : pg_cmd(pg, "drop stored secret",
				"DELETE FROM account_secrets WHERE account_id = $1::bigint", 1, idp) < 0)
		goto out;
	if (pg_cmd(pg, "commit", "COMMIT", 0, NULL) < 0)
		goto out;
	if (from_stdin)
		printf("account '%s': secret changed, stored encrypted (key %s)\n", name, s.key.id);
	else
		printf("account '%s': secret changed to %s\n", name, ref);
	rc = 0;
out:
	if (rc)
		PQclear(PQexec(pg, "ROLLBACK"));
	PQclear(r);
	secrets_release(&s);
	return rc;
}

/* Replaces the row of account_id sealed with old_nonce by sealed: a secret changed meanwhile
 * (`account secret`) is left alone. 1 replaced, 0 changed meanwhile, -1 failed. */
static int store_rotated(PGconn *pg, const char *account_id, const char *old_nonce,
			 const struct secretbox_sealed *sealed)
{
	char nonce[2 * SECRETBOX_NONCE_LEN + 1], tag[2 * SECRETBOX_TAG_LEN + 1];
	char *ct = malloc(2 * sealed->ctlen + 1);
	if (!ct)
		return -1;
	secretbox_hex(nonce, sealed->nonce, sizeof(sealed->nonce));
	secretbox_hex(tag, sealed->tag, sizeof(sealed->tag));
	secretbox_hex(ct, sealed->ct, sealed->ctlen);
	const char *params[] = { account_id, sealed->key_id, nonce, ct, tag, old_nonce };
	PGresult *r = pg_exec(pg, "rotate secret",
			      "UPDATE account_secrets SET key_id = $2, nonce = decode($3, 'hex'), "
			      " ciphertext = decode($4, 'hex'), tag = decode($5, 'hex'), rotated_at = now() "
			      "WHERE account_id = $1::bigint AND nonce = decode($6, 'hex')",
			      6, params);
	free(ct);
	int rc = r ? (int)strtol(PQcmdTuples(r), NULL, 10) : -1;
	PQclear(r);
	return rc;
}

/* Re-seals one row under cur; 1 rotated, 0 already under cur, -1 failed (one line said why). */
static int rotate_one(PGconn *pg, PGresult *r, int i, const struct secretbox_key *cur,
		      const struct secretbox_key *old, int nold)
{
	const char *id = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1);
	const char *key_id = PQgetvalue(r, i, 2);
	struct secretbox_sealed in = { 0 }, out = { 0 };
	unsigned char *nonce = NULL, *tag = NULL;
	size_t nn = 0, tn = 0;
	char aad[64], *clear = NULL;
	int rc = -1;

	if (!strcmp(key_id, cur->id))
		return 0;
	const struct secretbox_key *k = secretbox_key_find(old, nold, key_id);
	if (!k) {
		fprintf(stderr, "mailpipe: account '%s': stored secret is sealed with key %s, which "
				"MAILPIPE_SECRET_KEY_OLD does not hold; not rotated\n", name, key_id);
		return -1;
	}
	if (secretbox_unhex(PQgetvalue(r, i, 3), &nonce, &nn) < 0 ||
	    secretbox_unhex(PQgetvalue(r, i, 4), &in.ct, &in.ctlen) < 0 ||
	    secretbox_unhex(PQgetvalue(r, i, 5), &tag, &tn) < 0 || nn != SECRETBOX_NONCE_LEN ||
	    tn != SECRETBOX_TAG_LEN)
		goto out;
	memcpy(in.key_id, key_id, sizeof(in.key_id));
	memcpy(in.nonce, nonce, nn);
	memcpy(in.tag, tag, tn);
	secretbox_aad(aad, sizeof(aad), strtoll(id, NULL, 10));
	if (!(clear = secretbox_open(k, aad, &in)))
		goto out;
	if (secretbox_seal(cur, aad, clear, strlen(clear), &out) < 0)
		goto out;
	rc = store_rotated(pg, id, PQgetvalue(r, i, 3), &out);
out:
	if (rc < 0 && !clear)
		fprintf(stderr, "mailpipe: account '%s': stored secret does not open with key %s "
				"(altered, or moved from another account); not rotated\n", name, key_id);
	secretbox_free_secret(clear);
	secretbox_sealed_release(&in);
	secretbox_sealed_release(&out);
	free(nonce);
	free(tag);
	return rc;
}

/* secrets rotate: every stored secret re-sealed under MAILPIPE_SECRET_KEY, opened with the key
 * its id names from MAILPIPE_SECRET_KEY_OLD. Each row is its own step, so a rerun after a
 * failure finishes the rest and touches nothing already done. */
int cmd_secrets(struct cli *c, int argc, char **argv)
{
	struct secretbox_key cur, old[SECRETBOX_MAX_KEYS];
	char err[400];
	int rotated = 0, current = 0, failed = 0, rc;

	if (argc != 2 || strcmp(argv[1], "rotate")) {
		fprintf(stderr, "mailpipe: usage: secrets rotate (MAILPIPE_SECRET_KEY the new key, "
				"MAILPIPE_SECRET_KEY_OLD the old ones)\n");
		return 2;
	}
	if ((rc = load_current_key(c, &cur)))
		return rc;
	int nold = secretbox_keys_load(old, SECRETBOX_MAX_KEYS, "MAILPIPE_SECRET_KEY_OLD",
				       c->cfg.secret_key_old, err, sizeof(err));
	if (nold < 0) {
		fprintf(stderr, "mailpipe: %s\n", err);
		explicit_bzero(&cur, sizeof(cur));
		return 2;
	}
	PGconn *pg = cli_db(c, 1);
	PGresult *r = pg ? pg_exec(pg, "stored secrets",
				   "SELECT s.account_id, a.name, s.key_id, encode(s.nonce, 'hex'), "
				   " encode(s.ciphertext, 'hex'), encode(s.tag, 'hex') "
				   "FROM account_secrets s JOIN accounts a ON a.id = s.account_id "
				   "ORDER BY s.account_id", 0, NULL)
			 : NULL;
	rc = 1;
	if (!r)
		goto out;
	for (int i = 0; i < PQntuples(r); i++) {
		int one = rotate_one(pg, r, i, &cur, old, nold);
		rotated += one == 1;
		current += one == 0;
		failed += one < 0;
	}
	PQclear(r);
	printf("secrets rotate: %d re-encrypted under key %s, %d already under it, %d failed\n",
	       rotated, cur.id, current, failed);
	rc = failed ? 1 : 0;
out:
	explicit_bzero(&cur, sizeof(cur));
	explicit_bzero(old, sizeof(old));
	return rc;
}

/* mailpipe account add --from-env icloud|mailatlas: reads the variables the iCloud setup guide and
 * MailAtlas already use, so an account moves in without retyping. Fills only what the command
 * line left unset; the password or token is stored as its reference (env:VAR), never its value. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An environment variable, NULL when unset or empty. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static int missing(const char *var, const char *flag)
{
	fprintf(stderr, "mailpipe: --from-env: %s is not set (or pass %s)\n", var, flag);
	return 2;
}

static int bad(const char *var, const char *value, const char *want)
{
	fprintf(stderr, "mailpipe: --from-env: %s='%s' is not %s\n", var, value, want);
	return 2;
}

/* *dst = the variable's value when *dst is unset and the variable is set; numbers checked. */
static int take(const char **dst, const char *var, long max)
{
	const char *v = env(var);
	if (*dst || !v)
		return 0;
	if (max) {
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (errno || *end || n < 0 || n > max)
			return bad(var, v, "a number");
	}
	*dst = v;
	return 0;
}

/* Both setups write TLS as a boolean or as our words. "false" means no implicit TLS, and
 * mailpipe then insists on STARTTLS: a password never crosses the network in clear unless the
 * operator says --tls none. */
static int take_tls(const char **dst, const char *var)
{
	static const char *const yes[] = { "true", "1", "yes", "on", "ssl", "tls", "implicit" };
	static const char *const no[] = { "false", "0", "no", "off", "starttls" };
	const char *v = env(var);
	if (*dst || !v)
		return 0;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!strcasecmp(v, yes[i]))
			return *dst = "implicit", 0;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (!strcasecmp(v, no[i]))
			return *dst = "starttls", 0;
	if (!strcasecmp(v, "none"))
		return *dst = "none", 0;
	return bad(var, v, "true, false, implicit, starttls or none");
}

/* The secret as a reference to var, after checking var is set here: an account added from a
 * half-set environment would only fail later, in a fetcher, with a less helpful message. */
static int take_secret(const char **dst, const char *var, const char *ref)
{
	if (*dst)
		return 0;
	if (!env(var))
		return missing(var, "--secret");
	*dst = ref;
	return 0;
}

static int icloud(struct account_spec *s)
{
	int rc = 0;
	if (!s->provider)
		s->provider = "icloud";
	rc = rc ? rc : take(&s->host, "ICLOUD_IMAP_HOST", 0);
	rc = rc ? rc : take(&s->port, "ICLOUD_IMAP_PORT", 65535);
	rc = rc ? rc : take_tls(&s->tls, "ICLOUD_IMAP_TLS");
	rc = rc ? rc : take(&s->username, "ICLOUD_IMAP_USER", 0);
	if (!rc && !s->username)
		return missing("ICLOUD_IMAP_USER", "--username");
	rc = rc ? rc : take_secret(&s->secret, "ICLOUD_IMAP_PASS", "env:ICLOUD_IMAP_PASS");
	rc = rc ? rc : take(&s->email, "ICLOUD_FROM_EMAIL", 0);
	rc = rc ? rc : take(&s->interval, "ICLOUD_SYNC_INTERVAL", 86400 * 30);
	return rc;
}

/* MailAtlas infers the mechanism from the credential given: an access token means XOAUTH2. */
static int mailatlas(struct account_spec *s)
{
	int rc = 0;
	rc = rc ? rc : take(&s->host, "MAILATLAS_IMAP_HOST", 0);
	if (!rc && !s->host)
		return missing("MAILATLAS_IMAP_HOST", "--host");
	rc = rc ? rc : take(&s->port, "MAILATLAS_IMAP_PORT", 65535);
	rc = rc ? rc : take_tls(&s->tls, "MAILATLAS_IMAP_TLS");
	rc = rc ? rc : take(&s->username, "MAILATLAS_IMAP_USERNAME", 0);
	if (!rc && !s->username)
		return missing("MAILATLAS_IMAP_USERNAME", "--username");
	if (rc || s->secret)
		return rc;
	int token = s->auth ? !strcmp(s->auth, "xoauth2") : env("MAILATLAS_IMAP_ACCESS_TOKEN") != NULL;
	if (!s->auth && !token && !env("MAILATLAS_IMAP_PASSWORD"))
		return missing("MAILATLAS_IMAP_PASSWORD or MAILATLAS_IMAP_ACCESS_TOKEN", "--secret");
	if (!s->auth)
		s->auth = token ? "xoauth2" : "password";
	return token ? take_secret(&s->secret, "MAILATLAS_IMAP_ACCESS_TOKEN",
				   "env:MAILATLAS_IMAP_ACCESS_TOKEN")
		     : take_secret(&s->secret, "MAILATLAS_IMAP_PASSWORD", "env:MAILATLAS_IMAP_PASSWORD");
}

int from_env_fill(const char *kind, struct account_spec *s)
{
	if (!strcmp(kind, "icloud"))
		return icloud(s);
	if (!strcmp(kind, "mailatlas"))
		return mailatlas(s);
	fprintf(stderr, "mailpipe: --from-env takes icloud or mailatlas (got '%s')\n", kind);
	return 2;
}

/* Secret references (env:VAR, file:PATH) resolved in the fetcher's own environment: the
 * secret itself never reaches Redis, logs or the database (invariant 7). Called by fetch.c and
 * idle.c when they log in. */
#include "fetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fetch_resolve_secret(const char *ref, char *err, size_t errlen)
{
	if (strncmp(ref, "env:", 4) == 0) {
		const char *v = getenv(ref + 4);
		if (!v || !*v) {
			snprintf(err, errlen, "secret %s is not set in the fetcher's environment", ref);
			return NULL;
		}
		return strdup(v);
	}
	if (strncmp(ref, "file:", 5) == 0) {
		FILE *fp = fopen(ref + 5, "r");
		char buf[8192];
		if (!fp) {
			snprintf(err, errlen, "secret %s cannot be read: %s", ref, strerror(errno));
			return NULL;
		}
		size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[n] = 0;
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
			buf[--n] = 0;
		if (!n) {
			snprintf(err, errlen, "secret %s is empty", ref);
			return NULL;
		}
		return strdup(buf);
	}
	snprintf(err, errlen, "secret reference '%.40s' is not env:VAR or file:PATH", ref);
	return NULL;
}

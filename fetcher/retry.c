/* Server refusals and hints -> whether and when to try again. See retry.h. */
#include "retry.h"
#include "account_state.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5530 codes (and widely used extensions) that promise a later attempt may succeed. */
static const char *const transient_codes[] = {
	"THROTTLED", "UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG", "OVERQUOTA", "TIMEOUT",
};
/* Codes after which retrying with the same secret cannot help. */
static const char *const permanent_codes[] = {
	"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED", "PRIVACYREQUIRED",
	"CONTACTADMIN", "NOPERM",
};

static int word_is(const char *code, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(code, word, len) == 0;
}

enum retry_kind retry_classify(const char *code)
{
	if (!code)
		return RETRY_OTHER;
	size_t len = strcspn(code, " ]");
	for (size_t i = 0; i < sizeof(transient_codes) / sizeof(transient_codes[0]); i++)
		if (word_is(code, len, transient_codes[i]))
			return RETRY_TRANSIENT;
	for (size_t i = 0; i < sizeof(permanent_codes) / sizeof(permanent_codes[0]); i++)
		if (word_is(code, len, permanent_codes[i]))
			return RETRY_PERMANENT;
	return RETRY_OTHER;
}

enum retry_kind retry_classify_text(const char *text)
{
	const char *open = text ? strchr(text, '[') : NULL;
	enum retry_kind k = open ? retry_classify(open + 1) : RETRY_OTHER;
	/* Gmail says "[ALERT] Too many simultaneous connections" and others say "try again"
	 * without a code: their words are the only sign that a later attempt may pass. */
	if (k == RETRY_OTHER && text &&
	    (strcasestr(text, "too many") || strcasestr(text, "try again")))
		k = RETRY_TRANSIENT;
	return k;
}

/* The number after the first occurrence of phrase (case-insensitive), skipping ": " and
 * spaces; its unit word follows. 0 when absent. */
static int64_t number_after(const char *text, const char *phrase, const char **unit)
{
	const char *p = strcasestr(text, phrase);
	if (!p)
		return 0;
	p += strlen(phrase);
	while (*p == ' ' || *p == ':' || *p == '=')
		p++;
	if (!isdigit((unsigned char)*p))
		return 0;
	char *end;
	long long v = strtoll(p, &end, 10);
	while (*end == ' ')
		end++;
	*unit = end;
	return v > 0 ? v : 0;
}

static int64_t to_ms(int64_t v, const char *unit, int64_t default_ms)
{
	if (strncasecmp(unit, "ms", 2) == 0 || strncasecmp(unit, "milli", 5) == 0)
		return v;
	if (strncasecmp(unit, "min", 3) == 0)
		return v * 60000;
	if (strncasecmp(unit, "s", 1) == 0)
		return v * 1000;
	return v * default_ms;
}

int64_t retry_hint_ms(const char *text)
{
	static const struct {
		const char *phrase;
		int64_t unit_ms; /* when no unit word follows */
	} hints[] = {
		{ "Suggested Backoff Time", 1 },
		{ "try again in", 1000 },
		{ "retry after", 1000 },
		{ "retry in", 1000 },
	};
	if (!text)
		return 0;
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		const char *unit = NULL;
		int64_t v = number_after(text, hints[i].phrase, &unit);
		if (v > 0) {
			int64_t ms = to_ms(v > 86400000 ? 86400000 : v, unit, hints[i].unit_ms);
			return ms > 86400000 ? 86400000 : ms;
		}
	}
	return 0;
}

int64_t retry_delay_ms(unsigned attempt, int64_t base_ms, int64_t max_ms, int64_t hint_ms,
		       uint32_t rnd)
{
	/* The same doubling with equal jitter as an account's backoff between runs: half of the
	 * delay fixed and half random, so many clients throttled at once spread out but none
	 * comes back sooner than half the backoff. */
	return account_backoff_ms(attempt, base_ms, max_ms, hint_ms, rnd);
}

/* How the fetcher reads a server's refusals and hints: which response codes mean "try again
 * later" and which "retrying cannot help", the backoff a server suggests in its own words, and
 * the jittered delay before the next attempt. Pure functions; fetch.c and session.c call them. */
#ifndef MP_RETRY_H
#define MP_RETRY_H

#include <stdint.h>

enum retry_kind {
	RETRY_PERMANENT,	/* credentials or authorization refused: do not retry */
	RETRY_TRANSIENT,	/* the server is busy, throttling or briefly unavailable */
	RETRY_OTHER,		/* no code that says either way */
};

/* Classifies an RFC 5530 response code, as it appears inside [...] (its first word counts:
 * "THROTTLED", "UNAVAILABLE Try later"); NULL or "" gives RETRY_OTHER. */
enum retry_kind retry_classify(const char *code);

/* Finds the first [CODE] in a line of server text and classifies it as retry_classify does. */
enum retry_kind retry_classify_text(const char *text);

/* The wait a server asks for in its own words, in milliseconds, or 0 when it names none.
 * Understands Office 365's "Suggested Backoff Time: 92415 milliseconds" and the common
 * "try again in N seconds|minutes" / "retry after N seconds". Caps at one day. */
int64_t retry_hint_ms(const char *text);

/* The delay before attempt number attempt (1 = the first retry): exponential from base_ms,
 * capped at max_ms, with "equal jitter" (half fixed, half random from rnd), and never less
 * than hint_ms. rnd is any 32-bit random number (the caller's PRNG, so tests are exact). */
int64_t retry_delay_ms(unsigned attempt, int64_t base_ms, int64_t max_ms, int64_t hint_ms,
		       uint32_t rnd);

#endif

/* Owns body_clean: body_text as people read it in a list, a search hit or an assistant (no
 * quotes, forward headers, signatures, footers, link lines, invisible characters). No MIME, no
 * charsets, no I/O. Called by the parser stage's handler, test_clean.c and fuzz_clean.c. */
#ifndef MP_CLEAN_H
#define MP_CLEAN_H

#include <stddef.h>

/* Stored next to body_clean so that rows cleaned by an older cleaner can be found and redone:
 * bump whenever the output for some input changes. */
#define CLEANER_VERSION 1

/* Each step is an account option (clean_step_from_name); all are on by default. A step that is
 * off leaves what it would have removed in place. */
enum clean_step {
	CLEAN_FORWARD_HEADERS = 1 << 0, /* forward separators and header blocks; bodies are kept */
	CLEAN_QUOTES = 1 << 1,          /* quoted replies: attributions, reply headers, > blocks */
	CLEAN_SIGNATURE = 1 << 2,       /* "-- " and below, "Sent from my ...", contact blocks */
	CLEAN_FOOTERS = 1 << 3,         /* list, marketing and confidentiality boilerplate */
	CLEAN_LINK_LINES = 1 << 4,      /* lines that are only a URL, <URL>, [image: ...] */
	CLEAN_INVISIBLE = 1 << 5,       /* zero-width, bidi, soft hyphen, controls; NBSP -> space */
	CLEAN_WHITESPACE = 1 << 6,      /* LF endings, no trailing blanks, at most one empty line */
	CLEAN_ALL = 0x7f
};

/* Cleans text[0..len) (borrowed for the call; need not be NUL-terminated; may hold any bytes)
 * and returns a new NUL-terminated string that the caller frees with free(), or NULL only when
 * memory runs out. The result is always valid UTF-8 without NUL bytes, and never longer than
 * 2 * len bytes: NULs are dropped and a byte that is not part of valid UTF-8 is read as
 * Latin-1 (0xA0-0xFF) or as its Windows-1252 ASCII look-alike (0x80-0x9F: quotes, dashes,
 * else '?'). Runs in time linear in len. Inputs of 1 GiB or more are only made valid UTF-8. */
char *clean_text(const char *text, size_t len, unsigned steps);

/* clean_text() with the message's Subject (borrowed; NULL or "" when unknown). Outlook writes a
 * reply and a forward identically ("From:/Sent:/To:/Subject:" under the new text), so only the
 * subject tells them apart: with a forward prefix ("Fwd:", "FW:", "WG:", "TR:", "RV:", "I:",
 * "Doorst:", ...) the first such block is a forward (header dropped, body kept); otherwise it
 * is a reply (cut) unless nothing precedes it. The parser passes the decoded Subject. */
char *clean_text_subject(const char *text, size_t len, unsigned steps, const char *subject);

/* Account option name ("forward_headers", "quotes", "signature", "footers", "link_lines",
 * "invisible", "whitespace") -> its step bit; 0 when unknown or NULL. */
unsigned clean_step_from_name(const char *name);

/* Step bit -> option name (a static string), NULL unless step is exactly one known bit. */
const char *clean_step_name(unsigned step);

#endif

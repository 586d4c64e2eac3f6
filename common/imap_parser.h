/* Incremental IMAP4rev1 response parser (server -> client): framing, tokens, literals, limits.
 * Does no I/O and knows no command semantics; the fetcher's session feeds it socket bytes and
 * interprets the responses. Fuzzed by tests/fuzz/fuzz_imap_parser.c. */
#ifndef MP_IMAP_PARSER_H
#define MP_IMAP_PARSER_H

#include <stddef.h>
#include <stdint.h>

/* Hard limits; exceeding one fails the stream with -E2BIG as soon as the byte that crosses it
 * is scanned, so an announced {4294967296} or an endless line is never buffered. */
struct imap_limits {
	size_t max_line;     /* bytes of non-literal text in one line, default 64 KiB */
	size_t max_literal;  /* bytes of one literal, default 64 MiB */
	unsigned max_depth;  /* list nesting, default 32; also bounds the builder's recursion */
	size_t max_tokens;   /* values per response, default 1,000,000 */
	size_t max_response; /* bytes of one whole response, literals included, default 128 MiB;
			      * 0 = no limit beyond the others. Raise it with max_literal. */
};

void imap_limits_default(struct imap_limits *lim);

enum imap_resp_kind { IMAP_RESP_UNTAGGED, IMAP_RESP_TAGGED, IMAP_RESP_CONTINUE };
enum imap_status {
	IMAP_ST_NONE,
	IMAP_ST_OK,
	IMAP_ST_NO,
	IMAP_ST_BAD,
	IMAP_ST_BYE,
	IMAP_ST_PREAUTH
};
enum imap_vtype {
	IMAP_V_ATOM,
	IMAP_V_STRING, /* quoted, unescaped */
	IMAP_V_LITERAL,
	IMAP_V_NIL,
	IMAP_V_LIST
};

struct imap_value {
	enum imap_vtype type;
	/* Atom/string/literal bytes, always NUL-terminated after len (literals may contain NULs).
	 * NULL with len 0 for NIL and lists. Atoms keep their case and any [section]<partial>. */
	const char *s;
	size_t len;
	struct imap_value *items; /* IMAP_V_LIST: n items, else NULL/0 */
	size_t n;
};

struct imap_response {
	enum imap_resp_kind kind;
	const char *tag;	 /* tagged responses: the tag, else NULL */
	enum imap_status status; /* OK/NO/BAD/BYE/PREAUTH, tagged or untagged; NONE for data */
	const char *code;	 /* status responses: the text inside [...] as sent, e.g.
				  * "PERMANENTFLAGS (\\Seen \\*)", NULL if none */
	const char *text;	 /* status responses and continuations: the rest of the line, ""
				  * if none; NULL for data responses */
	int has_number;
	uint32_t number;	 /* "* 12 EXISTS" / "* 3 FETCH (...)" */
	const char *name;	 /* data responses: "EXISTS", "FETCH", ... as sent, else NULL */
	struct imap_value *args; /* data responses: the values after name (FETCH: one list) */
	size_t nargs;
};

/* Syntax accepted, beyond RFC 3501's letter, because real servers send it:
 * - bare LF ends a line (also after a literal marker); CR must be followed by LF;
 * - empty lines between responses are skipped (never a valid response, seen after literals);
 * - lowercase status words and NIL; 8-bit bytes in atoms, quoted strings and text;
 * - literals {n}, {n+} and literal8 ~{n} wherever a value may appear in a data response;
 * - an atom's [...] part may hold spaces, parens and quoted strings: BODY[HEADER.FIELDS (A B)];
 * - lists may abut: THREAD (2)(3 6); "\x" in a quoted string stands for x;
 * - status/continuation text is free text to end of line (no literals, unbalanced quotes and
 *   brackets allowed); if its [code] is not closed on the line, the whole rest is text;
 * - a line that starts with "[" is read as "* OK [" (Exchange's bare "[COPYUID ...]" lines);
 * - one line end inside a list, right after a literal and optional spaces, is read as a space
 *   (servers that count a literal without its final CRLF).
 * NUL and control bytes outside literals are errors, as is a tagged response that is not a
 * status response. */

/* Returns NULL on allocation failure. lim NULL = defaults; lim is copied. */
struct imap_parser *imap_parser_new(const struct imap_limits *lim);
void imap_parser_free(struct imap_parser *p);

/* Copies len bytes; 0 or -ENOMEM. Ends the borrow of the last response returned by next().
 * After next() failed the bytes are discarded and 0 is returned. */
int imap_parser_feed(struct imap_parser *p, const void *buf, size_t len);

/* 1 = *out is a complete response, borrowed until the next imap_parser_next/feed/free call;
 * 0 = need more bytes (*out = NULL); <0 = protocol error (-EPROTO), limit exceeded (-E2BIG) or
 * -ENOMEM: the stream is unusable after this, every later call returns the same error, and
 * imap_parser_error(p) gives a one-line reason naming what and the offending bytes (escaped,
 * truncated). Work done is linear in the bytes fed: scanning resumes where it stopped. */
int imap_parser_next(struct imap_parser *p, struct imap_response **out);

/* "" until next() has failed; borrowed until imap_parser_free. */
const char *imap_parser_error(const struct imap_parser *p);

/* Bytes fed that are not part of a response returned so far: a partial response or bytes not
 * yet scanned. 0 after draining means the stream ended on a response boundary. */
size_t imap_parser_buffered(const struct imap_parser *p);

/* Bytes of heap the parser holds now (buffer, tokens, values); for tests and metrics. */
size_t imap_parser_memory(const struct imap_parser *p);

/* For FETCH/STATUS-style lists of key value pairs: the value following key (case-insensitive
 * compare against atoms and strings at even positions, e.g. "UID", "FLAGS", "BODY[]",
 * "RFC822.SIZE", "INTERNALDATE", "MODSEQ"), borrowed from list, or NULL. */
const struct imap_value *imap_list_get(const struct imap_value *list, const char *key);

/* 1 if v is an atom, string or literal equal to atom ignoring ASCII case (or v is NIL and atom
 * is "NIL"), else 0. NULL v gives 0. */
int imap_value_is(const struct imap_value *v, const char *atom);

/* An atom or string of 1-20 decimal digits that fits: 0 or -EINVAL. */
int imap_value_u64(const struct imap_value *v, uint64_t *out);

/* Status responses: the number after key in the response code, e.g. key "UIDVALIDITY" for
 * "[UIDVALIDITY 3857529045]" (case-insensitive). 0, -ENOENT if the code is absent or has
 * another key, -EINVAL if no number follows. */
int imap_response_code_u64(const struct imap_response *r, const char *key, uint64_t *out);

#endif

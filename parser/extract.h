/* Owns turning one raw RFC 5322 message into the JSON record the writer stores: ids, addresses,
 * dates, UTF-8 bodies, the attachment list. Does not clean quoted text, thread, or do any I/O.
 * Called by the parser stage's handler, tests/unit/test_extract.c and tests/fuzz/fuzz_extract.c. */
#ifndef MP_EXTRACT_H
#define MP_EXTRACT_H

#include <stddef.h>

#include <jansson.h>

struct extract_limits {
	size_t max_parts;   /* MIME parts walked (containers, leaves, embedded messages); default 1000 */
	unsigned max_depth; /* nesting below the top-level part; default 32 */
	size_t max_text;    /* bytes of body_text and of body_html kept, each; default 4 MiB */
	int always_warn;    /* parse every message with GMime's warnings on (tests; default 0) */
};

void extract_limits_default(struct extract_limits *lim);

/* Call once per process before use and before any thread starts: initialises GMime and opens
 * the iconv descriptors of the common charsets, which stay open for the life of the process.
 * Calling it again does nothing. */
void extract_global_init(void);

/* Parses raw[0..len) (borrowed for the duration of the call only; need not be NUL-terminated)
 * and returns a new JSON object, which the caller owns and releases with json_decref().
 * lim may be NULL for the defaults. Never fails for bad mail: whatever could be read is filled
 * and "parse_error" says what was wrong. Returns NULL only when memory runs out.
 *
 * Every key is always present; every string is valid UTF-8 without NUL bytes:
 *   content_sha256        lowercase hex SHA-256 of raw
 *   message_id            without <>; when the message has none, the first 32 hex digits of
 *                         content_sha256 followed by "@mailpipe.invalid" (stable per content)
 *   message_id_synthetic  true when message_id was made up as above
 *   in_reply_to           first message-id of In-Reply-To without <>, or null
 *   references            array of message-ids in header order (possibly empty)
 *   subject               RFC 2047 decoded, or null
 *   sent_at               Date as "YYYY-MM-DDTHH:MM:SSZ" (UTC), or null if missing/unparseable
 *   from                  {name, email} of the first From mailbox, or null
 *   to, cc, bcc, reply_to arrays of {name, email}; groups flattened; name null when absent
 *   list_id               List-Id without <>, or null
 *   body_text, body_html  the first text/plain and text/html parts that are not attachments,
 *                         outside embedded messages, as UTF-8; body_text falls back to a
 *                         rendering of body_html when text/plain is missing or blank, and to
 *                         the raw text of input without headers or parts; null when absent
 *   snippet               first 200 code points of body_text, whitespace collapsed, or null
 *   attachments           array of {filename, content_type, size, content_id, disposition}:
 *                         every other leaf part of the message, message/rfc822 parts, and, inside
 *                         embedded messages, the parts with a filename or disposition attachment
 *   parse_error           null, or one line naming what was wrong ("; " between problems).
 *                         Input past a hard limit (parts, depth, header items, max_text) is
 *                         skipped and named here. */
json_t *extract_message(const char *raw, size_t len, const struct extract_limits *lim);

/* Lowercase hex SHA-256 of len bytes; caller frees with g_free. */
char *extract_sha256_hex(const void *raw, size_t len);

#endif

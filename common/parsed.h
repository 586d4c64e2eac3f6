/* A parsed message on {mp}:parsed: `type` "message", `meta` (the fetcher's JSON), `msg` (the
 * parser's JSON), `raw_id` (the id of its {mp}:raw entry, which holds the message's bytes),
 * and each large body as a field of its own.
 * The raw bytes cross Redis once: the parser only acknowledges the raw entry (XACK), and the
 * writer reads the bytes of a batch by id (one pipelined XRANGE each) and deletes the raw
 * entries (XDEL) after COMMIT, before it acknowledges the parsed ones. A record from an older
 * parser that carries `raw` itself is stored from that field.
 * The bodies travel outside `msg` because escaping them into JSON in the parser and
 * unescaping them in the writer cost about a tenth of the pipeline's CPU (make bench's CPU
 * table); as stream fields they are plain bytes, copied once each way. A record from an older
 * parser that still has them inside `msg` is read the same. */
#ifndef MAILPIPE_PARSED_H
#define MAILPIPE_PARSED_H

enum { PARSED_BODY_FIELDS = 3 };
static const char *const parsed_body_fields[PARSED_BODY_FIELDS] = { "body_text", "body_html",
								  "body_clean" };

#endif

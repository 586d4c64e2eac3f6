/* What the parser adds to extract_message's record beyond MIME: the cleaned body and its
 * snippet (clean.c), threading keys (base subject, parent chain, X-GM-THRID), contacts and
 * direction. Needs the account's view (own address, cleaning options), which the fetcher puts
 * in each raw record's meta. Called by consume.c, the parser bench and tests. */
#ifndef MP_ENRICH_H
#define MP_ENRICH_H

#include <jansson.h>

/* Adds to msg (borrowed, modified in place): body_clean, cleaner_version, snippet (from the
 * clean text), base_subject, is_reply, thread_parent, thread_refs, gm_thrid, contacts
 * ([{email, name, roles[]}], one per address, case-insensitive), direction
 * ("incoming"/"outgoing"). meta (borrowed, may be NULL) gives account_email (string or array)
 * and clean_off (names of cleaning steps the account turned off). 0 or -ENOMEM. */
int enrich_message(json_t *msg, json_t *meta);

/* First max code points of text with whitespace runs collapsed to one space and trimmed;
 * malloc'd, NULL when text is NULL. */
char *enrich_snippet(const char *text, size_t max);

#endif

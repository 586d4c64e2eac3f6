/* Stable object ids (RFC 8474 OBJECTID: EMAILID, MAILBOXID; Gmail's X-GM-MSGID): a message
 * that a move, a copy or a UIDVALIDITY change gave a new UID is linked to its stored row
 * without downloading its body again, and a folder renamed on the server keeps its row.
 * Owns the id lookup and the `link` records; not the download of what is not linked
 * (fetch.c) nor the writer's side (writer/link.c). Called by fetch.c. */
#ifndef MP_OBJECTID_H
#define MP_OBJECTID_H

#include "job.h"

/* Decides for this job which FETCH item names a message (j->oid_item; quirks_object_id). */
void objectid_begin(struct job *j);
void objectid_release(struct job *j);

/* The Redis hash of an account's committed messages: server id -> messages.id (the writer
 * keeps it, writer/link.c). */
void objectid_key(char *buf, size_t size, const struct mp_config *cfg, long long account_id);

/* The id in a FETCH answer's item (EMAILID (M1a2b) or X-GM-MSGID 1278455344230334865) into
 * buf; 0, or -1 when absent or not an id (RFC 8474: 1-255 letters, digits, '_' or '-'). */
int objectid_value(const struct imap_value *v, char *buf, size_t size);

/* The new UIDs of todo whose id names a stored message: a `link` record each instead of a
 * download; they leave todo and join j->linked. 0, or -EIO/-ENOMEM with j->error set. A server
 * that refuses the id FETCH costs nothing but the downloads. */
int objectid_link(struct job *j, struct uidset *todo);

/* A FETCH answer without a body: 1 when it is the answer of objectid_link's id FETCH. */
int objectid_on_fetch(struct job *j, uint32_t uid, const struct imap_value *fetch);

/* An untagged OK with a response code: keeps "[MAILBOXID (id)]" in j->mailbox_id. */
void objectid_on_code(struct job *j, const struct imap_response *r);

/* A list job, after LIST: when a stored folder with a MAILBOXID is no longer listed and new
 * names are, EXAMINEs the new ones for their MAILBOXID (set as "mailbox_id" on their entry in
 * j->folders) so that the writer can tell a rename. 0, or -EIO. */
int objectid_list(struct job *j);

#endif

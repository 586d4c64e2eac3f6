/* One sync or list job of the fetcher, shared by the files that run its parts: fetch.c (the
 * job's life, new messages), mirror.c (server counts, flags and expunges of the messages
 * already stored). Not a public interface: only fetcher/ includes it. */
#ifndef MP_JOB_H
#define MP_JOB_H

#include "fetch.h"
#include "imap_parser.h"
#include "session.h"
#include "uidset.h"

#include <stdint.h>
#include <time.h>

/* What the server says of a folder, and what the mirror learned of its old messages. */
struct mirror_state {
	/* STATUS (MESSAGES UNSEEN UIDNEXT UIDVALIDITY [HIGHESTMODSEQ]); have_status = 0 when the
	 * server refused it */
	int have_status;
	uint64_t messages, unseen, uidnext, uidvalidity, modseq;
	/* the folder as stored, from the job */
	uint64_t stored_messages, stored_unseen, stored_uidnext, stored_modseq, stored_count;
	int flags_due;		/* a full flag scan is due (no CONDSTORE) */
	int flag_scanned;	/* this job scanned every old UID's flags */
	int collecting;		/* FETCH answers now are flag updates */
	int full_scan;		/* ... of every old UID: their UIDs are the present set */
	json_t *updates;	/* [[uid, [flags], modseq], ...] not yet emitted */
	struct uidset present;	/* old UIDs the server still has */
	int qresync;		/* EXAMINE (QRESYNC ...) answered: flags and vanished are known */
	struct uidset gone;	/* old UIDs the server reported VANISHED */
	size_t flag_updates, vanished; /* counts, for the log */
};

struct job {
	struct fetcher *f;
	json_t *json;
	struct session *s;
	const char *type, *account, *folder, *wire_name, *window_start;
	long long run_id, account_id, folder_id;
	uint64_t exp_uidvalidity, last_uid;

	/* EXAMINE results */
	uint64_t uidvalidity, uidnext, exists, highest_modseq;
	int conn_reused;	/* the session is a kept connection, whose view may lag (fetch.c) */
	int view_stale;		/* its STATUS and EXAMINE disagreed on UIDVALIDITY: log in again */
	int condstore;		/* the server offers CONDSTORE and the account allows it */
	int qresync;		/* ... and QRESYNC (quirks_use_qresync) */

	/* the mirror of UIDs at or below the cursor (mirror.c) */
	struct mirror_state mirror;
	struct uidset search;	/* UIDs the server has above the cursor */
	struct uidset *search_out; /* where SEARCH answers go when not into search */
	struct uidset stored;	/* UIDs above the cursor already stored (the job says which) */
	struct uidset missing;	/* listed by the server, asked for twice, never delivered */
	struct uidset fetched;	/* UIDs whose raw entry Redis acknowledged; kept across retries */
	struct uidset appended;	/* XADDs sent, replies not yet read */
	size_t unchecked_bytes, unchecked_entries; /* appended since the budget was last checked */
	int budget_checked;	/* the budget was looked at once in this job (before its first message) */
	struct uidset oversize;	/* larger than the literal limit: only their header is fetched */
	int probing;		/* answers are the RFC822.SIZE probe */

	/* the command being waited for (sequential commands) */
	unsigned wait_tag;
	int wait_done;
	enum imap_status wait_status;
	char wait_text[256];
	int wait_transient;	/* the refusal's code says a later attempt may pass */

	/* pipelined UID FETCH */
	unsigned fetch_tags[64];
	size_t inflight;
	int fetch_failed;
	int fetch_completed;
	char fetch_error[256];

	/* first-sync window and backfill */
	int window_used;	/* this sync searched SINCE the window's start */
	uint64_t window_low;	/* lowest UID in the window: older mail is below it */
	uint64_t backfill_next;	/* backfill job: UIDs below this remain (0 = none) */
	int backfill_stale;	/* backfill job: the folder's UIDVALIDITY changed meanwhile */
	char lock_key[160];

	json_t *folders;	/* list_folders result */
	int redis_failed;
	int64_t retry_after_ms;	/* the server asked for a wait longer than we wait inline */
	time_t last_refresh;
	char error[600];

	/* stable ids (objectid.c) */
	const char *oid_item;	/* FETCH item of a message's id ("EMAILID"), NULL when not offered */
	json_t *oid_seen;	/* while asking ids: [uid, id, [flags], modseq] of each answer */
	struct uidset linked;	/* UIDs linked to stored messages by an acknowledged `link` record */
	char mailbox_id[256];	/* the last EXAMINE's [MAILBOXID (...)], "" when none */
	char fetch_items[200];	/* what a UID FETCH of whole messages asks for */
};

/* jobredis.c: the job's Redis side. */
/* Reads the replies of pipelined raw XADDs: their UIDs count as fetched. */
void job_collect(struct job *j);
/* Keeps the folder lock and the job's pending entry fresh (force: now). */
void job_refresh_claims(struct job *j, int force);
/* Pauses while {mp}:raw is over its budget of entries or bytes (invariant 5). */
void job_wait_for_budget(struct job *j);
/* Appends one message's raw entry (XADD pipelined; job_collect reads the reply). */
void job_emit_raw(struct job *j, uint32_t uid, const struct imap_value *fetch);
/* The folder's lock in this fetcher's name (ours already counts): 0, or -EBUSY. */
int job_lock_folder(struct job *j);
void job_unlock_folder(struct job *j);

/* Sends command and waits for its completion. 0 on OK; -EIO when the connection failed;
 * -EREMOTEIO when the server said NO/BAD (j->wait_text has its words). */
int job_command(struct job *j, const char *cmd);
/* Sends "<verb> <set><rest>" for a set of any length and waits for it, as job_command. */
int job_command_set(struct job *j, const char *verb, const struct uidset *set, const char *rest);
/* XADDs a control record of this job to {mp}:parsed; 0 or <0. rec is borrowed. */
int job_emit(struct job *j, const char *type, json_t *rec);
/* A new record with job_id, run_id and account_id; caller owns it. */
json_t *job_record(struct job *j);

/* records.c: the record that ends a job; error NULL when it succeeded. 0 or <0. */
int emit_cursor(struct job *j, const char *error);
int emit_folders(struct job *j, const char *error);
int emit_backfill(struct job *j, const char *error);

/* mirror.c */
/* A list job: LIST with every folder's STATUS (LIST-STATUS where offered), the answers kept
 * in j->folders; 0, -EIO or -EREMOTEIO (j->error set). */
int mirror_list(struct job *j);
void mirror_init(struct job *j);
void mirror_release(struct job *j);
/* Asks STATUS of the folder; 0, or -EIO when the connection failed (a refusal is not an
 * error: have_status stays 0). */
int mirror_status(struct job *j);
/* 1 when STATUS shows nothing changed since the job's stored state: no SELECT needed. */
int mirror_unchanged(const struct job *j);
/* Flags and expunges of the UIDs at or below the cursor, after EXAMINE and the SEARCH above
 * the cursor: emits `flags` and `vanished` records. 0, -EIO, -EREMOTEIO or -ENOMEM. */
int mirror_old_uids(struct job *j);
/* An untagged VANISHED answer (QRESYNC): UIDs expunged. */
void mirror_on_vanished(struct job *j, const struct imap_response *r);
/* An untagged STATUS answer. */
void mirror_on_status(struct job *j, const struct imap_response *r);
/* A FETCH answer without a body: a flag update to keep while collecting. */
void mirror_on_fetch(struct job *j, uint32_t uid, const struct imap_value *fetch);
/* The job's cursor fields of the mirror: server counts and whether flags were scanned. */
void mirror_cursor_fields(struct job *j, json_t *rec);

#endif

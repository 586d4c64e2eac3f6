/* The writer stage: parsed records -> Postgres. store.c writes message batches (messages,
 * locations, conversations, run counters) in one transaction, its rows' search vectors computed
 * on a second connection (search.c); control.c applies `folders` and `cursor` records; main.c
 * reads the stream and acknowledges after COMMIT. */
#ifndef MP_WRITER_H
#define MP_WRITER_H

#include "stage.h"

#include <jansson.h>
#include <libpq-fe.h>

/* Where a batch's time goes, in the order it is spent: logged per batch at debug level
 * (writer_lap, writer_log_laps in main.c). WP_VECTORS is the part of WP_COPY spent waiting
 * for search vectors. */
enum writer_phase {
	WP_WAIT,	/* for the batch's entries in {mp}:parsed */
	WP_DECODE,	/* its JSON and body fields */
	WP_RAW,		/* the raw bytes from {mp}:raw */
	WP_LOCK,	/* BEGIN and the accounts' advisory locks */
	WP_FIND,	/* which contents are stored already */
	WP_THREAD,	/* conversations and row ids */
	WP_COPY,	/* the COPY of the new rows */
	WP_VECTORS,	/* ... of it, waiting for the second connection */
	WP_AHEAD,	/* reading and decoding the next batch (batch.c) */
	WP_LOCATIONS,
	WP_AFTER,	/* conversations' counts, contacts, ids, run counters */
	WP_COMMIT,
	WP_RELEASE,	/* acknowledging and deleting the entries */
	WP_DEFERRED,	/* between batches: cursors waiting for their messages, vector repair */
	WP_COUNT
};

struct writer {
	struct stage *st;
	double lap_at, lap_ms[WP_COUNT];
	PGconn *pg;
	PGconn *pg_search;	/* search.c's second connection, NULL when none */
	/* account id -> provider and own address, read once: they decide provider/direction. */
	struct account_info {
		long long id;
		char provider[32];
		char email[256];
		int subject_days;	/* subject grouping window, 0 = off (the default) */
	} accounts[64];
	size_t naccounts;
	/* milestone.c: accounts seen past their first 50 messages, and this batch's new messages
	 * per account (start: its first sync's start, Unix seconds, when the batch reaches 50). */
	long long milestone_done[256];
	size_t nmilestone_done;
	struct { long long account; int created; double start; } milestone_batch[64];
	size_t nmilestone_batch;
	json_t *changes;	/* entries for {mp}:changes not yet sent (changes.c) */
	/* Folders this writer committed messages of since main.c last retried the records that
	 * wait for them (a cursor waits for its job's messages); all_folders when too many. */
	long long committed_folders[64];
	size_t ncommitted_folders;
	int all_folders;
	long faults_done;	/* MAILPIPE_FAULT_WRITER_RETRY's, so far */
	long ahead_faults_done;	/* MAILPIPE_FAULT_WRITER_AHEAD's, so far */
	int in_copy;		/* reading ahead between a COPY's end and its answer */
	struct batch *next;	/* read ahead during the last batch (batch.c), NULL when none */
	struct search *ahead;	/* the batch being stored's vectors, started ahead; NULL when none */
	/* main.c: batches committed on this connection, and the count at which its plans are
	 * made again (a doubling schedule; 0 = not yet set) */
	long committed, replan_at;
	/* main.c: Redis refused the last batch's change notices (full), and how long the loop
	 * waits before the next batch (doubling to 2 s, 0 again once a batch goes through). */
	int refused;
	long refused_wait_ms;
	double replan_restarted;	/* when an account new to it last started the schedule again */
	int replan_pending;		/* ... and one came within the second after: restart when due */
};

/* One parsed message of a batch; pointers borrow from the stream reply. */
struct wmsg {
	const char *entry_id;
	json_t *meta;		/* owned */
	json_t *msg;		/* owned */
	const char *raw;	/* NULL: not known (see raw_missing) */
	size_t raw_len;
	const char *raw_id;	/* its {mp}:raw entry, deleted after COMMIT; NULL for old records */
	int raw_missing;	/* the raw entry was gone: stored without raw, or a duplicate */
};

/* Notes that a batch committed messages of folder (main.c retries what waits for them;
 * batch.c). */
void writer_note_folder(struct writer *w, long long folder);
/* An account this writer had not met: its plans are made again after the next 1st, 2nd, 4th
 * ... committed batch (main.c's replan_when_due), at most once a second (batch.c). */
void writer_replan_soon(struct writer *w);
/* Adds the time since the last lap to phase (batch.c). */
void writer_lap(struct writer *w, enum writer_phase phase);

/* batch.c: one read of {mp}:parsed, decoded. */
struct batch {
	redisReply *replies[64];
	size_t nreplies;
	struct rentry *e;	/* its entries (borrow from replies) */
	size_t n;
	struct wmsg *m;		/* its messages, sorted as store_messages stores them */
	size_t nm;
	redisReply **raws;	/* their raw bytes (rawfetch.c) */
	size_t nraws;
	int failed;		/* reading the raw bytes failed: store nothing, acknowledge nothing */
	struct search *sv;	/* read ahead: every message's vector, under way; else NULL */
	const struct wmsg **ptrs;	/* sv's messages */
};

/* Decodes the read (taking the replies, freed by batch_free) and reads the raw bytes it names;
 * lap: time it as WP_DECODE and WP_RAW. NULL when out of memory (replies freed). */
struct batch *batch_decode(struct writer *w, redisReply **replies, size_t nreplies, int lap);
void batch_free(struct batch *b);
/* Stops the vectors b had under way (b may be NULL): it computes its own when stored. */
void batch_drop_vectors(struct batch *b);
/* Once a batch's COPY is sent (before the server's answer): reads the next batch, without
 * waiting, into w->next and starts its vectors on the search connection
 * (MAILPIPE_WRITER_READ_AHEAD; only with that connection). */
void writer_read_ahead(struct writer *w);
/* Deletes the raw entries of committed (or dropped) messages, then acknowledges and deletes
 * their parsed entries, pipelined in that order: Redis runs them in order, so a crash between
 * leaves parsed entries whose raw is gone, never raw entries no parsed record names. The raw
 * entries are acknowledged for the parsers too: one a parser died holding after passing it
 * on would otherwise stay in its pending list (XAUTOCLAIM drops deleted entries one claim at
 * a time) and be parsed again for nothing. n = 0: the raw entries alone. 0 or -EIO. */
int writer_release(struct writer *w, const char **raw_ids, size_t nraw, const char **ids,
		   size_t n);

/* rawfetch.c: reads the bytes of the batch's messages that name a raw entry (raw_id, no raw)
 * in one pipelined round trip, setting raw/raw_len, or raw_missing when the entry is gone.
 * The bytes borrow from *replies (n of them, malloc'd), which the caller frees after storing.
 * 0, or -EIO (logged) with nothing to free. */
int rawfetch_batch(struct writer *w, struct wmsg *m, size_t n, redisReply ***replies,
		   size_t *nreplies);
/* 1 when id looks like a stream entry id (<ms>-<seq>). */
int rawfetch_valid_id(const char *id);

/* Writes the messages in one transaction, retried on deadlock. A message the database rejects
 * is logged (account, folder, uid, reason) and stored unparsed instead (raw, parse_error): its
 * msg is then replaced (the old one released). Only if that fails too is it skipped so that
 * the rest commits. 0 when committed
 * (the caller then acknowledges every entry), -ENOTCONN when committed but its change notices
 * could not reach Redis (nothing acknowledged: the entries come back, are found stored and
 * told again), other <0 when the database is unreachable. */
int store_messages(struct writer *w, struct wmsg *m, size_t n);
/* Sorts m as store_messages stores it (by account, then content hash); sorted input is left
 * as it is, so vectors started on it stay in step. */
void store_sort(struct wmsg *m, size_t n);

/* Prepares the statements store_messages uses; after every (re)connect. 0 or -EIO. */
int store_prepare(PGconn *pg);

/* Decides the conversations of a batch's n new messages (thread.c): account[i] and keys[i]
 * (a JSON array of the key strings: Message-ID, referenced ids, "gm:" thread id) in, conv[i]
 * out. Joins, merges and creates conversations and records the keys, as mp_thread_keys does
 * one message at a time. The caller holds the accounts' advisory locks in its transaction.
 * 0, or -EIO after logging. */
int thread_batch(PGconn *pg, const long long *account, json_t *const *keys, size_t n,
		 long long *conv);

/* Applies a `folders` record. 0 when committed. */
int control_folders(struct writer *w, json_t *rec);

/* Applies a `backfill` record (older mail below a first-sync window): 1 applied, 0 not yet
 * (some UID it lists is not committed), <0 database error. */
int control_backfill(struct writer *w, json_t *rec);

/* mirror.c: apply a `flags` / `vanished` record, each in its own transaction: 1 applied,
 * <0 database error. */
int mirror_flags(struct writer *w, json_t *rec);
int mirror_vanished(struct writer *w, json_t *rec);
/* Takes the account's advisory lock for the caller's transaction, the one every batch of
 * store.c holds: a message must not lose its last location while a batch adds one. 0/-EIO. */
int mirror_lock_account(struct writer *w, long long account_id);
/* Inside the caller's transaction (holding the account's advisory lock): deletes the given
 * messages (message_ids, a bigint[] literal; NULL = all of the account's) that have no
 * location left, or marks them deleted_at for keep_deleted accounts, and recomputes their
 * conversations. Returns how many, or <0. */
int mirror_drop_orphans(struct writer *w, long long account_id, const char *message_ids,
			json_t **deleted);

/* Inside the caller's transaction (holding the account's lock): messages that lost their last
 * location in run_id are deleted when the run ends rather than now; when the run is over
 * already, at once (mirror_drop_orphans's count, else 0). <0 on a database error. */
int mirror_orphans_later(struct writer *w, long long run_id, long long account_id,
			 const char *message_ids);
/* Inside the caller's transaction (holding the account's lock), once a run has ended: deletes
 * the account's messages without a location if an ended run deferred any and no run of the
 * account is still going. 0 or <0. */
int mirror_orphans_run_end(struct writer *w, long long account_id);

/* Applies a `cursor` record: 1 applied, 0 not yet (some UID it lists is not committed: keep
 * it pending and retry), <0 database error. */
int control_cursor(struct writer *w, json_t *rec);

/* milestone.c, called by store.c for mailpipe_first_messages_seconds: reset at a transaction's
 * start, note each new message, check before COMMIT (0 or -1: the transaction fails), report
 * once committed. */
void milestone_reset(struct writer *w);
void milestone_note(struct writer *w, long long account);
int milestone_check(struct writer *w);
void milestone_committed(struct writer *w);

/* Converts an IMAP INTERNALDATE ("17-Jul-1996 02:44:25 -0700") to ISO 8601 in buf; 0 or
 * -EINVAL. */
int writer_internaldate_iso(const char *in, char *buf, size_t size);

#endif

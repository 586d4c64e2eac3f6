/* What a job writes to Redis and holds there: its raw entries (under the stream's budget),
 * the run's progress counts, its claim on the job entry and its folder lock, and the control
 * records on {mp}:parsed. The IMAP side is fetch.c's. */
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "objectid.h"
#include "rstream.h"
#include "stage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The run's live progress (`mailpipe status`, `sync --wait` at a terminal): messages this
 * folder's job put on {mp}:raw, beside the parsers' <folder>:parsed. Appended to the XADDs'
 * pipeline, so it costs no round trip of its own; best effort (after a Redis failure the
 * messages are sent again and counted twice). Returns the commands appended. */
static size_t count_progress(struct job *j, size_t n)
{
	char key[160], field[40];
	if (!j->run_id || !j->folder_id)
		return 0;
	snprintf(key, sizeof(key), "%s%lld", j->f->cfg->key_progress_prefix, j->run_id);
	snprintf(field, sizeof(field), "%lld:fetched", j->folder_id);
	redisAppendCommand(j->f->rc, "HINCRBY %s %s %lld", key, field, (long long)n);
	redisAppendCommand(j->f->rc, "EXPIRE %s 86400", key);
	return 2;
}

void job_collect(struct job *j)
{
	if (j->appended.n == 0)
		return;
	size_t extra = count_progress(j, j->appended.n);
	if (rstream_collect(j->f->rc, j->appended.n + extra) < 0) {
		j->redis_failed = 1;
	} else {
		for (size_t i = 0; i < j->appended.n; i++)
			uidset_add(&j->fetched, j->appended.v[i]);
	}
	j->appended.n = 0;
}

/* Keeps the folder lock and the job's pending entry fresh, so that neither a second fetcher
 * nor XAUTOCLAIM takes a long job away from a live fetcher. */
void job_refresh_claims(struct job *j, int force)
{
	time_t now = time(NULL);
	long every_ms = j->f->cfg->lock_ttl_ms / 3;
	if (j->f->cfg->claim_idle_ms / 3 < every_ms)
		every_ms = j->f->cfg->claim_idle_ms / 3;
	if (!force && (now - j->last_refresh) * 1000 < every_ms)
		return;
	j->last_refresh = now;
	redisContext *rc = j->f->rc;
	if (j->folder_id) {
		redisReply *r = redisCommand(rc, "PEXPIRE %s %ld", j->lock_key, j->f->cfg->lock_ttl_ms);
		freeReplyObject(r);
	}
	if (j->f->entry_id) {
		redisReply *r = redisCommand(rc, "XCLAIM %s fetchers %s 0 %s JUSTID",
					     j->f->jobs_key ? j->f->jobs_key : j->f->cfg->key_jobs,
					     j->f->cfg->consumer, j->f->entry_id);
		freeReplyObject(r);
	}
}

/* Pauses while the raw stream is over its budget of entries or bytes (invariant 5): we
 * simply stop reading the socket, and TCP flow control holds the server back. */
void job_wait_for_budget(struct job *j)
{
	int waited = 0;
	j->unchecked_bytes = 0;
	j->unchecked_entries = 0;
	while (!*j->f->stopping) {
		long long n, bytes;
		int over = rstream_over_budget(j->f->rc, j->f->cfg->key_raw, j->f->cfg->raw_budget,
					       j->f->cfg->raw_budget_bytes, &n, &bytes);
		/* Or Redis half full (maxmemory) while the raw stream holds a 32nd of it, which the
		 * writers' deletions will free: a Redis filled by others' data is not waited for
		 * beyond that, or nothing would ever be fetched. */
		int full = 0;
		if (over == 0) {
			full = redis_memory_over(j->f->rc, 1, 2, &j->f->redis_limit);
			if (full > 0 && bytes <= j->f->redis_limit / 32)
				full = 0;
			over = full;
		}
		if (over < 0) {
			j->redis_failed = 1;
			return;
		}
		if (!over)
			break;
		if (!waited && full)
			log_info("account=%s folder=\"%s\" maxmemory=%lld msg=\"Redis is over half its "
				 "memory limit: fetching paused while the writers free it\"", j->account,
				 j->folder, j->f->redis_limit);
		else if (!waited)
			log_debug("account=%s folder=\"%s\" msg=\"raw stream at %lld entries, %lld bytes, "
				  "pausing\"", j->account, j->folder, n, bytes);
		waited = 1;
		job_refresh_claims(j, 0);
		usleep(50 * 1000);
	}
	if (waited)
		session_touch(j->s);
}

void job_emit_raw(struct job *j, uint32_t uid, const struct imap_value *fetch)
{
	/* Before a job's first message too: a small account's job ends before 256 messages,
	 * and a fetcher's lanes running many of them would never look (seen: 33,000 entries
	 * over a budget of 2,000 with a thousand small accounts). */
	if (!j->budget_checked) {
		j->budget_checked = 1;
		job_collect(j);
		job_wait_for_budget(j);
	}
	const struct imap_value *body = imap_list_get(fetch, "BODY[]");
	int header_only = body == NULL;
	if (header_only)
		body = imap_list_get(fetch, "BODY[HEADER]");
	const struct imap_value *flags = imap_list_get(fetch, "FLAGS");
	const struct imap_value *idate = imap_list_get(fetch, "INTERNALDATE");
	const struct imap_value *size = imap_list_get(fetch, "RFC822.SIZE");
	const struct imap_value *modseq = imap_list_get(fetch, "MODSEQ");
	uint64_t n = 0;

	json_t *meta = json_object();
	json_t *fl = json_array();
	if (flags && flags->type == IMAP_V_LIST)
		for (size_t i = 0; i < flags->n; i++)
			/* \Recent belongs to one session, not to the message (gone in IMAP4rev2). */
			if (flags->items[i].s && !imap_value_is(&flags->items[i], "\\Recent"))
				json_array_append_new(fl, json_stringn(flags->items[i].s, flags->items[i].len));
	json_object_set_new(meta, "run_id", json_integer(j->run_id));
	json_object_set_new(meta, "account_id", json_integer(j->account_id));
	json_object_set_new(meta, "folder_id", json_integer(j->folder_id));
	json_object_set_new(meta, "uidvalidity", json_integer((json_int_t)j->uidvalidity));
	json_object_set_new(meta, "uid", json_integer(uid));
	json_object_set_new(meta, "flags", fl);
	if (idate && idate->s)
		json_object_set_new(meta, "internaldate", json_stringn(idate->s, idate->len));
	if (size && imap_value_u64(size, &n) == 0)
		json_object_set_new(meta, "size", json_integer((json_int_t)n));
	if (header_only)
		json_object_set_new(meta, "truncated", json_true());
	/* The parser needs the account's view of a message: its own address (direction) and
	 * the cleaning steps the account turned off. */
	json_t *acc = json_object_get(j->json, "account");
	json_t *email = json_object_get(acc, "email"), *clean_off = json_object_get(acc, "clean_off");
	if (json_is_string(email))
		json_object_set(meta, "account_email", email);
	if (json_array_size(clean_off))
		json_object_set(meta, "clean_off", clean_off);
	const struct imap_value *thrid = imap_list_get(fetch, "X-GM-THRID");
	if (thrid && thrid->s)
		json_object_set_new(meta, "gm_thrid", json_stringn(thrid->s, thrid->len));
	if (modseq && modseq->type == IMAP_V_LIST && modseq->n == 1 &&
	    imap_value_u64(&modseq->items[0], &n) == 0)
		json_object_set_new(meta, "modseq", json_integer((json_int_t)n));
	/* The server's id of the content: the writer keeps it, so a later move links. */
	char oid[256];
	if (j->oid_item && objectid_value(imap_list_get(fetch, j->oid_item), oid, sizeof(oid)) == 0)
		json_object_set_new(meta, "email_id", json_string(oid));
	char *m = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	if (!m) {
		j->redis_failed = 1;
		return;
	}
	const char *names[] = { "meta", "raw" };
	const char *vals[] = { m, body->s ? body->s : "" };
	size_t lens[] = { strlen(m), body->s ? body->len : 0 };
	rstream_append_add(j->f->rc, j->f->cfg->key_raw, 2, names, vals, lens);
	metrics_add(MX_FETCHED_MESSAGES, 1);
	metrics_add(MX_FETCHED_BYTES, (int64_t)lens[1]);
	free(m);
	uidset_add(&j->appended, uid);
	j->unchecked_bytes += lens[1];
	j->unchecked_entries++;
	/* The budget is checked every 256 messages, or sooner when they are big: the stream can
	 * overshoot it by a sixteenth (plus one message), or a 64th of Redis's memory limit. */
	long long step = j->f->cfg->raw_budget_bytes / 16;
	if (j->f->redis_limit > 0 && j->f->redis_limit / 64 < step)
		step = j->f->redis_limit / 64;
	int check = j->unchecked_entries >= 256 || j->unchecked_bytes >= (size_t)step;
	if (j->appended.n >= 32 || check) {
		job_collect(j);
		if (check)
			job_wait_for_budget(j);
		job_refresh_claims(j, 0);
	}
}

int job_emit(struct job *j, const char *type, json_t *rec)
{
	char *data = json_dumps(rec, JSON_COMPACT);
	if (!data)
		return -ENOMEM;
	const char *names[] = { "type", "data" };
	const char *vals[] = { type, data };
	int rc = rstream_add(j->f->rc, j->f->cfg->key_parsed, 2, names, vals, NULL);
	free(data);
	return rc;
}

json_t *job_record(struct job *j)
{
	json_t *rec = json_object();
	json_object_set(rec, "job_id", json_object_get(j->json, "job_id"));
	json_object_set_new(rec, "run_id", json_integer(j->run_id));
	json_object_set_new(rec, "account_id", json_integer(j->account_id));
	return rec;
}




int job_lock_folder(struct job *j)
{
	const char *key = j->lock_key;
	/* A lock in our own name is ours: left by this consumer before a restart, or kept by a
	 * Redis that restarted from its AOF while we were mid-job. */
	redisReply *r = redisCommand(j->f->rc, "EVAL %s 1 %s %s %ld",
				     "local v = redis.call('get', KEYS[1]) "
				     "if v == false or v == ARGV[1] then "
				     "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0",
				     key, j->f->cfg->consumer, j->f->cfg->lock_ttl_ms);
	int ok = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return ok ? 0 : -EBUSY;
}

void job_unlock_folder(struct job *j)
{
	const char *key = j->lock_key;
	redisReply *r = redisCommand(j->f->rc,
				     "EVAL %s 1 %s %s",
				     "if redis.call('get', KEYS[1]) == ARGV[1] then "
				     "return redis.call('del', KEYS[1]) else return 0 end",
				     key, j->f->cfg->consumer);
	freeReplyObject(r);
}

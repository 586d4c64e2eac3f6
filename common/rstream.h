/* Redis connection and stream helpers over hiredis' blocking API: connect by URL, consumer
 * groups, XADD of binary fields, XREADGROUP/XAUTOCLAIM parsed into entries, XACK+XDEL.
 * Does not decide what is acknowledged when; the stages do (ack only after the durable step). */
#ifndef MP_RSTREAM_H
#define MP_RSTREAM_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* redis://host:port/db or unix:///path[?db=N]. NULL after logging one line naming the URL. */
redisContext *redis_connect_url(const char *url);

/* XGROUP CREATE key group 0 MKSTREAM; an existing group is success. */
int rstream_group_create(redisContext *c, const char *key, const char *group);

/* One stream entry; every pointer borrows from the redisReply it was parsed from. */
struct rentry {
	const char *id;
	size_t nfields;
	const char *names[8];
	const char *vals[8];
	size_t lens[8];
};

/* Value of field name or NULL (len set when found). */
const char *rentry_get(const struct rentry *e, const char *name, size_t *len);

/* Entries of an XREADGROUP/XREAD reply (first stream) or an XAUTOCLAIM reply. The array is
 * malloc'd (caller frees it); the entries borrow from reply until freeReplyObject. Entries
 * already deleted from the stream (nil field lists) are returned with nfields == 0. */
int rstream_entries(const redisReply *reply, struct rentry **out, size_t *n);

/* XREADGROUP GROUP group consumer COUNT count [BLOCK ms] STREAMS key id. NULL reply = timeout
 * or error (logged). */
redisReply *rstream_read(redisContext *c, const char *key, const char *group, const char *consumer,
			 long count, long block_ms, const char *id);
/* XREADGROUP ... COUNT count BLOCK block_ms STREAMS key... > ...: new entries of whichever of
 * the nkeys streams (at most 8) has some first, waiting at most block_ms. The reply holds
 * one [key, entries] pair per stream that had entries (rstream_entries_at); NULL = timeout
 * or error (logged). For a reader of several streams that must not sleep on one while
 * another fills. */
redisReply *rstream_read_any(redisContext *c, const char *const *keys, size_t nkeys,
			     const char *group, const char *consumer, long count, long block_ms);
/* The k-th stream of an XREADGROUP reply: its key (borrowed) and entries, as
 * rstream_entries; 0 entries past the last stream. */
int rstream_entries_at(const redisReply *reply, size_t k, const char **key, struct rentry **out,
		       size_t *n);
/* XAUTOCLAIM key group consumer min_idle 0-0 COUNT count. */
redisReply *rstream_autoclaim(redisContext *c, const char *key, const char *group,
			      const char *consumer, long min_idle_ms, long count);
/* Delivery count of a pending entry, from XPENDING; 0 when not pending, <0 on error. */
long rstream_deliveries(redisContext *c, const char *key, const char *group, const char *id);

/* Sets the delivery counts of pending entries of consumer (XCLAIM ... RETRYCOUNT, JUSTID, which
 * a full Redis still runs): a delivery that failed on Redis's side is taken back, so that
 * MAX_DELIVERIES counts the parser's crashes only. 0 or -EIO. */
int rstream_set_deliveries(redisContext *c, const char *key, const char *group, const char *consumer,
			   const char **ids, const long *counts, size_t n);
/* Appends XADD key * f1 v1 ... to the pipeline; collect with rstream_collect. */
/* Fields one XADD of rstream_append_add(_capped) carries; callers with more must not exist
 * (the parsed message record asserts it fits). */
enum { RSTREAM_MAX_FIELDS = 8 };
void rstream_append_add(redisContext *c, const char *key, size_t nfields, const char **names,
			const char **vals, const size_t *lens);
/* The same with MAXLEN ~ maxlen (none when 0): for streams kept as a window, not a queue. */
void rstream_append_add_capped(redisContext *c, const char *key, long maxlen, size_t nfields,
			       const char **names, const char **vals, const size_t *lens);
/* Appends XACK and XDEL of ids: the entry leaves the group and the stream, so XLEN is the
 * in-flight count. */
void rstream_append_ack(redisContext *c, const char *key, const char *group, const char **ids,
			size_t n);
/* Appends XACK alone: the entry leaves the group but stays in the stream, for a later stage
 * that reads it by id ({mp}:raw, read by the writer, which deletes it after COMMIT). */
void rstream_append_xack(redisContext *c, const char *key, const char *group, const char **ids,
			 size_t n);
/* Entries of an XRANGE reply, as rstream_entries. */
int rstream_range_entries(const redisReply *reply, struct rentry **out, size_t *n);
/* Reads n pipelined replies; 0 if none was an error, else -EIO after logging once (the first
 * error and how many). */
int rstream_collect(redisContext *c, size_t n);

/* One XADD with a round trip; 0 or -EIO. */
int rstream_add(redisContext *c, const char *key, size_t nfields, const char **names,
		const char **vals, const size_t *lens);
int rstream_ack(redisContext *c, const char *key, const char *group, const char **ids, size_t n);
long long rstream_len(redisContext *c, const char *key);
/* Entries of the stream not yet delivered to group (XLEN less the group's pending), or -EIO. */
long long rstream_undelivered(redisContext *c, const char *key, const char *group);
/* Bytes of Redis memory the stream takes (0 when it does not exist), or -EIO. */
long long rstream_memory(redisContext *c, const char *key);
/* 1 when the server has a memory limit (maxmemory, into *limit unless NULL; 0: none) and uses
 * more than num/den of it, else 0; -EIO when it does not answer. Full, it refuses writes, and the pipeline's streams are most of
 * what it holds: the fetchers pause at half, the parsers at three quarters, so that the
 * writers, which free it by deleting what they committed, can always tell their changes. */
int redis_memory_over(redisContext *c, int num, int den, long long *limit);
/* Invariant 5's test: 1 when the stream holds more than max_entries entries or max_bytes of
 * memory, 0 when not, -EIO (logged). *entries and *bytes say how much it holds (*bytes 0 when
 * the entries alone decided). */
int rstream_over_budget(redisContext *c, const char *key, long long max_entries,
			long long max_bytes, long long *entries, long long *bytes);
/* The epoch of the Redis behind c into buf: the random id held in key, set (SET NX) by whoever
 * first finds it missing. A Redis that restarted empty has lost its work in flight with the
 * key, and answers with a new epoch. 0, or -EIO (logged). */
int redis_epoch(redisContext *c, const char *key, char *buf, size_t size);

/* The id of the stream's last entry ("0-0" when empty) into buf. */
int rstream_last_id(redisContext *c, const char *key, char *buf, size_t size);

#endif

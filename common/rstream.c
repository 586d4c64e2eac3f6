/* hiredis helpers for streams. Blocking API on purpose: every stage owns its connections and
 * a blocking XREADGROUP gets its own context (LIBRARY-NOTES: it holds up everything behind it). */
#include "rstream.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

redisContext *redis_connect_url(const char *url)
{
	char host[256] = "127.0.0.1";
	int port = 6379, db = 0;
	redisContext *c = NULL;
	struct timeval tv = { 5, 0 };

	if (strncmp(url, "unix://", 7) == 0) {
		char path[512];
		snprintf(path, sizeof(path), "%s", url + 7);
		char *q = strchr(path, '?');
		if (q) {
			if (strncmp(q, "?db=", 4) == 0)
				db = (int)strtol(q + 4, NULL, 10);
			*q = 0;
		}
		c = redisConnectUnixWithTimeout(path, tv);
	} else if (strncmp(url, "redis://", 8) == 0) {
		const char *p = url + 8, *at = strchr(p, '@');
		if (at) /* credentials are not supported by hiredis 0.14 AUTH here yet */
			p = at + 1;
		size_t hl = strcspn(p, ":/");
		if (hl == 0 || hl >= sizeof(host))
			goto bad;
		memcpy(host, p, hl);
		host[hl] = 0;
		p += hl;
		if (*p == ':')
			port = (int)strtol(p + 1, (char **)&p, 10);
		if (*p == '/' && p[1])
			db = (int)strtol(p + 1, NULL, 10);
		c = redisConnectWithTimeout(host, port, tv);
	} else {
		goto bad;
	}
	if (!c || c->err) {
		log_error("redis=\"%s\" msg=\"cannot connect: %s\"", url, c ? c->errstr : "oom");
		redisFree(c);
		return NULL;
	}
	if (db) {
		redisReply *r = redisCommand(c, "SELECT %d", db);
		int ok = r && r->type != REDIS_REPLY_ERROR;
		freeReplyObject(r);
		if (!ok) {
			log_error("redis=\"%s\" msg=\"SELECT %d failed\"", url, db);
			redisFree(c);
			return NULL;
		}
	}
	return c;
bad:
	log_error("redis=\"%s\" msg=\"not a redis:// or unix:// URL\"", url);
	return NULL;
}

static int reply_ok(redisContext *c, redisReply *r, const char *what)
{
	if (!r) {
		log_error("msg=\"redis %s failed: %s\"", what, c->errstr);
		return -EIO;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		log_error("msg=\"redis %s failed: %s\"", what, r->str);
		return -EIO;
	}
	return 0;
}

int rstream_group_create(redisContext *c, const char *key, const char *group)
{
	redisReply *r = redisCommand(c, "XGROUP CREATE %s %s 0 MKSTREAM", key, group);
	int rc = 0;
	if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0)
		rc = 0;
	else
		rc = reply_ok(c, r, "XGROUP CREATE");
	freeReplyObject(r);
	return rc;
}

const char *rentry_get(const struct rentry *e, const char *name, size_t *len)
{
	for (size_t i = 0; i < e->nfields; i++)
		if (strcmp(e->names[i], name) == 0) {
			if (len)
				*len = e->lens[i];
			return e->vals[i];
		}
	return NULL;
}

static int parse_entry_list(const redisReply *list, struct rentry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!list || list->type != REDIS_REPLY_ARRAY || list->elements == 0)
		return 0;
	struct rentry *v = calloc(list->elements, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *e = list->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 1)
			continue;
		struct rentry *re = &v[k++];
		re->id = e->element[0]->str;
		if (e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		const redisReply *f = e->element[1];
		for (size_t j = 0; j + 1 < f->elements && re->nfields < 8; j += 2) {
			re->names[re->nfields] = f->element[j]->str;
			re->vals[re->nfields] = f->element[j + 1]->str;
			re->lens[re->nfields] = f->element[j + 1]->len;
			re->nfields++;
		}
	}
	*out = v;
	*n = k;
	return 0;
}

int rstream_entries(const redisReply *reply, struct rentry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
		return 0;
	const redisReply *first = reply->element[0];
	/* XREADGROUP: [[key, entries]]; XAUTOCLAIM: [next-id, entries, deleted-ids]. */
	if (first->type == REDIS_REPLY_ARRAY && first->elements == 2)
		return parse_entry_list(first->element[1], out, n);
	if (first->type == REDIS_REPLY_STRING && reply->elements >= 2)
		return parse_entry_list(reply->element[1], out, n);
	return 0;
}

redisReply *rstream_read(redisContext *c, const char *key, const char *group, const char *consumer,
			 long count, long block_ms, const char *id)
{
	char cnt[24], blk[24];
	snprintf(cnt, sizeof(cnt), "%ld", count);
	snprintf(blk, sizeof(blk), "%ld", block_ms);
	const char *argv[] = { "XREADGROUP", "GROUP", group, consumer, "COUNT", cnt,
			       "BLOCK",	     blk,     "STREAMS", key, id };
	int argc = 11;
	if (block_ms < 0) { /* no BLOCK: drop the two words */
		argv[6] = "STREAMS";
		argv[7] = key;
		argv[8] = id;
		argc = 9;
	}
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	if (reply_ok(c, r, "XREADGROUP") < 0 || r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

redisReply *rstream_read_any(redisContext *c, const char *const *keys, size_t nkeys,
			     const char *group, const char *consumer, long count, long block_ms)
{
	char cnt[24], blk[24];
	const char *argv[9 + 2 * 8] = { "XREADGROUP", "GROUP", group, consumer, "COUNT", cnt,
					"BLOCK", blk };
	int argc = 8;
	if (nkeys == 0 || nkeys > 8)
		return NULL;
	snprintf(cnt, sizeof(cnt), "%ld", count);
	snprintf(blk, sizeof(blk), "%ld", block_ms);
	argv[argc++] = "STREAMS";
	for (size_t k = 0; k < nkeys; k++)
		argv[argc++] = keys[k];
	for (size_t k = 0; k < nkeys; k++)
		argv[argc++] = ">";
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	if (reply_ok(c, r, "XREADGROUP") < 0 || r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

int rstream_entries_at(const redisReply *reply, size_t k, const char **key, struct rentry **out,
		       size_t *n)
{
	*out = NULL;
	*n = 0;
	*key = NULL;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || k >= reply->elements)
		return 0;
	const redisReply *s = reply->element[k];
	if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 || s->element[0]->type != REDIS_REPLY_STRING)
		return 0;
	*key = s->element[0]->str;
	return parse_entry_list(s->element[1], out, n);
}

redisReply *rstream_autoclaim(redisContext *c, const char *key, const char *group,
			      const char *consumer, long min_idle_ms, long count)
{
	redisReply *r = redisCommand(c, "XAUTOCLAIM %s %s %s %ld 0-0 COUNT %ld", key, group,
				     consumer, min_idle_ms, count);
	if (reply_ok(c, r, "XAUTOCLAIM") < 0) {
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

long rstream_deliveries(redisContext *c, const char *key, const char *group, const char *id)
{
	redisReply *r = redisCommand(c, "XPENDING %s %s %s %s 1", key, group, id, id);
	long n = -EIO;
	if (reply_ok(c, r, "XPENDING") == 0 && r->type == REDIS_REPLY_ARRAY) {
		n = 0;
		if (r->elements == 1 && r->element[0]->elements >= 4)
			n = (long)r->element[0]->element[3]->integer;
	}
	freeReplyObject(r);
	return n;
}

int rstream_set_deliveries(redisContext *c, const char *key, const char *group, const char *consumer,
			   const char **ids, const long *counts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char count[24];
		snprintf(count, sizeof(count), "%ld", counts[i] > 0 ? counts[i] : 0);
		const char *argv[] = { "XCLAIM", key, group, consumer, "0", ids[i], "RETRYCOUNT", count,
				       "JUSTID" };
		redisAppendCommandArgv(c, 9, argv, NULL);
	}
	return rstream_collect(c, n);
}

void rstream_append_add(redisContext *c, const char *key, size_t nfields, const char **names,
			const char **vals, const size_t *lens)
{
	rstream_append_add_capped(c, key, 0, nfields, names, vals, lens);
}

void rstream_append_add_capped(redisContext *c, const char *key, long maxlen, size_t nfields,
			       const char **names, const char **vals, const size_t *lens)
{
	const char *argv[6 + 2 * RSTREAM_MAX_FIELDS];
	size_t argl[6 + 2 * RSTREAM_MAX_FIELDS];
	size_t argc = 0;
	char max[24];
	argv[argc] = "XADD", argl[argc++] = 4;
	argv[argc] = key, argl[argc++] = strlen(key);
	if (maxlen > 0) {
		snprintf(max, sizeof(max), "%ld", maxlen);
		argv[argc] = "MAXLEN", argl[argc++] = 6;
		argv[argc] = "~", argl[argc++] = 1;
		argv[argc] = max, argl[argc++] = strlen(max);
	}
	argv[argc] = "*", argl[argc++] = 1;
	for (size_t i = 0; i < nfields && i < RSTREAM_MAX_FIELDS; i++) {
		argv[argc] = names[i], argl[argc++] = strlen(names[i]);
		argv[argc] = vals[i], argl[argc++] = lens ? lens[i] : strlen(vals[i]);
	}
	redisAppendCommandArgv(c, (int)argc, argv, argl);
}

void rstream_append_xack(redisContext *c, const char *key, const char *group, const char **ids,
			 size_t n)
{
	const char **argv = malloc((n + 3) * sizeof(*argv));
	if (!argv)
		return;
	argv[0] = "XACK";
	argv[1] = key;
	argv[2] = group;
	for (size_t i = 0; i < n; i++)
		argv[3 + i] = ids[i];
	redisAppendCommandArgv(c, (int)(n + 3), argv, NULL);
	free(argv);
}

void rstream_append_ack(redisContext *c, const char *key, const char *group, const char **ids,
			size_t n)
{
	rstream_append_xack(c, key, group, ids, n);
	const char **argv = malloc((n + 2) * sizeof(*argv));
	if (!argv)
		return;
	argv[0] = "XDEL";
	argv[1] = key;
	for (size_t i = 0; i < n; i++)
		argv[2 + i] = ids[i];
	redisAppendCommandArgv(c, (int)(n + 2), argv, NULL);
	free(argv);
}

int rstream_range_entries(const redisReply *reply, struct rentry **out, size_t *n)
{
	return parse_entry_list(reply, out, n);
}

int rstream_collect(redisContext *c, size_t n)
{
	size_t failed = 0;
	char first[256] = "";
	for (size_t i = 0; i < n; i++) {
		redisReply *r = NULL;
		if (redisGetReply(c, (void **)&r) != REDIS_OK) {
			log_error("msg=\"redis pipeline failed: %s\"", c->errstr);
			return -EIO;
		}
		if (r && r->type == REDIS_REPLY_ERROR && !failed++)
			snprintf(first, sizeof(first), "%s", r->str);
		freeReplyObject(r);
	}
	/* One line for a pipeline: a full Redis refuses every command of it. */
	if (failed)
		log_error("failed=%zu of=%zu msg=\"redis pipelined commands failed: %s\"", failed, n, first);
	return failed ? -EIO : 0;
}

int rstream_add(redisContext *c, const char *key, size_t nfields, const char **names,
		const char **vals, const size_t *lens)
{
	rstream_append_add(c, key, nfields, names, vals, lens);
	return rstream_collect(c, 1);
}

int rstream_ack(redisContext *c, const char *key, const char *group, const char **ids, size_t n)
{
	if (n == 0)
		return 0;
	rstream_append_ack(c, key, group, ids, n);
	return rstream_collect(c, 2);
}

long long rstream_len(redisContext *c, const char *key)
{
	redisReply *r = redisCommand(c, "XLEN %s", key);
	long long n = -EIO;
	if (reply_ok(c, r, "XLEN") == 0)
		n = r->integer;
	freeReplyObject(r);
	return n;
}

long long rstream_undelivered(redisContext *c, const char *key, const char *group)
{
	redisAppendCommand(c, "XLEN %s", key);
	redisAppendCommand(c, "XPENDING %s %s", key, group);
	redisReply *len = NULL, *pend = NULL;
	long long n = -EIO;
	if (redisGetReply(c, (void **)&len) == REDIS_OK && redisGetReply(c, (void **)&pend) == REDIS_OK &&
	    len && len->type == REDIS_REPLY_INTEGER) {
		long long pending = 0;
		/* [count, first, last, consumers]; an error (no group yet) counts nothing pending */
		if (pend && pend->type == REDIS_REPLY_ARRAY && pend->elements >= 1 &&
		    pend->element[0]->type == REDIS_REPLY_INTEGER)
			pending = pend->element[0]->integer;
		n = len->integer > pending ? len->integer - pending : 0;
	} else {
		log_error("msg=\"redis XLEN/XPENDING of %s: %s\"", key, c->err ? c->errstr : "bad reply");
	}
	freeReplyObject(len);
	freeReplyObject(pend);
	return n;
}

long long rstream_memory(redisContext *c, const char *key)
{
	/* SAMPLES 0 counts every node: a stream of big entries has about one node per entry,
	 * and sampling a few would misjudge a stream of mixed sizes. */
	redisReply *r = redisCommand(c, "MEMORY USAGE %s SAMPLES 0", key);
	long long n = -EIO;
	if (reply_ok(c, r, "MEMORY USAGE") == 0)
		n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0; /* nil: no such key */
	freeReplyObject(r);
	return n;
}

int rstream_over_budget(redisContext *c, const char *key, long long max_entries,
			long long max_bytes, long long *entries, long long *bytes)
{
	*entries = rstream_len(c, key);
	if (*entries < 0)
		return -EIO;
	*bytes = 0;
	if (*entries > max_entries)
		return 1;
	*bytes = rstream_memory(c, key);
	if (*bytes < 0)
		return -EIO;
	return *bytes > max_bytes;
}

int redis_memory_over(redisContext *c, int num, int den, long long *limit)
{
	redisReply *r = redisCommand(c, "INFO memory");
	if (reply_ok(c, r, "INFO memory") < 0) {
		freeReplyObject(r);
		return -EIO;
	}
	const char *u = r->type == REDIS_REPLY_STRING ? strstr(r->str, "\nused_memory:") : NULL;
	const char *m = r->type == REDIS_REPLY_STRING ? strstr(r->str, "\nmaxmemory:") : NULL;
	long long used = u ? strtoll(u + 13, NULL, 10) : 0, max = m ? strtoll(m + 11, NULL, 10) : 0;
	freeReplyObject(r);
	if (limit)
		*limit = max;
	return max > 0 && used > max / den * num;
}

int rstream_last_id(redisContext *c, const char *key, char *buf, size_t size)
{
	redisReply *r = redisCommand(c, "XREVRANGE %s + - COUNT 1", key);
	int rc = reply_ok(c, r, "XREVRANGE");
	if (rc == 0) {
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
			snprintf(buf, size, "%s", r->element[0]->element[0]->str);
		else
			snprintf(buf, size, "0-0");
	}
	freeReplyObject(r);
	return rc;
}

int redis_epoch(redisContext *c, const char *key, char *buf, size_t size)
{
	/* Read first: a SET, even one NX would not do, is refused by a full Redis (maxmemory),
	 * and the scheduler asks every tick. */
	redisReply *r = redisCommand(c, "GET %s", key);
	int rc = reply_ok(c, r, "GET epoch");
	if (rc == 0 && r->type == REDIS_REPLY_STRING) {
		snprintf(buf, size, "%s", r->str);
		freeReplyObject(r);
		return 0;
	}
	freeReplyObject(r);
	if (rc < 0)
		return rc;
	unsigned char rnd[12];
	char fresh[2 * sizeof(rnd) + 1];
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) == (ssize_t)sizeof(rnd)) {
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(fresh + 2 * i, 3, "%02x", rnd[i]);
	} else { /* the clock and pid still differ between two Redis starts */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(fresh, sizeof(fresh), "%llx%lx%x", (unsigned long long)ts.tv_sec,
			 (long)ts.tv_nsec, (unsigned)getpid());
	}
	r = redisCommand(c, "SET %s %s NX", key, fresh);
	rc = reply_ok(c, r, "SET epoch");
	freeReplyObject(r);
	if (rc < 0)
		return rc;
	r = redisCommand(c, "GET %s", key);
	rc = reply_ok(c, r, "GET epoch");
	if (rc == 0 && r->type != REDIS_REPLY_STRING) {
		log_error("key=%s msg=\"redis epoch missing right after SET NX\"", key);
		rc = -EIO;
	}
	if (rc == 0)
		snprintf(buf, size, "%s", r->str);
	freeReplyObject(r);
	return rc;
}

/* mailpipe-writer: reads {mp}:parsed in batches (count or age), writes Postgres (store.c,
 * control.c) and acknowledges only after COMMIT. Reads configuration and loops. */
#include "link.h"
#include "log.h"
#include "parsed.h"
#include "pg.h"
#include "search.h"
#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

/* A cursor or backfill record that cannot be applied yet (its messages are not all
 * committed): kept, unacknowledged, and retried after the next batches. */
struct deferred {
	char *id;
	json_t *rec;
	int (*apply)(struct writer *w, json_t *rec);
	long long folder;	/* its folder_id, 0 when none */
	long long tried_ms;	/* when it was last tried */
};

/* How long a waiting record may go untried while this writer commits nothing of its folder:
 * its messages may be another writer's. */
enum { DEFERRED_RETRY_MS = 300 };

static int folder_committed(const struct writer *w, long long folder)
{
	if (w->all_folders || folder == 0)
		return 1;
	for (size_t i = 0; i < w->ncommitted_folders; i++)
		if (w->committed_folders[i] == folder)
			return 1;
	return 0;
}

static const char *const phase_names[WP_COUNT] = {
	[WP_WAIT] = "wait", [WP_DECODE] = "decode", [WP_RAW] = "raw", [WP_LOCK] = "lock",
	[WP_FIND] = "find", [WP_THREAD] = "thread", [WP_COPY] = "copy", [WP_VECTORS] = "vectors",
	[WP_AHEAD] = "ahead", [WP_LOCATIONS] = "locations", [WP_AFTER] = "after", [WP_COMMIT] = "commit",
	[WP_RELEASE] = "release", [WP_DEFERRED] = "deferred",
};

/* One debug line per batch: where its time went, in milliseconds. */
static void log_laps(struct writer *w, size_t n)
{
	if (log_enabled(LOG_DEBUG)) {
		char buf[400];
		size_t len = 0;
		for (int k = 0; k < WP_COUNT && len < sizeof(buf); k++)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s_ms=%.1f",
						phase_names[k], w->lap_ms[k]);
		log_debug("entries=%zu%s msg=\"batch timing\"", n, buf);
	}
	memset(w->lap_ms, 0, sizeof(w->lap_ms));
}

/* The entries of a read, and whether one of them is a LIST's folders record, which the
 * run's folder jobs wait for: it is applied without waiting for the batch to fill. Other
 * records (cursors, flags, expunges, links) gather in the window with the messages. */
static size_t entries_in(redisReply *r, int *control)
{
	struct rentry *e;
	size_t n;
	rstream_entries(r, &e, &n);
	for (size_t i = 0; i < n; i++) {
		const char *type = rentry_get(&e[i], "type", NULL);
		*control |= type && !strcmp(type, "folders");
	}
	free(e);
	return n;
}

static int connect_db(struct writer *w)
{
	unsigned delay = 200;
	while (!stopping) {
		if (w->pg)
			PQfinish(w->pg);
		w->pg = pg_connect(w->st->cfg.database_url);
		if (w->pg) {
			if (pg_schema_version(w->pg) < pg_schema_latest()) {
				log_error("msg=\"database schema is older than this writer: run "
					  "'mailpipe db migrate'\"");
			} else if (pg_cmd(w->pg, "name the connection",
					  "SET application_name = 'mailpipe writer'", 0, NULL) == 0 &&
				   store_prepare(w->pg) == 0) {
				w->committed = w->replan_at = 0;
				return 0;
			}
		}
		usleep(delay * 1000);
		if (delay < 5000)
			delay *= 2;
	}
	return -1;
}

static void ack(struct writer *w, const char *id)
{
	const char *ids[] = { id };
	rstream_ack(w->st->rc, w->st->cfg.key_parsed, "writers", ids, 1);
}

/* Tries again the records that wait for their messages: each when this writer committed some
 * of its folder's since its last try, else every DEFERRED_RETRY_MS (a check is a query on the
 * main connection: tried every 100 ms each, six folders' cursors had cost a first sync 4% of
 * the writer's time). */
static void retry_deferred(struct writer *w, struct deferred *d, size_t *nd)
{
	long long now = stage_now_ms();
	for (size_t i = 0; i < *nd;) {
		if (!folder_committed(w, d[i].folder) && now - d[i].tried_ms < DEFERRED_RETRY_MS) {
			i++;
			continue;
		}
		d[i].tried_ms = now;
		int rc = d[i].apply(w, d[i].rec);
		if (rc == 1)
			ack(w, d[i].id);
		if (rc != 0) {
			free(d[i].id);
			json_decref(d[i].rec);
			d[i] = d[--*nd];
			continue;
		}
		i++;
	}
	w->ncommitted_folders = 0;
	w->all_folders = 0;
}

/* Has the main connection's plans made again after its 1st, 2nd, 4th, 8th ... committed
 * batch, counted from its connection or from the last account new to it. The server keeps a
 * plan, the foreign-key checks' above all, for as long as the connection lives or until a
 * VACUUM or ANALYZE of its tables drops it: one made while a table was small (a new install,
 * or one whose accounts were all removed and vacuumed) reads the whole table on every check
 * as it grows, until autovacuum's ANALYZE, up to a minute later. A first sync grows the tables
 * at most as fast as its batches come, so on this schedule no plan outlives a doubling of the
 * rows it was made for; replanning costs a few milliseconds. */
static void replan_when_due(struct writer *w)
{
	if (w->replan_pending && metrics_clock() - w->replan_restarted >= 1.0)
		writer_replan_soon(w);
	if (++w->committed < w->replan_at)
		return;
	w->replan_at = w->replan_at ? w->replan_at * 2 : 2;
	if (pg_cmd(w->pg, "plan again", "DISCARD PLANS", 0, NULL) == 0)
		log_debug("batches=%ld msg=\"plans discarded, made again from the tables as they are\"",
			  w->committed);
}

/* Handles one read: messages first (one transaction), then control records, so a cursor in
 * the same read as its last messages applies at once. Frees the batch. */
static int handle(struct writer *w, struct batch *b, struct deferred *d, size_t *nd, size_t maxd)
{
	double busy0 = metrics_clock();
	struct rentry *e = b->e;
	struct wmsg *m = b->m;
	size_t n = b->n, nm = b->nm;
	const char **ids = calloc(n ? n : 1, sizeof(*ids));
	const char **raw_ids = calloc(n ? n : 1, sizeof(*raw_ids));
	int rc = 0;
	if (!m || !ids || !raw_ids || b->failed) {
		rc = -1; /* nothing acknowledged: read again after reconnecting */
		goto out;
	}
	if (nm) {
		double t0 = metrics_clock();
		w->ahead = b->sv; /* its vectors, when it was read ahead */
		int stored = store_messages(w, m, nm);
		w->ahead = NULL;
		if (stored == -ENOTCONN)
			replan_when_due(w); /* committed; Redis failed after (its reconnect counts it) */
		else if (stored < 0)
			metrics_add(MX_ERRORS_DATABASE, 1);
		if (stored == -ENOTCONN && !w->st->rc->err) {
			/* Redis answered, refusing the change notices: full (maxmemory). The raw
			 * entries of committed messages are not needed again, and deleting them is
			 * what frees its memory; the parsed ones come back and tell again. Holding
			 * both, the pipeline stood still for good. */
			metrics_add(MX_ERRORS_REDIS, 1);
			w->refused = 1;
			size_t nraw = 0;
			for (size_t i = 0; i < nm; i++)
				if (m[i].raw_id)
					raw_ids[nraw++] = m[i].raw_id;
			writer_release(w, raw_ids, nraw, NULL, 0);
		}
		if (stored < 0) {
			rc = -1; /* nothing acknowledged: the entries come back after reconnecting */
			goto out;
		}
		metrics_observe(MH_WRITER_COMMIT, metrics_clock() - t0);
		replan_when_due(w);
		if (w->st->cfg.fault_writer_abort == 1) /* tests: crash between COMMIT and deletes */
			abort();
		int64_t bytes = 0;
		size_t nraw = 0;
		for (size_t i = 0; i < nm; i++) {
			json_t *size = json_object_get(m[i].meta, "size");
			bytes += m[i].raw ? (int64_t)m[i].raw_len : (int64_t)json_integer_value(size);
			ids[i] = m[i].entry_id;
			if (m[i].raw_id)
				raw_ids[nraw++] = m[i].raw_id;
		}
		metrics_add(MX_WRITTEN_MESSAGES, (int64_t)nm);
		metrics_add(MX_WRITTEN_BYTES, bytes);
		writer_release(w, raw_ids, nraw, ids, nm);
		writer_lap(w, WP_RELEASE);
	}
	for (size_t i = 0; i < n; i++) {
		const char *type = rentry_get(&e[i], "type", NULL);
		const char *data = rentry_get(&e[i], "data", NULL);
		if (!type || strcmp(type, "message") == 0)
			continue;
		json_t *rec = data ? json_loads(data, 0, NULL) : NULL;
		int res = -1;
		int (*apply)(struct writer *, json_t *) = NULL;
		if (!rec) {
			log_error("entry=%s msg=\"control record without valid JSON, dropped\"", e[i].id);
			res = 1;
		} else if (strcmp(type, "folders") == 0) {
			res = control_folders(w, rec) == 0 ? 1 : -1;
		} else if (strcmp(type, "cursor") == 0) {
			res = (apply = control_cursor)(w, rec);
		} else if (strcmp(type, "backfill") == 0) {
			res = (apply = control_backfill)(w, rec);
		} else if (strcmp(type, "flags") == 0) {
			res = mirror_flags(w, rec);
		} else if (strcmp(type, "vanished") == 0) {
			res = mirror_vanished(w, rec);
		} else if (strcmp(type, "link") == 0) {
			res = link_apply(w, rec);
		} else {
			log_warn("entry=%s type=%s msg=\"unknown record type, dropped\"", e[i].id, type);
			res = 1;
		}
		if (res == 1) {
			ack(w, e[i].id);
			/* A record waiting here comes back by XAUTOCLAIM once it has waited
			 * claim_idle: applied now, its waiting copy must not be applied again
			 * (it would tell sync_finished twice). */
			for (size_t k = 0; k < *nd; k++)
				if (strcmp(d[k].id, e[i].id) == 0) {
					free(d[k].id);
					json_decref(d[k].rec);
					d[k] = d[--*nd];
					break;
				}
		} else if (res == 0 && *nd < maxd) {
			int dup = 0;
			for (size_t k = 0; k < *nd; k++)
				dup |= strcmp(d[k].id, e[i].id) == 0;
			if (!dup) {
				d[*nd].id = strdup(e[i].id);
				d[*nd].rec = json_incref(rec);
				d[*nd].apply = apply;
				d[*nd].folder = json_integer_value(json_object_get(rec, "folder_id"));
				d[*nd].tried_ms = stage_now_ms();
				(*nd)++;
			}
		} else if (res < 0) {
			rc = -1;
		}
		json_decref(rec);
	}
out:
	batch_free(b);
	free(ids);
	free(raw_ids);
	metrics_busy(metrics_clock() - busy0);
	return rc;
}

int main(int argc, char **argv)
{
	struct stage st;
	struct writer w;
	struct deferred d[256];
	size_t nd = 0;
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mailpipe-writer (configured by the environment)\n");
		config_print_help(stderr);
		return 2;
	}
	if (stage_init(&st, "writer", &stopping) < 0)
		return 1;
	memset(&w, 0, sizeof(w));
	w.st = &st;
	if (connect_db(&w) < 0)
		goto out;
	long long last_retry = 0, next_repair = 0;
	w.lap_at = metrics_clock();
	while (!stopping) {
		/* The batch read ahead during the last one (batch.c), else a read of our own. */
		struct batch *b = w.next;
		size_t have = b ? b->n : 0;
		w.next = NULL;
		if (!b) {
			int redelivered;
			redisReply *r = stage_next(&st, st.cfg.key_parsed, "writers", st.cfg.writer_batch,
						   st.cfg.writer_batch_ms, &redelivered);
			if (!r && st.rc->err) {
				if (stage_reconnect(&st) < 0)
					break;
				continue;
			}
			/* A batch closes at writer_batch entries or writer_batch_ms after its first
			 * entry: one commit (one fsync) for a trickle of messages rather than one
			 * each. */
			redisReply *replies[64] = { r };
			int control = 0;
			size_t nreplies = r ? 1 : 0;
			have = r ? entries_in(r, &control) : 0;
			long long deadline = stage_now_ms() + st.cfg.writer_batch_ms;
			while (r && !redelivered && !control && have > 0 &&
			       have < (size_t)st.cfg.writer_batch && nreplies < 64) {
				long left = (long)(deadline - stage_now_ms());
				if (left <= 0) /* BLOCK 0 would wait forever */
					break;
				redisReply *more = rstream_read(st.rc, st.cfg.key_parsed, "writers",
								st.cfg.consumer,
								st.cfg.writer_batch - (long)have, left, ">");
				if (!more)
					break;
				replies[nreplies++] = more;
				have += entries_in(more, &control);
			}
			writer_lap(&w, WP_WAIT);
			b = nreplies ? batch_decode(&w, replies, nreplies, 1) : NULL;
		}
		/* What was read before Postgres went away is pending in our own name: re-read it as
		 * soon as the database is back rather than wait claim_idle for XAUTOCLAIM; a batch
		 * read ahead is part of it. */
		w.refused = 0;
		int handled = b ? handle(&w, b, d, &nd, sizeof(d) / sizeof(d[0])) : 0;
		/* A full Redis refuses each batch alike: rather than commit batch after batch and
		 * fail each, wait while the deletions free its memory. */
		w.refused_wait_ms = w.refused ? (w.refused_wait_ms ? w.refused_wait_ms * 2 : 50) : 0;
		if (w.refused_wait_ms > 2000)
			w.refused_wait_ms = 2000;
		if (w.refused_wait_ms)
			usleep((useconds_t)w.refused_wait_ms * 1000);
		if (handled < 0 && pg_broken(w.pg) && connect_db(&w) == 0) {
			log_info("msg=\"reconnected to the database, re-reading own pending entries\"");
			batch_free(w.next);
			w.next = NULL;
			st.own_pending_done = 0;
			st.pending_from[0] = 0;
		}
		log_laps(&w, have);
		/* At start and every minute: vectors missing from rows an older writer inserted. */
		if (stage_now_ms() >= next_repair)
			next_repair = stage_now_ms() + (search_repair(&w) == 1000 ? 0 : 60000);
		if (nd && stage_now_ms() - last_retry >= 100) {
			retry_deferred(&w, d, &nd);
			last_retry = stage_now_ms();
		} else if (!nd) {
			w.ncommitted_folders = 0; /* nothing waits */
			w.all_folders = 0;
		}
		writer_lap(&w, WP_DEFERRED);
	}
out:
	batch_free(w.next); /* not acknowledged: pending in our name for the next start */
	for (size_t i = 0; i < nd; i++) {
		free(d[i].id);
		json_decref(d[i].rec);
	}
	json_decref(w.changes);
	search_close(&w);
	PQfinish(w.pg);
	log_info("msg=\"stopped\"");
	stage_release(&st);
	return 0;
}

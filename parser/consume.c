/* Raw -> parsed. A message is acknowledged on {mp}:raw only after its parsed record is in
 * {mp}:parsed (invariant 3), and only acknowledged (XACK): the parsed record names the raw
 * entry by its id (raw_id) rather than carry the bytes again, and the writer deletes the raw
 * entry once the message is committed (common/parsed.h). A message delivered a fourth time has crashed a parser three
 * times: it goes to {mp}:dead and on to the writer unparsed, so it is still stored
 * (invariant 6). */
#include "consume.h"
#include "enrich.h"
#include "extract.h"
#include "log.h"
#include "parsed.h"

#include <glib.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A message delivered this many times without being acknowledged has crashed a parser on
 * each earlier delivery. */
enum { MAX_DELIVERIES = 4 };

static json_t *unparsed_record(const char *raw, size_t len, const char *why)
{
	json_t *m = json_object();
	gchar *sha = extract_sha256_hex(raw, len);
	json_object_set_new(m, "content_sha256", json_string(sha));
	json_object_set_new(m, "parse_error", json_string(why));
	g_free(sha);
	return m;
}

/* Messages of one batch per (run, folder), for `mailpipe sync --wait` and `status`. */
struct tally {
	long long run_id, folder_id, n;
};

static void tally_add(struct tally *t, size_t *nt, size_t max, json_t *meta)
{
	long long run = json_integer_value(json_object_get(meta, "run_id"));
	long long folder = json_integer_value(json_object_get(meta, "folder_id"));
	if (run <= 0)
		return; /* backfill: no run to report on */
	for (size_t i = 0; i < *nt; i++)
		if (t[i].run_id == run && t[i].folder_id == folder) {
			t[i].n++;
			return;
		}
	if (*nt < max)
		t[(*nt)++] = (struct tally){ run, folder, 1 };
}

/* Appends HINCRBY {mp}:progress:<run> <folder>:parsed n (and a day's EXPIRE) per tally; the
 * counters are a display, so a redelivered batch counting twice does no harm. Returns the
 * number of commands appended. */
static size_t tally_append(struct stage *st, const struct tally *t, size_t nt)
{
	for (size_t i = 0; i < nt; i++) {
		char key[160], field[40], by[24];
		snprintf(key, sizeof(key), "%s%lld", st->cfg.key_progress_prefix, t[i].run_id);
		snprintf(field, sizeof(field), "%lld:parsed", t[i].folder_id);
		snprintf(by, sizeof(by), "%lld", t[i].n);
		const char *hv[] = { "HINCRBY", key, field, by };
		const char *ev[] = { "EXPIRE", key, "86400" };
		redisAppendCommandArgv(st->rc, 4, hv, NULL);
		redisAppendCommandArgv(st->rc, 3, ev, NULL);
	}
	return nt * 2;
}

int parser_handle(struct stage *st, redisReply *reply, int redelivered)
{
	struct tally tally[64];
	size_t ntally = 0;
	struct rentry *e = NULL;
	size_t n = 0, appended = 0;
	int64_t done = 0, done_bytes = 0, unparsed = 0, dead = 0; /* for the metrics, once acked */
	const struct mp_config *cfg = &st->cfg;
	struct extract_limits lim;
	int rc = 0;

	extract_limits_default(&lim);
	rstream_entries(reply, &e, &n);
	const char **ids = calloc(n ? n : 1, sizeof(*ids));
	long *before = calloc(n ? n : 1, sizeof(*before)); /* each entry's deliveries before this one */
	if (!ids || !before) {
		free(ids);
		free(before);
		free(e);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t meta_len = 0, raw_len = 0;
		const char *meta = rentry_get(&e[i], "meta", &meta_len);
		const char *raw = rentry_get(&e[i], "raw", &raw_len);
		ids[i] = e[i].id;
		if (!meta || !raw) /* deleted while pending: acknowledge only */
			continue;
		json_t *msg;
		long deliveries = redelivered ? rstream_deliveries(st->rc, cfg->key_raw, "parsers",
								    e[i].id) : 1;
		before[i] = deliveries - 1;
		if (deliveries >= MAX_DELIVERIES) {
			log_error("entry=%s meta=%.*s msg=\"message was delivered %ld times without "
				  "being parsed; storing it unparsed and dead-lettering it\"",
				  e[i].id, (int)meta_len, meta, deliveries);
			msg = unparsed_record(raw, raw_len, "parser failed repeatedly on this message");
			const char *names[] = { "stream", "id", "meta", "error" };
			const char *vals[] = { cfg->key_raw, e[i].id, meta, "parser failed repeatedly" };
			size_t lens[] = { strlen(cfg->key_raw), strlen(e[i].id), meta_len, 24 };
			/* The message itself is stored (unparsed); the dead stream is the operator's
			 * list of them, kept to its latest entries so Redis stays bounded. */
			redisContext *home = stage_home(st);
			if (home == st->rc) {
				rstream_append_add_capped(st->rc, cfg->key_dead, 100000, 4, names, vals, lens);
				appended++;
			} else if (!home || rstream_add(home, cfg->key_dead, 4, names, vals, lens) < 0) {
				rc = -1; /* {mp}:dead is on the home server: retried with the batch */
			}
			dead++;
		} else {
			/* Fault injection for the dead-letter test: crash on a marked message. */
			if (*cfg->fault_parser_abort &&
			    memmem(raw, raw_len, cfg->fault_parser_abort, strlen(cfg->fault_parser_abort)))
				abort();
			msg = extract_message(raw, raw_len, &lim);
		}
		json_t *meta_json = json_loadb(meta, meta_len, 0, NULL);
		if (msg && json_is_true(json_object_get(meta_json, "truncated"))) {
			/* The fetcher took only the header of a message over its size limit. */
			const char *had = json_string_value(json_object_get(msg, "parse_error"));
			char why[256];
			snprintf(why, sizeof(why), "message of %lld bytes is over MAILPIPE_MAX_MESSAGE_BYTES: "
				 "only its header was fetched%s%s",
				 (long long)json_integer_value(json_object_get(meta_json, "size")),
				 had ? "; " : "", had ? had : "");
			json_object_set_new(msg, "parse_error", json_string(why));
		}
		tally_add(tally, &ntally, sizeof(tally) / sizeof(tally[0]), meta_json);
		if (msg && enrich_message(msg, meta_json) < 0) {
			json_decref(msg);
			msg = NULL;
		}
		json_decref(meta_json);
		unparsed += json_is_string(json_object_get(msg, "parse_error"));
		_Static_assert(4 + PARSED_BODY_FIELDS <= RSTREAM_MAX_FIELDS, "one XADD holds the record");
		const char *names[4 + PARSED_BODY_FIELDS] = { "type", "meta", "msg", "raw_id" };
		const char *vals[4 + PARSED_BODY_FIELDS] = { "message", meta, NULL, e[i].id };
		size_t lens[4 + PARSED_BODY_FIELDS] = { 7, meta_len, 0, strlen(e[i].id) };
		json_t *bodies[PARSED_BODY_FIELDS] = { NULL };
		size_t nf = 4;
		for (size_t k = 0; msg && k < PARSED_BODY_FIELDS; k++) {
			json_t *b = json_object_get(msg, parsed_body_fields[k]);
			if (!json_is_string(b))
				continue;
			bodies[k] = json_incref(b); /* kept alive until appended */
			json_object_del(msg, parsed_body_fields[k]);
			names[nf] = parsed_body_fields[k];
			vals[nf] = json_string_value(b);
			lens[nf++] = json_string_length(b);
		}
		char *msg_json = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
		json_decref(msg);
		if (!msg_json) {
			log_error("entry=%s msg=\"out of memory encoding a parsed message\"", e[i].id);
			for (size_t k = 0; k < PARSED_BODY_FIELDS; k++)
				json_decref(bodies[k]);
			rc = -1;
			break;
		}
		vals[2] = msg_json;
		lens[2] = strlen(msg_json);
		rstream_append_add(st->rc, cfg->key_parsed, nf, names, vals, lens);
		for (size_t k = 0; k < PARSED_BODY_FIELDS; k++)
			json_decref(bodies[k]);
		appended++;
		done++;
		done_bytes += (int64_t)raw_len;
		free(msg_json);
	}
	if (rc == 0)
		appended += tally_append(st, tally, ntally);
	if (rstream_collect(st->rc, appended) < 0)
		rc = -1;
	if (rc == 0 && n > 0) { /* XACK only: the writer deletes the entry after COMMIT */
		rstream_append_xack(st->rc, cfg->key_raw, "parsers", ids, n);
		rc = rstream_collect(st->rc, 1);
	}
	/* Redis refused the batch (full: maxmemory) while it answers: this delivery was not a
	 * crash of ours, so it does not count towards MAX_DELIVERIES. Counted, a few minutes of
	 * a full Redis sent good mail to {mp}:dead and stored it unparsed. A lost connection
	 * cannot be told so; that delivery counts. */
	if (rc < 0 && !st->rc->err && n > 0)
		rstream_set_deliveries(st->rc, cfg->key_raw, "parsers", cfg->consumer, ids, before, n);
	if (rc == 0) {
		metrics_add(MX_PARSED_MESSAGES, done);
		metrics_add(MX_PARSED_BYTES, done_bytes);
		metrics_add(MX_ERRORS_PARSE, unparsed);
		metrics_add(MX_ERRORS_DEAD_LETTER, dead);
	}
	free(ids);
	free(before);
	free(e);
	return rc;
}

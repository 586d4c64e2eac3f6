/* The first-messages milestone: how long after an account's first sync started its 50th message
 * was committed (mailpipe_first_messages_seconds), what a new user waits before mail shows up.
 * store.c notes each new message of a batch, asks before COMMIT, and reports after it. */
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { MILESTONE_MESSAGES = 50 };

static int is_done(const struct writer *w, long long account)
{
	for (size_t i = 0; i < w->nmilestone_done; i++)
		if (w->milestone_done[i] == account)
			return 1;
	return 0;
}

static void mark_done(struct writer *w, long long account)
{
	size_t cap = sizeof(w->milestone_done) / sizeof(w->milestone_done[0]);
	if (w->nmilestone_done == cap)
		w->nmilestone_done = 0; /* a cache: at worst an account is counted again */
	w->milestone_done[w->nmilestone_done++] = account;
}

void milestone_reset(struct writer *w)
{
	w->nmilestone_batch = 0;
}

void milestone_note(struct writer *w, long long account)
{
	size_t cap = sizeof(w->milestone_batch) / sizeof(w->milestone_batch[0]);
	if (is_done(w, account))
		return;
	for (size_t i = 0; i < w->nmilestone_batch; i++)
		if (w->milestone_batch[i].account == account) {
			w->milestone_batch[i].created++;
			return;
		}
	if (w->nmilestone_batch < cap) {
		w->milestone_batch[w->nmilestone_batch].account = account;
		w->milestone_batch[w->nmilestone_batch].created = 1;
		w->milestone_batch[w->nmilestone_batch].start = -1;
		w->nmilestone_batch++;
	}
}

/* The count is capped at 50 + this batch's new rows, so an account with a million messages
 * costs as little as a new one; each account is asked about until it is seen past 50. */
int milestone_check(struct writer *w)
{
	for (size_t i = 0; i < w->nmilestone_batch; i++) {
		char acc[24], created[16];
		snprintf(acc, sizeof(acc), "%lld", w->milestone_batch[i].account);
		snprintf(created, sizeof(created), "%d", w->milestone_batch[i].created);
		const char *p[] = {acc, created};
		PGresult *r = pg_exec(
		    w->pg, "first messages",
		    "SELECT (SELECT count(*) FROM (SELECT 1 FROM messages WHERE account_id = "
		    "$1::bigint LIMIT 50 + $2::int) s), coalesce((SELECT extract(epoch FROM "
		    "min(started_at)) FROM sync_runs WHERE account_id = $1::bigint), -1)",
		    2, p);
		if (!r)
			return -1;
		long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		double start = strtod(PQgetvalue(r, 0, 1), NULL);
		PQclear(r);
		if (n - w->milestone_batch[i].created >= MILESTONE_MESSAGES)
			mark_done(w, w->milestone_batch[i].account); /* was past it before */
		else if (n >= MILESTONE_MESSAGES && start > 0)
			w->milestone_batch[i].start = start;
	}
	return 0;
}

void milestone_committed(struct writer *w)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	for (size_t i = 0; i < w->nmilestone_batch; i++) {
		if (w->milestone_batch[i].start < 0)
			continue;
		metrics_observe(MH_FIRST_MESSAGES, now - w->milestone_batch[i].start);
		mark_done(w, w->milestone_batch[i].account);
		log_info("account_id=%lld seconds=%.3f msg=\"first %d messages committed\"",
			 w->milestone_batch[i].account, now - w->milestone_batch[i].start,
			 MILESTONE_MESSAGES);
	}
	w->nmilestone_batch = 0;
}

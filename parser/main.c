/* mailpipe-parser: reads {mp}:raw, writes {mp}:parsed (stage.c, extract.c). Reads
 * configuration and loops; nothing else. */
#include "consume.h"
#include "extract.h"
#include "log.h"
#include "stage.h"

#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

int main(int argc, char **argv)
{
	struct stage st;
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mailpipe-parser (configured by the environment)\n");
		config_print_help(stderr);
		return 2;
	}
	extract_global_init();
	if (stage_init(&st, "parser", &stopping) < 0)
		return 1;
	st.redeliver_singly = 1;
	unsigned long reads = 0;
	int was_over = 0;
	long refused_ms = 0; /* Redis refused the last batch while answering (full): wait */
	while (!stopping) {
		int redelivered;
		/* Bounded memory (invariant 5): wait while the writers are behind. Entries count
		 * when no writer has taken them yet: those a writer holds include its cursor
		 * records waiting for messages still behind us in {mp}:raw, and counting them
		 * would stop us for good once there are more than the budget (a thousand accounts'
		 * first syncs at once did). Counting the stream's bytes walks all its nodes in
		 * Redis, so it is done every 8th read (and on every retry while over). */
		long long entries = rstream_undelivered(st.rc, st.cfg.key_parsed, "writers");
		int over = entries < 0 ? -1 : entries > st.cfg.raw_budget;
		if (over == 0 && (++reads % 8 == 0 || was_over)) {
			long long bytes = rstream_memory(st.rc, st.cfg.key_parsed);
			over = bytes < 0 ? -1 : bytes > st.cfg.raw_budget_bytes;
			/* Redis three quarters full (the fetchers stop at half, jobredis.c) while the
			 * parsed stream holds a 32nd of it, which the writers will delete: room for
			 * their change notices. (Not its mere entries: a cursor record waiting for
			 * messages still in {mp}:raw would have held us for good.) */
			if (over == 0) {
				long long limit = 0;
				int full = redis_memory_over(st.rc, 3, 4, &limit);
				over = full < 0 ? -1 : full > 0 && bytes > limit / 32;
			}
		}
		was_over = over > 0;
		if (over > 0) {
			usleep(50 * 1000);
			continue;
		}
		if (over < 0 && stage_reconnect(&st) < 0)
			break;
		redisReply *r = stage_next(&st, st.cfg.key_raw, "parsers", st.cfg.parser_batch, 1000,
					   &redelivered);
		if (!r) {
			if (st.rc->err && stage_reconnect(&st) < 0)
				break;
			continue;
		}
		double t0 = metrics_clock();
		int handled = parser_handle(&st, r, redelivered);
		if (handled < 0 && st.rc->err)
			stage_reconnect(&st);
		else if (handled == 0)
			metrics_observe(MH_PARSER_BATCH, metrics_clock() - t0);
		metrics_busy(metrics_clock() - t0);
		freeReplyObject(r);
		/* A full Redis refuses batch after batch alike: wait, doubling to 2 s, while the
		 * writers' deletions free its memory, rather than parse and fail each. */
		refused_ms = handled < 0 && !st.rc->err ? (refused_ms ? refused_ms * 2 : 50) : 0;
		if (refused_ms > 2000)
			refused_ms = 2000;
		if (refused_ms) {
			metrics_add(MX_ERRORS_REDIS, 1);
			usleep((useconds_t)refused_ms * 1000);
		}
	}
	log_info("msg=\"stopped\"");
	stage_release(&st);
	return 0;
}

/* mailpipe-fetcher: takes jobs from {mp}:jobs and runs them (fetch.c), one at a time; run
 * several fetchers for parallelism. Reads configuration and loops; nothing else. */
#include "fetch.h"
#include "idle.h"
#include "log.h"
#include "stage.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

int main(int argc, char **argv)
{
	struct stage st;
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mailpipe-fetcher (configured by the environment)\n");
		config_print_help(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (stage_init(&st, "fetcher", &stopping) < 0)
		return 1;
	struct fetcher f = { .cfg = &st.cfg, .rc = st.rc, .stopping = &stopping };
	/* Push: this process also keeps IDLE watches (a thread of their own), sharing the
	 * accounts with the other fetchers by lease. */
	struct idler *idler = st.cfg.idle ? idle_start(&st.cfg) : NULL;
	while (!stopping) {
		int redelivered;
		redisReply *r = stage_next(&st, st.cfg.key_jobs, "fetchers", 1, 1000, &redelivered);
		if (!r) {
			if (st.rc->err && stage_reconnect(&st) < 0)
				break;
			f.rc = st.rc;
			continue;
		}
		struct rentry *e = NULL;
		size_t n = 0;
		rstream_entries(r, &e, &n);
		for (size_t i = 0; i < n && !stopping; i++) {
			const char *ids[] = { e[i].id };
			const char *payload = rentry_get(&e[i], "job", NULL);
			json_t *job = payload ? json_loads(payload, 0, NULL) : NULL;
			if (!job) { /* deleted or malformed: nothing to do but drop it */
				log_error("entry=%s msg=\"job entry without valid JSON, dropped\"", e[i].id);
				rstream_ack(st.rc, st.cfg.key_jobs, "fetchers", ids, 1);
				continue;
			}
			f.entry_id = e[i].id;
			enum fetch_result res = fetch_run_job(&f, job);
			if (res == FETCH_BUSY) {
				/* Another fetcher holds this folder: queue the job again behind the
				 * others rather than spin on it. */
				const char *names[] = { "job" };
				const char *vals[] = { payload };
				usleep(200 * 1000);
				if (rstream_add(st.rc, st.cfg.key_jobs, 1, names, vals, NULL) == 0)
					res = FETCH_DONE;
			}
			if (res == FETCH_DONE)
				rstream_ack(st.rc, st.cfg.key_jobs, "fetchers", ids, 1);
			json_decref(job);
		}
		free(e);
		freeReplyObject(r);
	}
	idle_stop(idler);
	log_info("msg=\"stopped\"");
	stage_release(&st);
	curl_global_cleanup();
	return 0;
}

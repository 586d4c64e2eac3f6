/* Parser throughput: extract_message + enrich_message over every message of a Maildir,
 * loaded into memory first so only parsing is timed (process CPU time, one core): read from
 * the preloaded corpus, and as the parser stage gets each message (just copied into its
 * receive buffer; best of 3). Prints messages/s and MB/s; asserts nothing. Run by
 * tests/bench/run.sh. */
#include "enrich.h"
#include "extract.h"

#include "maildir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Every message of the Maildirs in memory, so that only parsing is timed. */
struct corpus {
	char **data;
	size_t *len;
	size_t n, bytes;
};

static int corpus_load(struct corpus *c, const struct names *files)
{
	c->data = calloc(files->n ? files->n : 1, sizeof(*c->data));
	c->len = calloc(files->n ? files->n : 1, sizeof(*c->len));
	if (!c->data || !c->len)
		return -ENOMEM;
	for (size_t i = 0; i < files->n; i++) {
		FILE *f = fopen(files->v[i], "rb");
		struct stat st;
		if (!f || fstat(fileno(f), &st) < 0 || !(c->data[i] = malloc((size_t)st.st_size + 1)) ||
		    fread(c->data[i], 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
			fprintf(stderr, "parser_bench: %s: cannot read\n", files->v[i]);
			if (f)
				fclose(f);
			return -EIO;
		}
		fclose(f);
		c->len[i] = (size_t)st.st_size;
		c->bytes += c->len[i];
		c->n++;
	}
	return 0;
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct corpus c = { 0 };
	struct names files = { 0 };
	if (argc != 2) {
		fprintf(stderr, "usage: parser_bench MAILDIR\n");
		return 2;
	}
	if (maildir_list(&files, argv[1]) < 0 || corpus_load(&c, &files) < 0)
		return 1;
	names_release(&files);
	if (!c.n) {
		fprintf(stderr, "parser_bench: no messages under %s\n", argv[1]);
		return 1;
	}
	extract_global_init();
	json_t *meta = json_pack("{s:s}", "account_email", "user@example.com");
	size_t errors = 0, biggest = 0;
	for (size_t i = 0; i < c.n; i++)
		biggest = c.len[i] > biggest ? c.len[i] : biggest;
	char *recv = malloc(biggest ? biggest : 1);
	/* Straight from the preloaded corpus (each message read cold from memory), then each
	 * message first copied into one receive buffer, untimed, as the parser stage gets it from
	 * Redis: the bytes are in cache when parsing starts. The latter is run three times and the
	 * fastest reported, as the machine's other load only ever adds time. */
	double best = 0;
	for (int pass = 0; pass < 4; pass++) {
		double t = 0;
		errors = 0;
		for (size_t i = 0; i < c.n; i++) {
			const char *raw = c.data[i];
			if (pass == 1) {
				memcpy(recv, c.data[i], c.len[i]);
				raw = recv;
			}
			double t0 = cpu_seconds();
			json_t *m = extract_message(raw, c.len[i], NULL);
			enrich_message(m, meta);
			t += cpu_seconds() - t0;
			errors += !json_is_null(json_object_get(m, "parse_error"));
			json_decref(m);
		}
		if (pass > 0 && (best == 0 || t < best))
			best = t;
		if (pass > 0 && pass < 3)
			continue;
		t = pass ? best : t;
		printf("parser (extract + clean + keys, one core, %s): %zu messages, %.1f MB in %.2f s "
		       "CPU = %.0f msg/s, %.1f MB/s (%zu with parse_error)\n",
		       pass ? "as received, best of 3" : "from a cold corpus", c.n, c.bytes / 1e6, t,
		       c.n / t, c.bytes / 1e6 / t, errors);
	}
	free(recv);
	json_decref(meta);
	return 0;
}

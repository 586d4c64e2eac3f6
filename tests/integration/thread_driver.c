/* Threading test driver: message files, directories or mboxes -> extract + enrich ->
 * store_messages into fresh accounts, in seeded shuffled orders and batch sizes; prints each
 * load's conversations as a partition of input indices. Compares nothing; test_threading.sh. */
#include "enrich.h"
#include "extract.h"
#include "log.h"
#include "pg.h"
#include "writer.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
	"usage: thread_driver --account NAME [--order file|SEED] [--batch N] [--headers-only]\n"
	"                     [--run SEED:BATCH[:headers]]... [--limit N] [--tsv FILE]\n"
	"                     [--out PREFIX] PATH...\n"
	"  PATH is a message file, an mbox (a file starting with \"From \"), or a directory\n"
	"  whose regular files are taken in path order. Inputs are numbered 0.. in that order.\n"
	"  --order   file (= 0) keeps input order; any other number shuffles with it as seed\n"
	"  --batch   messages per store_messages call (default 500)\n"
	"  --headers-only  store the records without bodies: threading reads headers only, and\n"
	"            indexing long bodies for search is most of a load's time\n"
	"  --run     one load (instead of --order/--batch); repeat it for several loads of the\n"
	"            inputs parsed once, into accounts NAME-sSEED-bBATCH[-h] then\n"
	"  --limit   load only the first N inputs\n"
	"  --tsv     after the first load, write one line per input: index, conversation id,\n"
	"            message-id, sent_at, from name, from email, subject, source\n"
	"  --out     write load K's partition to PREFIX.K instead of stdout\n"
	"  Replaces accounts of those names. A partition is one line per conversation: the\n"
	"  sorted input indices of its messages, lines sorted by first index.\n"
	"  Environment: MAILPIPE_DATABASE_URL (migrated schema), MAILPIPE_LOG.\n";

/* One input message; everything owned. */
struct input {
	char *raw;
	size_t len;
	char *source;	/* path, or path#N for the Nth message of an mbox */
	json_t *msg;	/* parser record; NULL past --limit */
	long long conv; /* conversation after the latest load, -1 when not stored */
};

struct inputs {
	struct input *v;
	size_t n, cap;
};

static int inputs_add(struct inputs *in, const char *raw, size_t len, const char *source)
{
	if (in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 64;
		struct input *v = realloc(in->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		in->v = v;
		in->cap = cap;
	}
	struct input *x = &in->v[in->n];
	*x = (struct input){ .raw = malloc(len + 1), .len = len, .source = strdup(source) };
	if (!x->raw || !x->source) {
		free(x->raw);
		free(x->source);
		return -ENOMEM;
	}
	memcpy(x->raw, raw, len);
	x->raw[len] = 0;
	in->n++;
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (n + 65536 > cap) {
			char *b = realloc(buf, cap = cap * 2 + 65536);
			if (!b) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Splits an mbox on lines starting "From " (the separator line itself is dropped, and so is
 * the blank line that precedes the next separator). */
static int add_mbox(struct inputs *in, const char *path, const char *buf, size_t len)
{
	size_t start = 0, k = 0;
	char source[4096];
	while (start < len) {
		const char *body = memchr(buf + start, '\n', len - start);
		if (!body)
			break;
		size_t b = (size_t)(body - buf) + 1, e = b;
		for (;;) {
			const char *nl = memchr(buf + e, '\n', len - e);
			if (!nl) {
				e = len;
				break;
			}
			e = (size_t)(nl - buf) + 1;
			if (len - e >= 5 && memcmp(buf + e, "From ", 5) == 0)
				break;
		}
		size_t end = e;
		if (end - b >= 2 && buf[end - 1] == '\n' && buf[end - 2] == '\n')
			end--;
		snprintf(source, sizeof(source), "%s#%zu", path, k++);
		if (inputs_add(in, buf + b, end - b, source) < 0)
			return -ENOMEM;
		start = e;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_path(struct inputs *in, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "thread_driver: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		char **names = NULL;
		size_t n = 0, cap = 0;
		int rc = 0;
		struct dirent *de;
		if (!d)
			return -errno;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if (n == cap) {
				char **v = realloc(names, (cap = cap * 2 + 16) * sizeof(*v));
				if (!v) {
					rc = -ENOMEM;
					break;
				}
				names = v;
			}
			size_t l = strlen(path) + strlen(de->d_name) + 2;
			if (!(names[n] = malloc(l))) {
				rc = -ENOMEM;
				break;
			}
			snprintf(names[n++], l, "%s/%s", path, de->d_name);
		}
		closedir(d);
		qsort(names, n, sizeof(*names), cmp_str);
		for (size_t i = 0; i < n; i++) {
			if (rc == 0)
				rc = add_path(in, names[i]);
			free(names[i]);
		}
		free(names);
		return rc;
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	size_t len = 0;
	char *buf = slurp(path, &len);
	if (!buf) {
		fprintf(stderr, "thread_driver: cannot read %s\n", path);
		return -EIO;
	}
	int rc = len >= 5 && memcmp(buf, "From ", 5) == 0 ? add_mbox(in, path, buf, len)
							   : inputs_add(in, buf, len, path);
	free(buf);
	return rc;
}

/* splitmix64: a shuffle that is the same on every platform for a given seed. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void shuffle(size_t *order, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	if (seed == 0)
		return;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(next_rand(&seed) % i);
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

static long long query_id(PGconn *pg, const char *what, const char *sql, int n,
			  const char *const *params)
{
	PGresult *r = pg_exec(pg, what, sql, n, params);
	long long id = -1;
	if (r && PQntuples(r) == 1)
		id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return id;
}

/* A fresh account and its one folder; an account left by an earlier run is removed first. */
static int account_create(PGconn *pg, const char *name, long long *account, long long *folder)
{
	const char *p[] = { name };
	if (pg_cmd(pg, "drop old account", "DELETE FROM accounts WHERE name = $1", 1, p) < 0)
		return -EIO;
	*account = query_id(pg, "create account",
			    "INSERT INTO accounts (name, host, port, username, secret_ref) "
			    "VALUES ($1, '127.0.0.1', 993, 'x', 'env:X') RETURNING id", 1, p);
	if (*account < 0)
		return -EIO;
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", *account);
	const char *q[] = { acc };
	*folder = query_id(pg, "create folder",
			   "INSERT INTO email_folders (account_id, provider, name, wire_name, uidvalidity) "
			   "VALUES ($1::bigint, 'imap', 'INBOX', 'INBOX', 1) RETURNING id", 1, q);
	return *folder < 0 ? -EIO : 0;
}

/* Stores the inputs in order[], n per batch. uid = input index + 1 maps rows back. */
/* The record without its bodies; a new reference. */
static json_t *headers_only_copy(json_t *msg)
{
	static const char *const bodies[] = { "body_text", "body_html", "body_clean", "snippet" };
	json_t *c = json_copy(msg);
	for (size_t b = 0; c && b < sizeof(bodies) / sizeof(bodies[0]); b++)
		json_object_set_new(c, bodies[b], json_null());
	return c;
}

static int load(struct writer *w, struct inputs *in, const size_t *order, size_t batch,
		int headers_only, long long account, long long folder)
{
	struct wmsg *m = calloc(batch, sizeof(*m));
	int rc = 0;
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < in->n && rc == 0; i += batch) {
		size_t k = in->n - i < batch ? in->n - i : batch;
		for (size_t j = 0; j < k; j++) {
			struct input *x = &in->v[order[i + j]];
			m[j] = (struct wmsg){
				.entry_id = "0-0",
				.meta = json_pack("{s:I, s:I, s:i, s:I, s:i, s:[], s:s}",
						  "account_id", (json_int_t)account,
						  "folder_id", (json_int_t)folder, "uidvalidity", 1,
						  "uid", (json_int_t)(order[i + j] + 1), "run_id", 0,
						  "flags", "internaldate", "01-Jan-2020 00:00:00 +0000"),
				.msg = headers_only ? headers_only_copy(x->msg) : json_incref(x->msg),
				.raw = x->raw,
				.raw_len = x->len,
			};
		}
		if (store_messages(w, m, k) < 0) {
			fprintf(stderr, "thread_driver: store_messages failed on batch at %zu\n", i);
			rc = -EIO;
		}
		for (size_t j = 0; j < k; j++) {
			json_decref(m[j].meta);
			json_decref(m[j].msg);
		}
	}
	free(m);
	return rc;
}

static int read_conversations(PGconn *pg, struct inputs *in, long long folder)
{
	char f[24];
	snprintf(f, sizeof(f), "%lld", folder);
	const char *p[] = { f };
	PGresult *r = pg_exec(pg, "read conversations",
			      "SELECT l.uid, coalesce(m.conversation_id, -1) FROM message_locations l "
			      "JOIN messages m ON m.id = l.message_id WHERE l.folder_id = $1::bigint",
			      1, p);
	if (!r)
		return -EIO;
	for (int i = 0; i < PQntuples(r); i++) {
		long long uid = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (uid >= 1 && (size_t)uid <= in->n)
			in->v[uid - 1].conv = strtoll(PQgetvalue(r, i, 1), NULL, 10);
	}
	PQclear(r);
	return 0;
}

static void put_field(FILE *f, const char *s)
{
	fputc('\t', f);
	for (; s && *s; s++)
		fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static int write_tsv(const char *path, const struct inputs *in)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	for (size_t i = 0; i < in->n; i++) {
		json_t *msg = in->v[i].msg, *from = json_object_get(msg, "from");
		fprintf(f, "%zu\t%lld", i, in->v[i].conv);
		put_field(f, json_string_value(json_object_get(msg, "message_id")));
		put_field(f, json_string_value(json_object_get(msg, "sent_at")));
		put_field(f, json_string_value(json_object_get(from, "name")));
		put_field(f, json_string_value(json_object_get(from, "email")));
		put_field(f, json_string_value(json_object_get(msg, "subject")));
		put_field(f, in->v[i].source);
		fputc('\n', f);
	}
	return fclose(f) == 0 ? 0 : -EIO;
}

/* Conversation ids differ between runs; the partition of input indices does not. Inputs the
 * database did not store (conv -1) each form a group of their own, marked with '!'. */
static void print_partition(FILE *f, const struct inputs *in)
{
	char *done = calloc(in->n ? in->n : 1, 1);
	for (size_t i = 0; done && i < in->n; i++) {
		if (done[i])
			continue;
		if (in->v[i].conv < 0) {
			fprintf(f, "!%zu\n", i);
			continue;
		}
		fprintf(f, "%zu", i);
		for (size_t j = i + 1; j < in->n; j++)
			if (!done[j] && in->v[j].conv == in->v[i].conv) {
				done[j] = 1;
				fprintf(f, " %zu", j);
			}
		fputc('\n', f);
	}
	free(done);
}

struct run {
	unsigned long long seed;
	size_t batch;
	int headers_only;
};

static int parse_run(const char *val, struct run *r)
{
	char *end;
	r->seed = strtoull(val, &end, 10);
	if (*end != ':')
		return -EINVAL;
	r->batch = strtoul(end + 1, &end, 10);
	r->headers_only = !strcmp(end, ":headers");
	return r->batch > 0 && (!*end || r->headers_only) ? 0 : -EINVAL;
}

/* One load into a fresh account, then its partition to PREFIX.K or stdout. */
static int run_one(struct writer *w, struct inputs *in, const struct run *r, const char *account_name,
		   size_t k, size_t nruns, const char *tsv, const char *out)
{
	char name[512], path[4096];
	long long account, folder;
	size_t *order = calloc(in->n ? in->n : 1, sizeof(*order));
	FILE *f = stdout;
	int rc = -EIO;

	if (nruns > 1)
		snprintf(name, sizeof(name), "%s-s%llu-b%zu%s", account_name, r->seed, r->batch,
			 r->headers_only ? "-h" : "");
	else
		snprintf(name, sizeof(name), "%s", account_name);
	if (!order || account_create(w->pg, name, &account, &folder) < 0)
		goto out;
	for (size_t i = 0; i < in->n; i++)
		in->v[i].conv = -1;
	shuffle(order, in->n, r->seed);
	if (load(w, in, order, r->batch, r->headers_only, account, folder) < 0 ||
	    read_conversations(w->pg, in, folder) < 0)
		goto out;
	if (k == 0 && tsv && write_tsv(tsv, in) < 0) {
		fprintf(stderr, "thread_driver: cannot write %s\n", tsv);
		goto out;
	}
	if (out) {
		snprintf(path, sizeof(path), "%s.%zu", out, k);
		if (!(f = fopen(path, "w"))) {
			fprintf(stderr, "thread_driver: cannot write %s\n", path);
			goto out;
		}
	} else if (nruns > 1) {
		printf("== run %llu:%zu%s\n", r->seed, r->batch, r->headers_only ? ":headers" : "");
	}
	print_partition(f, in);
	rc = (f == stdout ? fflush(f) : fclose(f)) == 0 ? 0 : -EIO;
out:
	free(order);
	return rc;
}

int main(int argc, char **argv)
{
	const char *account_name = NULL, *tsv = NULL, *out_prefix = NULL;
	struct run single = { 0, 500, 0 }, runs[32];
	size_t nruns = 0, limit = SIZE_MAX, total = 0;
	struct inputs in = { 0 };
	struct stage st = { .name = "thread_driver" };
	struct writer w = { .st = &st };
	int i, rc = 1;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;
		if (!strcmp(opt, "--")) {
			i++;
			break;
		}
		if (!strcmp(opt, "--headers-only")) {
			single.headers_only = 1;
			continue;
		}
		if (!val)
			goto bad;
		if (!strcmp(opt, "--account"))
			account_name = val;
		else if (!strcmp(opt, "--tsv"))
			tsv = val;
		else if (!strcmp(opt, "--out"))
			out_prefix = val;
		else if (!strcmp(opt, "--order") || !strcmp(opt, "--seed"))
			single.seed = !strcmp(val, "file") ? 0 : strtoull(val, &end, 10);
		else if (!strcmp(opt, "--batch"))
			single.batch = strtoul(val, &end, 10);
		else if (!strcmp(opt, "--limit"))
			limit = strtoul(val, &end, 10);
		else if (!strcmp(opt, "--run")) {
			if (nruns == sizeof(runs) / sizeof(runs[0]) || parse_run(val, &runs[nruns++]) < 0)
				goto bad;
		} else
			goto bad;
		i++;
	}
	if (!account_name || single.batch == 0 || i == argc)
		goto bad;
	if (nruns == 0)
		runs[nruns++] = single;

	extract_global_init();
	if (config_load(&st.cfg) < 0)
		return 1;
	/* No Redis here: the writer's change notices for apps ({mp}:changes) are not published. */
	st.cfg.changes_maxlen = 0;
	log_setup("thread_driver", st.cfg.log_level);
	for (; i < argc; i++) {
		int r = add_path(&in, argv[i]);
		total = in.n;
		if (r < 0)
			goto out;
	}
	if (in.n > limit)
		in.n = limit;
	for (size_t k = 0; k < in.n; k++) {
		json_t *msg = extract_message(in.v[k].raw, in.v[k].len, NULL);
		if (!msg || enrich_message(msg, NULL) < 0) {
			fprintf(stderr, "thread_driver: out of memory parsing %s\n", in.v[k].source);
			json_decref(msg);
			goto out;
		}
		in.v[k].msg = msg;
	}

	if (!(w.pg = pg_connect(st.cfg.database_url)) || store_prepare(w.pg) < 0)
		goto out;
	for (size_t k = 0; k < nruns; k++)
		if (run_one(&w, &in, &runs[k], account_name, k, nruns, tsv, out_prefix) < 0)
			goto out;
	rc = 0;
out:
	if (w.pg)
		PQfinish(w.pg);
	for (size_t k = 0; k < total; k++) {
		json_decref(in.v[k].msg);
		free(in.v[k].raw);
		free(in.v[k].source);
	}
	free(in.v);
	config_release(&st.cfg);
	return rc;
bad:
	fputs(usage, stderr);
	return 2;
}

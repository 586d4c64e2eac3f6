/* Writer throughput against its ceiling: store_messages over a Maildir in batches of
 * MAILPIPE_WRITER_BATCH, then a plain binary COPY of the very rows it stored into look-alike
 * tables on the same server. Prints both rates, their ratio and where the writer's time went;
 * asserts nothing. Run by tests/bench/writer_bench.sh against a private server. */
#include "enrich.h"
#include "extract.h"
#include "log.h"
#include "pg.h"
#include "writer.h"

#include "maildir.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char usage[] =
	"usage: writer_bench [--variants] MAILDIR...\n"
	"  Loads every message under the Maildirs (cur/ and new/ of each folder), extracts and\n"
	"  enriches them (not timed), then times store_messages over all of them in batches of\n"
	"  MAILPIPE_WRITER_BATCH (default 500) into a fresh account, twice: the first pass also\n"
	"  creates the server's WAL files, the second (into a second account) is the one compared.\n"
	"  Then a binary COPY of the second pass's message and location rows, one COPY per batch\n"
	"  in its own transaction, into bench_messages / bench_message_locations (LIKE the real\n"
	"  tables, with their indexes and defaults; the search vectors are copied as the writer's\n"
	"  COPY sends them, computed on its second connection). Uses\n"
	"  pg_stat_statements when the database has it.\n"
	"  --variants  also time the COPY with the real tables' foreign keys, without the GIN\n"
	"              indexes, with GIN fastupdate off, with a 64 MB GIN pending list, and the\n"
	"              plain COPY again after them (the ceiling is the faster plain pass)\n"
	"  Environment: MAILPIPE_DATABASE_URL (migrated schema), MAILPIPE_WRITER_BATCH, MAILPIPE_LOG.\n";

/* One message file; everything owned. */
struct input {
	char *raw;
	size_t len;
	char *path;
	time_t mtime;
	json_t *msg;  /* parser record */
	json_t *meta; /* the fetcher's meta, filled once the account exists */
};

struct corpus {
	struct input *v;
	size_t n, cap, bytes;
};

/* Rows of one COPY ... TO STDOUT (FORMAT binary): the stream as received, and where each
 * tuple starts and how long it is, so a run of tuples is sent back with one copy. */
struct rows {
	char *data;
	size_t len, cap;
	size_t *off, *tlen;
	size_t n;
	int *batch;	/* batch index of each row, non-decreasing */
	long long *id;	/* messages.id of each row (message rows only) */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int corpus_load(struct corpus *c, char **paths, size_t n)
{
	if (!(c->v = calloc(n ? n : 1, sizeof(*c->v))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct input *x = &c->v[c->n];
		struct stat st;
		FILE *f = fopen(paths[i], "rb");
		if (!f || fstat(fileno(f), &st) < 0) {
			fprintf(stderr, "writer_bench: %s: %s\n", paths[i], strerror(errno));
			if (f)
				fclose(f);
			return -EIO;
		}
		x->len = (size_t)st.st_size;
		x->mtime = st.st_mtime;
		x->raw = malloc(x->len + 1);
		x->path = strdup(paths[i]);
		int ok = x->raw && x->path && fread(x->raw, 1, x->len, f) == x->len;
		fclose(f);
		c->n++;
		if (!ok)
			return -EIO;
		x->raw[x->len] = 0;
		c->bytes += x->len;
	}
	return 0;
}

static void corpus_release(struct corpus *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].raw);
		free(c->v[i].path);
		json_decref(c->v[i].msg);
		json_decref(c->v[i].meta);
	}
	free(c->v);
}

/* The fetcher's meta for input i as UID i + 1: flags from the Maildir name's info part,
 * INTERNALDATE from the file's mtime, RFC822.SIZE and a MODSEQ as Dovecot reports them. */
static json_t *make_meta(const struct input *x, size_t i, long long run, long long account,
			 long long folder)
{
	static const char months[][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	static const struct {
		char c;
		const char *flag;
	} maildir_flags[] = { { 'D', "\\Draft" }, { 'F', "\\Flagged" }, { 'R', "\\Answered" },
			      { 'S', "\\Seen" },  { 'T', "\\Deleted" } };
	json_t *flags = json_array();
	const char *info = strstr(x->path, ":2,");
	for (size_t k = 0; info && k < sizeof(maildir_flags) / sizeof(maildir_flags[0]); k++)
		if (strchr(info + 3, maildir_flags[k].c))
			json_array_append_new(flags, json_string(maildir_flags[k].flag));
	struct tm tm;
	char idate[48];
	gmtime_r(&x->mtime, &tm);
	snprintf(idate, sizeof(idate), "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return json_pack("{s:I, s:I, s:I, s:i, s:I, s:o, s:s, s:I, s:I}", "run_id", (json_int_t)run,
			 "account_id", (json_int_t)account, "folder_id", (json_int_t)folder,
			 "uidvalidity", 1, "uid", (json_int_t)(i + 1), "flags", flags,
			 "internaldate", idate, "size", (json_int_t)x->len, "modseq",
			 (json_int_t)(i + 1));
}

/* The first value of a query's first row, or NULL (no row, or an error: silent, the callers
 * treat a missing value as "not available"). Caller frees. */
static char *query_value(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	char *v = NULL;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static int exec_ok(PGconn *pg, const char *what, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok && what)
		fprintf(stderr, "writer_bench: %s: %s", what, PQerrorMessage(pg));
	PQclear(r);
	return ok ? 0 : -EIO;
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

/* A fresh account with one folder and a running sync run, as `mailpipe sync` leaves them
 * before the fetcher's first record; an account of that name from an earlier run goes first. */
static int account_create(PGconn *pg, const char *name, long long *account, long long *folder,
			  long long *run)
{
	const char *p[] = { name };
	char acc[24], fol[24], rn[24];
	if (pg_cmd(pg, "drop old account", "DELETE FROM accounts WHERE name = $1", 1, p) < 0)
		return -EIO;
	*account = query_id(pg, "create account",
			    "INSERT INTO accounts (name, host, port, username, secret_ref, email) "
			    "VALUES ($1, '127.0.0.1', 993, 'bench', 'env:X', 'bench@example.org') "
			    "RETURNING id", 1, p);
	if (*account < 0)
		return -EIO;
	snprintf(acc, sizeof(acc), "%lld", *account);
	const char *q[] = { acc };
	*folder = query_id(pg, "create folder",
			   "INSERT INTO email_folders (account_id, provider, name, wire_name, uidvalidity) "
			   "VALUES ($1::bigint, 'imap', 'INBOX', 'INBOX', 1) RETURNING id", 1, q);
	*run = query_id(pg, "create run",
			"INSERT INTO sync_runs (account_id) VALUES ($1::bigint) RETURNING run_id", 1, q);
	if (*folder < 0 || *run < 0)
		return -EIO;
	snprintf(fol, sizeof(fol), "%lld", *folder);
	snprintf(rn, sizeof(rn), "%lld", *run);
	const char *r[] = { rn, fol, acc };
	return pg_cmd(pg, "create run folder",
		      "INSERT INTO sync_run_folders (account_id, run_id, folder_id, uidvalidity) "
		      "VALUES ($3::bigint, $1::bigint, $2::bigint, 1)", 3, r);
}

/* Levels the ground before a timed pass: dirty buffers of the previous pass are written now,
 * not during this one, and each pass starts its full-page images afresh. Needs pg_checkpoint
 * (granted by writer_bench.sh); without it the pass just runs. */
static void checkpoint(PGconn *pg)
{
	PQclear(PQexec(pg, "CHECKPOINT"));
}

/* store_messages over the whole corpus, batch at a time, as the writer's loop calls it. */
static int writer_pass(struct writer *w, struct corpus *c, size_t batch, long long run,
		       long long account, long long folder, double *seconds)
{
	struct wmsg *m = calloc(batch, sizeof(*m));
	int rc = 0;
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		json_decref(c->v[i].meta);
		if (!(c->v[i].meta = make_meta(&c->v[i], i, run, account, folder))) {
			free(m);
			return -ENOMEM;
		}
	}
	checkpoint(w->pg);
	double t0 = now();
	for (size_t i = 0; i < c->n && rc == 0; i += batch) {
		size_t k = c->n - i < batch ? c->n - i : batch;
		for (size_t j = 0; j < k; j++)
			m[j] = (struct wmsg){ .entry_id = "0-0",
					      .meta = c->v[i + j].meta,
					      .msg = c->v[i + j].msg,
					      .raw = c->v[i + j].raw,
					      .raw_len = c->v[i + j].len };
		if (store_messages(w, m, k) < 0) {
			fprintf(stderr, "writer_bench: store_messages failed on the batch at %zu\n", i);
			rc = -EIO;
		}
	}
	*seconds = now() - t0;
	free(m);
	return rc;
}

/* ---- the ceiling: the same rows by binary COPY ---- */

static const char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n";

static int rows_append(struct rows *r, const char *p, size_t n)
{
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 1 << 20;
		while (cap < r->len + n)
			cap *= 2;
		char *d = realloc(r->data, cap);
		if (!d)
			return -ENOMEM;
		r->data = d;
		r->cap = cap;
	}
	memcpy(r->data + r->len, p, n);
	r->len += n;
	return 0;
}

static uint32_t be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Splits a binary COPY stream into tuples (header, then int16 field count and per field an
 * int32 length, -1 for NULL, and the bytes; int16 -1 ends it). */
static int rows_index(struct rows *r)
{
	size_t p = 19, cap = 0;
	if (r->len < 19 || memcmp(r->data, COPY_SIGNATURE, 11) != 0)
		return -EINVAL;
	p += be32(r->data + 15);
	while (p + 2 <= r->len) {
		int16_t nf = (int16_t)((unsigned char)r->data[p] << 8 | (unsigned char)r->data[p + 1]);
		if (nf < 0)
			return 0;
		size_t start = p;
		p += 2;
		for (int f = 0; f < nf; f++) {
			if (p + 4 > r->len)
				return -EINVAL;
			int32_t l = (int32_t)be32(r->data + p);
			p += 4 + (l > 0 ? (size_t)l : 0);
		}
		if (p > r->len)
			return -EINVAL;
		if (r->n == cap) {
			cap = cap ? cap * 2 : 4096;
			size_t *o = realloc(r->off, cap * sizeof(*o)), *t;
			if (o)
				r->off = o;
			t = realloc(r->tlen, cap * sizeof(*t));
			if (t)
				r->tlen = t;
			if (!o || !t)
				return -ENOMEM;
		}
		r->off[r->n] = start;
		r->tlen[r->n++] = p - start;
	}
	return -EINVAL;
}

static int copy_out(PGconn *pg, const char *sql, struct rows *r)
{
	PGresult *res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		fprintf(stderr, "writer_bench: %s: %s", sql, PQerrorMessage(pg));
		PQclear(res);
		return -EIO;
	}
	PQclear(res);
	char *buf;
	int n, rc = 0;
	while ((n = PQgetCopyData(pg, &buf, 0)) > 0) {
		if (rc == 0)
			rc = rows_append(r, buf, (size_t)n);
		PQfreemem(buf);
	}
	res = PQgetResult(pg);
	if (n != -1 || PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = -EIO;
	PQclear(res);
	while ((res = PQgetResult(pg)))
		PQclear(res);
	return rc < 0 ? rc : rows_index(r);
}

static void rows_release(struct rows *r)
{
	free(r->data);
	free(r->off);
	free(r->tlen);
	free(r->batch);
	free(r->id);
}

/* Batch index (and id) of each row, from a query returning them in the COPY's row order. */
static int rows_batches(PGconn *pg, struct rows *r, const char *sql, int with_id)
{
	PGresult *res = PQexec(pg, sql);
	int rc = -EIO;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != r->n) {
		fprintf(stderr, "writer_bench: batch keys: %d rows for %zu tuples %s",
			PQntuples(res), r->n, PQerrorMessage(pg));
		goto out;
	}
	r->batch = calloc(r->n ? r->n : 1, sizeof(*r->batch));
	r->id = calloc(r->n ? r->n : 1, sizeof(*r->id));
	if (!r->batch || !r->id)
		goto out;
	for (size_t i = 0; i < r->n; i++) {
		r->batch[i] = (int)strtol(PQgetvalue(res, (int)i, 0), NULL, 10);
		if (with_id)
			r->id[i] = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
		if (i && r->batch[i] < r->batch[i - 1]) {
			fprintf(stderr, "writer_bench: rows are not in batch order\n");
			goto out;
		}
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Sends rows [*next, first of a later batch) with one COPY; advances *next. */
static int copy_in(PGconn *pg, const char *table, const char *cols, struct rows *r, size_t *next,
		   int batch)
{
	static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	static const char trailer[2] = { '\377', '\377' };
	char sql[8192];
	size_t a = *next, b = a;
	while (b < r->n && r->batch[b] == batch)
		b++;
	if (a == b)
		return 0;
	snprintf(sql, sizeof(sql), "COPY %s (%s) FROM STDIN (FORMAT binary)", table, cols);
	PGresult *res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		fprintf(stderr, "writer_bench: %s: %s", sql, PQerrorMessage(pg));
		PQclear(res);
		return -EIO;
	}
	PQclear(res);
	const char *p = r->data + r->off[a];
	size_t len = r->off[b - 1] + r->tlen[b - 1] - r->off[a];
	int ok = PQputCopyData(pg, header, sizeof(header)) == 1;
	for (size_t o = 0; ok && o < len; o += 1 << 20)
		ok = PQputCopyData(pg, p + o, (int)(len - o < (1 << 20) ? len - o : 1 << 20)) == 1;
	ok = ok && PQputCopyData(pg, trailer, sizeof(trailer)) == 1;
	ok = PQputCopyEnd(pg, ok ? NULL : "writer_bench: send failed") == 1 && ok;
	res = PQgetResult(pg);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "writer_bench: copy into %s: %s", table, PQerrorMessage(pg));
		ok = 0;
	}
	PQclear(res);
	while ((res = PQgetResult(pg)))
		PQclear(res);
	*next = b;
	return ok ? 0 : -EIO;
}

/* How a ceiling pass differs from the plain LIKE copy of the tables. */
enum variant {
	V_PLAIN, V_FOREIGN_KEYS, V_NO_GIN, V_GIN_NOFASTUPDATE, V_GIN_PENDING_64MB, V_PLAIN_AGAIN,
	V_COUNT
};

static const char *const variant_names[V_COUNT] = {
	"COPY ceiling",
	"  with the real tables' foreign keys (checked per row, as the writer's rows are)",
	"  without the GIN indexes (search vector, trigram)",
	"  GIN fastupdate = off",
	"  GIN gin_pending_list_limit = 64MB",
	"  the plain COPY again, after the others",
};

static int bench_tables(PGconn *pg, enum variant v)
{
	char sql[1024];
	if (exec_ok(pg, "drop bench tables",
		    "DROP TABLE IF EXISTS bench_message_locations, bench_messages") < 0)
		return -EIO;
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE bench_messages (LIKE messages INCLUDING DEFAULTS INCLUDING INDEXES"
		 " INCLUDING GENERATED INCLUDING COMPRESSION INCLUDING CONSTRAINTS) "
		 "WITH (autovacuum_enabled = off)");
	if (exec_ok(pg, "create bench_messages", sql) < 0 ||
	    exec_ok(pg, "create bench_message_locations",
		    "CREATE TABLE bench_message_locations (LIKE message_locations INCLUDING DEFAULTS "
		    "INCLUDING INDEXES INCLUDING GENERATED INCLUDING COMPRESSION INCLUDING CONSTRAINTS) "
		    "WITH (autovacuum_enabled = off)") < 0)
		return -EIO;
	/* The GIN indexes LIKE copied (search vector, trigram), whatever they are named. */
	char *gin = query_value(pg, "SELECT string_agg(quote_ident(c.relname), ',') FROM pg_index i "
				    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
				    "WHERE i.indrelid = 'bench_messages'::regclass AND a.amname = 'gin'");
	const char *set = v == V_GIN_NOFASTUPDATE ? "fastupdate = off"
			: v == V_GIN_PENDING_64MB ? "gin_pending_list_limit = 65536" : NULL;
	int rc = 0;
	sql[0] = 0;
	if (gin && v == V_NO_GIN) {
		snprintf(sql, sizeof(sql), "DROP INDEX %s", gin);
	} else if (gin && set) { /* ALTER INDEX takes one index */
		size_t k = 0;
		for (char *name = strtok(gin, ","); name && k < sizeof(sql); name = strtok(NULL, ","))
			k += (size_t)snprintf(sql + k, sizeof(sql) - k, "ALTER INDEX %s SET (%s);", name, set);
	}
	if (v == V_FOREIGN_KEYS)
		snprintf(sql, sizeof(sql),
			 "ALTER TABLE bench_messages ADD FOREIGN KEY (account_id) REFERENCES accounts, "
			 " ADD FOREIGN KEY (account_id, conversation_id) "
			 "  REFERENCES conversations (account_id, id); "
			 "ALTER TABLE bench_message_locations "
			 " ADD FOREIGN KEY (account_id, message_id) REFERENCES bench_messages (account_id, id), "
			 " ADD FOREIGN KEY (account_id, folder_id) REFERENCES email_folders (account_id, id)");
	if (sql[0])
		rc = exec_ok(pg, "alter bench tables", sql);
	free(gin);
	return rc;
}

/* One COPY per batch of each table, each batch in its own transaction. */
static int ceiling_pass(PGconn *pg, struct rows *msgs, const char *mcols, struct rows *locs,
			const char *lcols, int nbatches, double *seconds)
{
	size_t mi = 0, li = 0;
	int rc = 0;
	checkpoint(pg);
	double t0 = now();
	for (int b = 0; b < nbatches && rc == 0; b++) {
		rc = exec_ok(pg, "begin", "BEGIN");
		if (rc == 0)
			rc = copy_in(pg, "bench_messages", mcols, msgs, &mi, b);
		if (rc == 0)
			rc = copy_in(pg, "bench_message_locations", lcols, locs, &li, b);
		if (rc == 0)
			rc = exec_ok(pg, "commit", "COMMIT");
		else
			PQclear(PQexec(pg, "ROLLBACK"));
	}
	*seconds = now() - t0;
	return rc;
}

/* The columns COPY can write (all but generated ones), in table order. Caller frees. */
static char *copy_columns(PGconn *pg, const char *table)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) FROM pg_attribute "
		 "WHERE attrelid = '%s'::regclass AND attnum > 0 AND NOT attisdropped "
		 "AND attgenerated = ''", table);
	return query_value(pg, sql);
}

/* ---- where the writer's time went ---- */

static int have_pgss(PGconn *pg)
{
	char *v = query_value(pg, "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'");
	int have = v != NULL;
	free(v);
	return have && exec_ok(pg, NULL, "SELECT pg_stat_statements_reset()") == 0;
}

static void print_statement(const char *indent, const char *text, const char *calls,
			    double ms, double wall)
{
	char q[80];
	size_t k = 0;
	int space = 0;
	const char *s = text;
	for (; *s && k < 68; s++) {
		int ws = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
		if (ws && (space || k == 0))
			continue;
		q[k++] = ws ? ' ' : *s;
		space = ws;
	}
	if (*s) {
		memcpy(q + k, "...", 3);
		k += 3;
	}
	q[k] = 0;
	printf("  %s%6.2f s %5.1f%% %7s calls  %s\n", indent, ms / 1000, 100 * ms / 1000 / wall,
	       calls, q);
}

/* Server time by statement (pg_stat_statements, track = all), read right after the writer's
 * pass: the statements the writer sent, then those run inside mp_thread_keys, whose time
 * its own line already includes. NULL when unavailable. */
static PGresult *read_statements(PGconn *pg)
{
	PGresult *r = PQexec(pg,
		"SELECT toplevel, query, calls, total_exec_time FROM pg_stat_statements "
		"WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
		" AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'CHECKPOINT%' "
		" AND total_exec_time >= 5 ORDER BY NOT toplevel, total_exec_time DESC");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "writer_bench: pg_stat_statements: %s", PQerrorMessage(pg));
		PQclear(r);
		return NULL;
	}
	return r;
}

static void report_statements(PGresult *r, double wall)
{
	double top = 0, beside = 0;
	int nested_seen = 0;
	printf("writer server time by statement (pg_stat_statements; %% of the writer's wall time):\n");
	for (int i = 0; i < PQntuples(r); i++) {
		int toplevel = !strcmp(PQgetvalue(r, i, 0), "t");
		double ms = strtod(PQgetvalue(r, i, 3), NULL);
		/* The search vectors run on the writer's second connection, beside the first. */
		if (toplevel && !strncmp(PQgetvalue(r, i, 1), "SELECT mp_search_vector", 23))
			beside += ms;
		else if (toplevel)
			top += ms;
		else if (!nested_seen++)
			printf("  of which nested (foreign-key checks; mp_thread_keys on the one-by-one path):\n");
		print_statement(toplevel ? "" : "  ", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), ms, wall);
	}
	printf("  server execution on the main connection %.2f s; the rest (client, round trips, "
	       "parse/bind/plan) %.2f s = %.0f%%; the search vectors' %.2f s ran beside it\n",
	       top / 1000, wall - top / 1000, 100 * (wall - top / 1000) / wall, beside / 1000);
}

/* pg_stat_user_functions (track_functions = pl): the threading function's own figure, read
 * after this backend's pending counters are flushed. Its self time would equal its total:
 * the statements a PL/pgSQL function runs are not functions. */
static void report_function(PGconn *pg, double wall)
{
	PQclear(PQexec(pg, "SELECT pg_stat_force_next_flush()"));
	PQclear(PQexec(pg, "SELECT 1"));
	PGresult *r = PQexec(pg, "SELECT calls, total_time FROM pg_stat_user_functions "
				 "WHERE funcname = 'mp_thread_keys'");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		double total = strtod(PQgetvalue(r, 0, 1), NULL) / 1000;
		printf("mp_thread_keys (pg_stat_user_functions, planning included): %s calls, "
		       "%.2f s = %.1f%% of the writer's wall time\n",
		       PQgetvalue(r, 0, 0), total, 100 * total / wall);
	}
	PQclear(r);
}

/* The ceiling's indexes, and its stored volume next to the writer's as a check that the
 * rows are the same (the writer's heap also holds the versions its UPDATEs left). */
static void print_tables(PGconn *pg)
{
	PGresult *r = PQexec(pg, "SELECT tablename, indexdef FROM pg_indexes WHERE tablename IN "
				 "('bench_messages', 'bench_message_locations') ORDER BY 1 DESC, 2");
	printf("ceiling tables: LIKE messages / message_locations INCLUDING DEFAULTS, INDEXES, "
	       "GENERATED, COMPRESSION, CONSTRAINTS (no foreign keys, no triggers); indexes:\n");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		const char *def = PQgetvalue(r, i, 1), *on = strstr(def, " USING ");
		printf("  %s%s\n", PQgetvalue(r, i, 0), on ? on : def);
	}
	PQclear(r);
	char *v = query_value(pg,
		"SELECT format('stored: messages (both writer passes) TOAST %s MB, heap %s MB; bench_messages TOAST %s MB, heap %s MB', "
		" round(pg_relation_size(a.reltoastrelid) / 1e6, 1), round(pg_relation_size(a.oid) / 1e6, 1), "
		" round(pg_relation_size(b.reltoastrelid) / 1e6, 1), round(pg_relation_size(b.oid) / 1e6, 1)) "
		"FROM pg_class a, pg_class b WHERE a.oid = 'messages'::regclass "
		" AND b.oid = 'bench_messages'::regclass");
	if (v)
		printf("%s\n", v);
	free(v);
}

/* ---- main ---- */

struct opts {
	int variants;
};

static int prepare_rows(PGconn *pg, long long account, long long folder, size_t batch,
			struct rows *msgs, char **mcols, struct rows *locs, char **lcols)
{
	char sql[4096];
	*mcols = copy_columns(pg, "messages");
	*lcols = copy_columns(pg, "message_locations");
	if (!*mcols || !*lcols)
		return -EIO;
	/* A message belongs to the batch of its first location, as when the writer stored it. */
	snprintf(sql, sizeof(sql),
		 "COPY (SELECT %s FROM messages WHERE account_id = %lld ORDER BY id) TO STDOUT "
		 "(FORMAT binary)", *mcols, account);
	if (copy_out(pg, sql, msgs) < 0)
		return -EIO;
	snprintf(sql, sizeof(sql),
		 "SELECT (min(l.uid) - 1) / %zu, m.id FROM messages m JOIN message_locations l "
		 "ON l.message_id = m.id WHERE m.account_id = %lld GROUP BY m.id ORDER BY m.id",
		 batch, account);
	if (rows_batches(pg, msgs, sql, 1) < 0)
		return -EIO;
	snprintf(sql, sizeof(sql),
		 "COPY (SELECT %s FROM message_locations WHERE folder_id = %lld ORDER BY uid) TO STDOUT "
		 "(FORMAT binary)", *lcols, folder);
	if (copy_out(pg, sql, locs) < 0)
		return -EIO;
	snprintf(sql, sizeof(sql),
		 "SELECT (uid - 1) / %zu FROM message_locations WHERE folder_id = %lld ORDER BY uid",
		 batch, folder);
	return rows_batches(pg, locs, sql, 0);
}

int main(int argc, char **argv)
{
	struct stage st = { .name = "writer_bench" };
	struct writer w = { .st = &st };
	struct corpus c = { 0 };
	struct names files = { 0 };
	struct rows msgs = { 0 }, locs = { 0 };
	struct opts o = { 0 };
	char *mcols = NULL, *lcols = NULL, *fsync = NULL;
	PGresult *stats = NULL;
	long long account, folder, run;
	int i, rc = 1;

	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--variants"))
			o.variants = 1;
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (i == argc) {
		fputs(usage, stderr);
		return 2;
	}
	extract_global_init();
	if (config_load(&st.cfg) < 0)
		return 1;
	st.cfg.changes_maxlen = 0; /* no Redis here: no change stream, */
	st.cfg.writer_read_ahead = 0; /* and no next batch to read ahead */
	log_setup("writer_bench", st.cfg.log_level);
	size_t batch = (size_t)st.cfg.writer_batch;

	for (; i < argc; i++)
		if (maildir_list(&files, argv[i]) < 0) /* sorted over all of them */
			goto out;
	if (files.n == 0) {
		fprintf(stderr, "writer_bench: no messages found\n");
		goto out;
	}
	if (corpus_load(&c, files.v, files.n) < 0)
		goto out;
	double t0 = now();
	for (size_t k = 0; k < c.n; k++) {
		json_t *msg = extract_message(c.v[k].raw, c.v[k].len, NULL);
		if (!msg || enrich_message(msg, NULL) < 0) {
			fprintf(stderr, "writer_bench: out of memory parsing %s\n", c.v[k].path);
			json_decref(msg);
			goto out;
		}
		c.v[k].msg = msg;
	}
	printf("corpus: %zu messages, %.1f MB (extract + enrich %.1f s, not timed below)\n", c.n,
	       c.bytes / 1e6, now() - t0);

	if (!(w.pg = pg_connect(st.cfg.database_url)) || store_prepare(w.pg) < 0)
		goto out;
	fsync = query_value(w.pg, "SHOW fsync");
	if (account_create(w.pg, "writer-bench", &account, &folder, &run) < 0)
		goto out;

	/* (a) the writer's real path, twice: the first pass on a fresh server also creates the
	 * WAL segment files (zero-filled) that every later pass, the ceiling's included, recycles
	 * after a checkpoint. The second pass, into an account of its own on top of the first's
	 * rows (vacuumed and analyzed, as autovacuum would), is the one compared. */
	double tw, tcold;
	if (writer_pass(&w, &c, batch, run, account, folder, &tcold) < 0)
		goto out;
	printf("writer, first pass (fresh server, WAL files created): %zu messages in %.2f s = "
	       "%.0f rows/s\n", c.n, tcold, c.n / tcold);
	if (exec_ok(w.pg, "vacuum", "VACUUM ANALYZE messages, message_locations, conversations, "
				    "conversation_keys, contacts") < 0 ||
	    account_create(w.pg, "writer-bench-2", &account, &folder, &run) < 0)
		goto out;
	int pgss = have_pgss(w.pg);
	if (writer_pass(&w, &c, batch, run, account, folder, &tw) < 0)
		goto out;
	stats = pgss ? read_statements(w.pg) : NULL;
	printf("writer, second pass: %zu messages in %.2f s = %.0f rows/s (fsync=%s, batch %zu, %.1f MB/s)\n", c.n,
	       tw, c.n / tw, fsync ? fsync : "?", batch, c.bytes / 1e6 / tw);

	/* (b) the same rows by COPY; what the writer left behind is vacuumed first so that
	 * autovacuum does not run during the timed passes. */
	if (prepare_rows(w.pg, account, folder, batch, &msgs, &mcols, &locs, &lcols) < 0)
		goto out;
	exec_ok(w.pg, "vacuum", "VACUUM messages, message_locations, conversations, "
				"conversation_keys, contacts");
	int nbatches = (int)((c.n + batch - 1) / batch);
	double tc[V_COUNT] = { 0 };
	for (int v = 0; v < (o.variants ? V_COUNT : 1); v++) {
		if (bench_tables(w.pg, (enum variant)v) < 0)
			goto out;
		if (ceiling_pass(w.pg, &msgs, mcols, &locs, lcols, nbatches, &tc[v]) < 0)
			goto out;
		if (v == V_PLAIN) {
			print_tables(w.pg);
			printf("COPY ceiling: %zu rows in %.2f s = %.0f rows/s (%zu message rows + %zu "
			       "location rows; binary COPY, one per table and batch of %zu, one "
			       "transaction per batch)\n",
			       c.n, tc[v], c.n / tc[v], msgs.n, locs.n, batch);
		} else {
			printf("%s: %.2f s = %.0f rows/s\n", variant_names[v], tc[v], c.n / tc[v]);
		}
	}
	/* The first pass pays for a cold start the others do not (10 to 60% slower than the
	 * same COPY after them, sessions 10 to 12): the ceiling is the faster of the two. */
	double ceiling = tc[V_PLAIN];
	if (tc[V_PLAIN_AGAIN] > 0 && tc[V_PLAIN_AGAIN] < ceiling)
		ceiling = tc[V_PLAIN_AGAIN];
	printf("ratio: %.2f (writer rows/s / COPY ceiling rows/s, the faster plain pass: %.0f "
	       "rows/s; the ceiling copies the search vectors as data, the writer computes them)\n",
	       ceiling / tw, c.n / ceiling);

	if (stats)
		report_statements(stats, tw);
	else
		printf("(no pg_stat_statements in this database: no per-statement breakdown)\n");
	report_function(w.pg, tw);

	exec_ok(w.pg, "drop bench tables", "DROP TABLE IF EXISTS bench_message_locations, bench_messages");
	rc = 0;
out:
	PQclear(stats);
	if (w.pg)
		PQfinish(w.pg);
	rows_release(&msgs);
	rows_release(&locs);
	free(mcols);
	free(lcols);
	free(fsync);
	corpus_release(&c);
	names_release(&files);
	config_release(&st.cfg);
	return rc;
}

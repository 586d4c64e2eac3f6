/* Corpus test: Apache mime4j's example messages (../shared/corpora/mime4j or $MAILPIPE_CORPORA)
 * against GMime's part tree, leaf by leaf, and through extract_message. Not a test of mime4j:
 * its decoded bodies are the reference, and the allow-list below names where GMime differs. */
#include "../../parser/extract.h"

#include <dirent.h>
#include <sys/stat.h>

#include <glib.h>
#include <gmime/gmime.h>

#include "json_check.h"
#include "test.h"

/* Leaves (NAME_decoded_PATH) or whole messages (NAME) whose GMime result differs from mime4j's
 * by parser policy on malformed input, not by a bug of ours. A listed leaf that starts to match
 * is reported, so that the list shrinks rather than rots. */
static const struct {
	const char *leaf;
	const char *why;
} allowed[] = {
	{ "ending-boundaries", "delimiter lines followed by text: RFC 2046 says the line still "
	  "delimits, GMime wants only whitespace after it and finds no part" },
	{ "malformedHeader-noheader", "no header block: GMime builds no message (extract keeps the "
	  "text as body_text), mime4j reads the text as headers and gives an empty body" },
	{ "malformedHeaderStartsBody-noheader", "the same file as malformedHeader-noheader" },
	{ "malformedHeaderStartsBody-nocrlfcrlf", "mime4j's own test parses this one with "
	  "setMalformedHeaderStartsBody(true); GMime skips the bad header lines instead" },
	{ "missing-inner-boundary_decoded_1_2_1", "stale file: not in the _decoded.xml tree" },
	{ "multipartemptypart_decoded_1_2", "stale file: not in the _decoded.xml tree" },
	{ "multipartnestedemptyparts_decoded_1_1", "stale file: not in the _decoded.xml tree" },
	{ "multipartemptypart_decoded_1_1", "delimiter then close delimiter: mime4j makes one empty "
	  "part, GMime a multipart without parts" },
	{ "very-very-long-boundary", "a 7,000-character boundary (RFC 2046 allows 70) never fits "
	  "GMime's scan buffer, so no delimiter matches" },
	{ "2002_06_12_doublebound", "a delimiter line twice in a row: mime4j makes an empty part "
	  "between them, GMime skips it and the later parts shift by one" },
	{ "double-bound", "the same repeated delimiters, five times" },
	{ "multi-bad", "two Content-Type headers: mime4j takes the first (multipart), GMime the last "
	  "(text/plain)" },
};

struct tally {
	unsigned leaves, leaves_ok, by_eol, messages, messages_ok, allowed_hit, extract_bad;
};

static const char *corpora_dir(void)
{
	const char *env = getenv("MAILPIPE_CORPORA");

	return env != NULL && env[0] != '\0' ? env : "../shared/corpora";
}

/* An entry names one leaf, or a whole message (every leaf of it); *whole says which. */
static const char *allowed_reason(const char *name, const char *leaf, int *whole)
{
	size_t i;

	for (i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
		*whole = strcmp(allowed[i].leaf, name) == 0;
		if (*whole || strcmp(allowed[i].leaf, leaf) == 0)
			return allowed[i].why;
	}
	*whole = 0;
	return NULL;
}

/* Equal, or for text equal once every CRLF is read as LF: mime4j's quoted-printable decoder
 * writes each hard line break as CRLF (RFC 2045's canonical form), GMime as the message wrote
 * it; both are the same text. */
static int same_body(const guint8 *a, size_t alen, const guint8 *b, size_t blen, int text,
		     int *by_eol)
{
	size_t i = 0, j = 0;

	*by_eol = 0;
	if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0))
		return 1;
	if (!text)
		return 0;
	while (i < alen && j < blen) {
		if (a[i] == '\r' && i + 1 < alen && a[i + 1] == '\n')
			i++;
		if (b[j] == '\r' && j + 1 < blen && b[j + 1] == '\n')
			j++;
		if (a[i++] != b[j++])
			return 0;
	}
	*by_eol = i == alen && j == blen;
	return *by_eol;
}

static int read_file(const char *path, char **data, size_t *len)
{
	gsize n = 0;

	if (!g_file_get_contents(path, data, &n, NULL))
		return -1;
	*len = n;
	return 0;
}

static GByteArray *leaf_bytes(GMimeObject *obj);

/* Parses bytes as a message; NULL when GMime finds none. The caller unrefs it. */
static GMimeMessage *message_from(const guint8 *data, size_t len)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	GMimeParser *p = g_mime_parser_new_with_stream(s);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);

	g_object_unref(p);
	g_object_unref(s);
	return m;
}

/* mime4j numbers a message's body 1, a multipart's children 1..n, and an embedded message's
 * body 1 again: "1_2_1" is the body of the message in the second part. GMime keeps a
 * message/rfc822 part with a base64 or quoted-printable encoding (which RFC 2046 5.2.1 forbids
 * but senders use) as a leaf; a walk decodes it and parses the result, and the messages so
 * made are kept in owned until the caller frees it. */
static GMimeObject *part_at(GMimeMessage *m, const char *path, GPtrArray *owned)
{
	GMimeObject *obj = NULL;
	char **steps = g_strsplit(path, "_", -1);
	size_t i;

	for (i = 0; steps[i] != NULL; i++) {
		long k = strtol(steps[i], NULL, 10);

		if (i == 0) {
			obj = k == 1 ? g_mime_message_get_mime_part(m) : NULL;
		} else if (GMIME_IS_MULTIPART(obj)) {
			GMimeMultipart *mp = (GMimeMultipart *)obj;

			obj = k >= 1 && k <= g_mime_multipart_get_count(mp) ?
				      g_mime_multipart_get_part(mp, (int)k - 1) : NULL;
		} else if (GMIME_IS_MESSAGE_PART(obj) && k == 1) {
			GMimeMessage *inner = g_mime_message_part_get_message((GMimeMessagePart *)obj);

			obj = inner ? g_mime_message_get_mime_part(inner) : NULL;
		} else if (GMIME_IS_PART(obj) && k == 1 &&
			   g_mime_content_type_is_type(g_mime_object_get_content_type(obj), "message",
						       "rfc822")) {
			GByteArray *bytes = leaf_bytes(obj);
			GMimeMessage *inner = message_from(bytes->data, bytes->len);

			g_byte_array_free(bytes, TRUE);
			if (inner != NULL)
				g_ptr_array_add(owned, inner);
			obj = inner ? g_mime_message_get_mime_part(inner) : NULL;
		} else {
			obj = NULL;
		}
		if (obj == NULL)
			break;
	}
	g_strfreev(steps);
	return obj;
}

/* The transfer-decoded content of a leaf, as GMime gives it. */
static GByteArray *leaf_bytes(GMimeObject *obj)
{
	GByteArray *out = g_byte_array_new();
	GMimeStream *mem;
	GMimeDataWrapper *dw;

	if (!GMIME_IS_PART(obj))
		return out;
	dw = g_mime_part_get_content((GMimePart *)obj);
	if (dw == NULL)
		return out;
	mem = g_mime_stream_mem_new_with_byte_array(out);
	g_mime_stream_mem_set_owner((GMimeStreamMem *)mem, FALSE);
	g_mime_data_wrapper_write_to_stream(dw, mem);
	g_object_unref(mem);
	return out;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The expected leaf files of message name in dir: "name_decoded_<digits and _>.txt|.bin". */
static GPtrArray *leaf_files(const char *dir, const char *name)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	char *prefix = g_strconcat(name, "_decoded_", NULL);
	size_t plen = strlen(prefix);
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *f;

	while (d != NULL && (f = g_dir_read_name(d)) != NULL) {
		size_t flen = strlen(f), i;
		int ok = flen > plen + 4 && strncmp(f, prefix, plen) == 0 &&
			 (g_str_has_suffix(f, ".txt") || g_str_has_suffix(f, ".bin"));

		for (i = plen; ok && i < flen - 4; i++)
			ok = g_ascii_isdigit(f[i]) || f[i] == '_';
		if (ok)
			g_ptr_array_add(out, g_strdup(f));
	}
	if (d != NULL)
		g_dir_close(d);
	g_ptr_array_sort(out, by_name);
	g_free(prefix);
	return out;
}

static void check_message(const char *dir, const char *name, struct tally *t)
{
	char *path = g_strdup_printf("%s/%s.msg", dir, name), *raw = NULL;
	GPtrArray *leaves = leaf_files(dir, name);
	GPtrArray *owned = g_ptr_array_new_with_free_func(g_object_unref);
	GMimeMessage *m = NULL;
	size_t len = 0, i;
	unsigned ok = 0;
	json_t *o;

	if (read_file(path, &raw, &len) != 0) {
		printf("  %s: unreadable\n", path);
		test_case_failed = 1;
		goto out;
	}
	o = extract_message(raw, len, NULL);
	if (o == NULL || !valid_json_strings(o)) {
		printf("  %s: extract_message gave %s\n", name, o ? "invalid UTF-8" : "NULL");
		t->extract_bad++;
		test_case_failed = 1;
	}
	json_decref(o);
	if (leaves->len == 0)
		goto out; /* mime4j found no leaf body: nothing to compare */
	m = message_from((const guint8 *)raw, len);
	t->messages++;
	for (i = 0; i < leaves->len; i++) {
		const char *file = leaves->pdata[i];
		char *leaf = g_strndup(file, strlen(file) - 4);
		char *fpath = g_strdup_printf("%s/%s", dir, file);
		const char *lpath = leaf + strlen(name) + strlen("_decoded_");
		int whole;
		const char *why = allowed_reason(name, leaf, &whole);
		GByteArray *got = NULL;
		char *want = NULL;
		size_t wlen = 0;
		int match = 0, by_eol = 0;

		t->leaves++;
		if (m != NULL && read_file(fpath, &want, &wlen) == 0) {
			GMimeObject *obj = part_at(m, lpath, owned);

			got = obj ? leaf_bytes(obj) : NULL;
			match = got != NULL && same_body(got->data, got->len, (const guint8 *)want, wlen,
							 g_str_has_suffix(file, ".txt"), &by_eol);
		}
		if (match) {
			ok++;
			t->leaves_ok++;
			t->by_eol += (unsigned)by_eol;
			if (why != NULL && !whole)
				printf("  %s matches now: take it off the allow-list\n", leaf);
		} else if (why != NULL) {
			t->allowed_hit++;
		} else {
			printf("  %s: GMime gives %s (%u bytes), mime4j %zu bytes\n", leaf,
			       got ? "other bytes" : "no such leaf", got ? got->len : 0, wlen);
			test_case_failed = 1;
		}
		if (got != NULL)
			g_byte_array_free(got, TRUE);
		g_free(want);
		g_free(fpath);
		g_free(leaf);
	}
	if (ok == leaves->len) {
		int whole;

		t->messages_ok++;
		if (allowed_reason(name, name, &whole) != NULL)
			printf("  %s matches now: take it off the allow-list\n", name);
	}
out:
	if (m != NULL)
		g_object_unref(m);
	g_ptr_array_free(owned, TRUE);
	g_ptr_array_free(leaves, TRUE);
	g_free(raw);
	g_free(path);
}

static void test_mime4j_corpus(void)
{
	static const char *const sets[] = { "testmsgs", "mimetools-testmsgs" };
	struct tally t = { 0 };
	char root[4096];
	size_t s;

	snprintf(root, sizeof root, "%s/mime4j", corpora_dir());
	if (!g_file_test(root, G_FILE_TEST_IS_DIR))
		TEST_SKIP("no mime4j corpus (set MAILPIPE_CORPORA or check out ../shared/corpora)");
	for (s = 0; s < sizeof sets / sizeof sets[0]; s++) {
		char *dir = g_strdup_printf("%s/%s", root, sets[s]);
		GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
		GDir *d = g_dir_open(dir, 0, NULL);
		const char *f;
		size_t i;

		while (d != NULL && (f = g_dir_read_name(d)) != NULL) {
			if (g_str_has_suffix(f, ".msg"))
				g_ptr_array_add(names, g_strndup(f, strlen(f) - 4));
		}
		if (d != NULL)
			g_dir_close(d);
		g_ptr_array_sort(names, by_name);
		for (i = 0; i < names->len; i++)
			check_message(dir, names->pdata[i], &t);
		g_ptr_array_free(names, TRUE);
		g_free(dir);
	}
	printf("mime4j: %u/%u leaves, %u/%u messages (%u leaves equal up to CRLF/LF, %u "
	       "allow-listed)\n", t.leaves_ok, t.leaves, t.messages_ok, t.messages, t.by_eol,
	       t.allowed_hit);
	/* The corpus as checked in: a smaller count means files went missing. */
	CHECK_EQ_INT(t.leaves, 164);
	CHECK_EQ_INT(t.messages, 77);
	/* Every leaf off the allow-list matched (checked above); this catches the list growing. */
	CHECK(t.leaves_ok >= 146);
	CHECK_EQ_INT(t.extract_bad, 0);
}

int main(void)
{
	extract_global_init();
	TEST_RUN(test_mime4j_corpus);
	return test_summary();
}

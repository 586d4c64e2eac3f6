/* Corpus test: notmuch 0.37's test messages (../shared/corpora/notmuch or $MAILPIPE_CORPORA)
 * through extract_message, html_to_text and subject_base, checked against what the files and
 * notmuch's own expected outputs (expected/, T300-encoding.sh) show. */
#include "../../parser/extract.h"
#include "../../parser/html.h"
#include "../../parser/subject.h"

#include <glib.h>

#include "json_check.h"
#include "test.h"

struct parsed {
	char *path; /* relative to the notmuch corpus */
	json_t *o;
};

static const char *corpora_dir(void)
{
	const char *env = getenv("MAILPIPE_CORPORA");

	return env != NULL && env[0] != '\0' ? env : "../shared/corpora";
}

static char *notmuch_dir(void)
{
	return g_strdup_printf("%s/notmuch", corpora_dir());
}

#define NEED_CORPUS()                                                                      \
	do {                                                                               \
		char *dir_ = notmuch_dir();                                                \
		int have_ = g_file_test(dir_, G_FILE_TEST_IS_DIR);                         \
		g_free(dir_);                                                              \
		if (!have_)                                                                \
			TEST_SKIP("no notmuch corpus (set MAILPIPE_CORPORA or check out "  \
				  "../shared/corpora)");                                   \
	} while (0)

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *addr(json_t *o, const char *list, size_t i, const char *field)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(o, list), i), field));
}

static json_t *parse_file(const char *path)
{
	gchar *raw = NULL;
	gsize len = 0;
	json_t *o;

	if (!g_file_get_contents(path, &raw, &len, NULL)) {
		printf("  %s: unreadable\n", path);
		test_case_failed = 1;
		return NULL;
	}
	o = extract_message(raw, len, NULL);
	g_free(raw);
	if (o == NULL || !valid_json_strings(o)) {
		printf("  %s: extract_message gave %s\n", path, o ? "invalid strings" : "NULL");
		test_case_failed = 1;
	}
	return o;
}

/* One message of the corpus, by path relative to it. */
static json_t *parse_one(const char *rel)
{
	char *dir = notmuch_dir(), *path = g_strdup_printf("%s/%s", dir, rel);
	json_t *o = parse_file(path);

	g_free(path);
	g_free(dir);
	return o;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct parsed *)a)->path, ((const struct parsed *)b)->path);
}

static void collect(const char *root, const char *rel, GArray *out)
{
	char *dir = g_strdup_printf("%s/%s", root, rel);
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		char *sub = g_strdup_printf("%s/%s", rel, name), *full = g_strdup_printf("%s/%s", root, sub);

		if (g_file_test(full, G_FILE_TEST_IS_DIR)) {
			collect(root, sub, out);
		} else {
			struct parsed p = { sub, parse_file(full) };

			g_array_append_val(out, p);
			sub = NULL;
		}
		g_free(full);
		g_free(sub);
	}
	if (d != NULL)
		g_dir_close(d);
	g_free(dir);
}

/* Every message under rel, parsed, sorted by path. */
static GArray *parse_tree(const char *rel)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(struct parsed));
	char *root = notmuch_dir();

	collect(root, rel, out);
	g_free(root);
	g_array_sort(out, by_path);
	return out;
}

static void free_tree(GArray *a)
{
	guint i;

	for (i = 0; i < a->len; i++) {
		g_free(g_array_index(a, struct parsed, i).path);
		json_decref(g_array_index(a, struct parsed, i).o);
	}
	g_array_free(a, TRUE);
}

static guint distinct(GArray *a, const char *key)
{
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
	guint i, n;

	for (i = 0; i < a->len; i++) {
		const char *v = str(g_array_index(a, struct parsed, i).o, key);

		if (v != NULL)
			g_hash_table_add(seen, (gpointer)v);
	}
	n = g_hash_table_size(seen);
	g_hash_table_destroy(seen);
	return n;
}

/* A tag left in text: '<' then a letter or '/'. */
static int has_tag(const char *s)
{
	for (; (s = strchr(s, '<')) != NULL; s++) {
		if (g_ascii_isalpha(s[1]) || s[1] == '/')
			return 1;
	}
	return 0;
}

static void test_notmuch_every_message(void)
{
	/* Files and Message-IDs as SOURCES.txt counts them (0: not counted there), and distinct
	 * contents: duplicate/ holds different messages under one Message-ID, while the
	 * repeated IDs of default/ and lkml/ are byte-identical copies (one row each). */
	static const struct {
		const char *dir;
		guint files, ids, contents;
	} sets[] = {
		{ "broken", 3, 3, 3 },     { "duplicate", 9, 3, 9 }, { "html", 2, 2, 2 },
		{ "attachment", 1, 1, 1 }, { "mangling", 1, 1, 1 },  { "indexing", 1, 1, 1 },
		{ "default", 53, 52, 52 }, { "lkml", 210, 176, 176 }, { "threading", 12, 0, 12 },
	};
	guint total = 0;
	size_t s;

	NEED_CORPUS();
	for (s = 0; s < sizeof sets / sizeof sets[0]; s++) {
		GArray *a = parse_tree(sets[s].dir);
		guint i, synthetic = 0, errors = 0;

		for (i = 0; i < a->len; i++) {
			json_t *o = g_array_index(a, struct parsed, i).o;

			synthetic += json_is_true(json_object_get(o, "message_id_synthetic"));
			errors += !json_is_null(json_object_get(o, "parse_error"));
		}
		printf("notmuch %s: %u messages, %u distinct Message-IDs, %u with parse_error, "
		       "%u without Message-ID\n", sets[s].dir, a->len, distinct(a, "message_id"), errors,
		       synthetic);
		CHECK_EQ_INT(a->len, sets[s].files);
		if (sets[s].ids > 0)
			CHECK_EQ_INT(distinct(a, "message_id"), sets[s].ids);
		CHECK_EQ_INT(distinct(a, "content_sha256"), sets[s].contents);
		CHECK_EQ_INT(synthetic, 0);
		total += a->len;
		free_tree(a);
	}
	printf("notmuch: %u messages parsed\n", total);
}

static void test_notmuch_html(void)
{
	json_t *o;
	char *text;

	NEED_CORPUS();
	/* Only an HTML part: body_text is its rendering. notmuch's T680 checks that the value
	 * of an attribute ("a>swordfish") is not taken for text and the text after it is. */
	o = parse_one("html/attribute-text");
	CHECK_EQ_STR(str(o, "body_text"), "hunter2");
	CHECK(str(o, "body_html") != NULL && strstr(str(o, "body_html"), "swordfish") != NULL);
	json_decref(o);

	/* text/plain beside text/html: body_text is the plain part (which has its own "<http:"),
	 * so the HTML is rendered here to check it. */
	o = parse_one("html/embedded-image");
	CHECK(str(o, "body_text") != NULL && strstr(str(o, "body_text"), "Malm\xC3\xB6 2016-07-09"));
	text = str(o, "body_html") ? html_to_text(str(o, "body_html"), strlen(str(o, "body_html")), NULL)
				   : NULL;
	CHECK(text != NULL && text[0] != '\0');
	if (text != NULL) {
		CHECK(!has_tag(text));
		CHECK(strstr(text, "Malm\xC3\xB6 2016-07-09") != NULL);
		/* Table cells, a link target, an image's alt; no inline image data. */
		CHECK(strstr(text, "Item:\tTack alla trafikanter och fotg\xC3\xA4ngare! "
				   "(http://malmoborg.se/2016/07/tack-alla-trafikanter-och-fotgangare/)"));
		CHECK(strstr(text, "fram\xC3\xB6ver :-)") != NULL);
		CHECK(strstr(text, "base64") == NULL && strstr(text, "R0lGOD") == NULL);
		CHECK(strstr(text, "Filed under:\tNyheter") != NULL);
	}
	free(text);
	json_decref(o);
}

static void test_notmuch_duplicates(void)
{
	static const struct {
		const char *file, *base;
	} dup[] = {
		{ "duplicate/msg-1-1:2,", "Fix for Bug#691896 committed to git" },
		{ "duplicate/msg-1-2:2,", "Bug#691896: [87ea161] Fix for Bug#691896 committed to git" },
		{ "duplicate/msg-2-1:2,", "Bug#695159: debian-el: Shouldn't put downloaded bugs loose in ~/" },
		{ "duplicate/msg-2-2:2,", "Bug#695159: debian-el: Shouldn't put downloaded bugs loose in ~/" },
		{ "duplicate/msg-3-1:2,", "Bug#916805: Increase severity to 'serious'" },
		{ "duplicate/msg-3-2:2,", "Bug#916808: Increase severity to 'serious'" },
		{ "duplicate/msg-3-3:2,", "Bug#916807: Increase severity to 'serious'" },
		{ "duplicate/msg-3-4:2,", "Bug#916811: Increase severity to 'serious'" },
		{ "duplicate/msg-3-5:2,", "Bug#916867: Increase severity to 'serious'" },
	};
	GHashTable *hashes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	char *first_id[4] = { NULL };
	size_t i;

	NEED_CORPUS();
	for (i = 0; i < sizeof dup / sizeof dup[0]; i++) {
		json_t *o = parse_one(dup[i].file);
		int group = dup[i].file[14] - '0';
		char *base;

		if (o == NULL)
			continue;
		/* Same Message-ID within a group, different content everywhere. */
		if (first_id[group] == NULL)
			first_id[group] = g_strdup(str(o, "message_id"));
		CHECK_EQ_STR(str(o, "message_id"), first_id[group]);
		CHECK(g_hash_table_add(hashes, g_strdup(str(o, "content_sha256"))));
		base = subject_base(str(o, "subject"));
		CHECK_EQ_STR(base, dup[i].base);
		free(base);
		json_decref(o);
	}
	CHECK_EQ_INT(g_hash_table_size(hashes), 9);
	CHECK(first_id[1] && first_id[2] && first_id[3] && strcmp(first_id[1], first_id[2]) != 0);
	/* 2-1 answers the bug mail 2-2 is: only the reply is marked as one. */
	CHECK_EQ_INT(subject_is_reply("Re: Bug#695159: debian-el: Shouldn't put downloaded bugs "
				      "loose in ~/"), 1);
	for (i = 0; i < 4; i++)
		g_free(first_id[i]);
	g_hash_table_destroy(hashes);
}

static void test_notmuch_broken(void)
{
	json_t *o, *p;

	NEED_CORPUS();
	/* Two Cc headers ("Cc:" and "cc:"): both addresses are kept, and the conflict named. */
	o = parse_one("broken/broken-cc");
	CHECK_EQ_INT(json_array_size(json_object_get(o, "cc")), 2);
	CHECK_EQ_STR(addr(o, "cc", 0, "email"), "bob@example.org");
	CHECK_EQ_STR(addr(o, "cc", 0, "name"), "Bob");
	CHECK_EQ_STR(addr(o, "cc", 1, "email"), "charles@example.org");
	CHECK_EQ_STR(addr(o, "cc", 1, "name"), "Charles");
	CHECK_EQ_STR(addr(o, "to", 0, "email"), "daniel@example.org");
	CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(o, "from"), "email")),
		     "alice@example.org");
	CHECK_EQ_STR(str(o, "message_id"), "multiple-cc@example.org");
	CHECK(str(o, "parse_error") && strstr(str(o, "parse_error"), "conflicting headers"));
	json_decref(o);

	/* Two messages answering each other: extraction keeps both links as written. */
	o = parse_one("broken/loop/loop-12");
	p = parse_one("broken/loop/loop-21");
	CHECK_EQ_STR(str(o, "in_reply_to"), "mid-loop-21@example.org");
	CHECK_EQ_STR(str(p, "in_reply_to"), "mid-loop-12@example.org");
	CHECK_EQ_STR(str(o, "message_id"), str(p, "in_reply_to"));
	json_decref(o);
	json_decref(p);
}

static json_t *find_attachment(json_t *o, const char *filename)
{
	json_t *a;
	size_t i;

	json_array_foreach(json_object_get(o, "attachments"), i, a) {
		const char *f = json_string_value(json_object_get(a, "filename"));

		if (f != NULL && strcmp(f, filename) == 0)
			return a;
	}
	return NULL;
}

static void test_notmuch_attachments(void)
{
	json_t *o, *a;

	NEED_CORPUS();
	o = parse_one("attachment/x-gtar-compressed.eml");
	a = find_attachment(o, "zendesk-email-loop2.tgz");
	CHECK(a != NULL);
	if (a != NULL) {
		CHECK_EQ_STR(json_string_value(json_object_get(a, "content_type")),
			     "application/x-gtar-compressed");
		CHECK_EQ_STR(json_string_value(json_object_get(a, "disposition")), "attachment");
		/* base64 decoded: 5,368 bytes of gzip. */
		CHECK_EQ_INT(json_integer_value(json_object_get(a, "size")), 5368);
	}
	/* The RFC 2047 (UTF-8, Q) sender name, and the references in order. */
	CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(o, "from"), "name")),
		     "Antoine Beaupr\xC3\xA9");
	CHECK_EQ_INT(json_array_size(json_object_get(o, "references")), 3);
	CHECK_EQ_STR(str(o, "in_reply_to"), "87a7v42bv9.fsf@curie.anarc.at");
	CHECK_EQ_STR(str(o, "body_text"), "And obviously I forget the frigging attachment.\n\n");
	json_decref(o);

	/* An inline patch with a filename is an attachment; the text before it is the body. */
	o = parse_one("indexing/mbox-attachment.eml");
	a = find_attachment(o, "0001-test-fixups.patch");
	CHECK(a != NULL);
	if (a != NULL) {
		CHECK_EQ_STR(json_string_value(json_object_get(a, "content_type")), "text/x-diff");
		CHECK_EQ_STR(json_string_value(json_object_get(a, "disposition")), "inline");
	}
	CHECK(str(o, "body_text") && strstr(str(o, "body_text"), "I figured out the race condition"));
	CHECK(str(o, "body_text") && strstr(str(o, "body_text"), "diff --git") == NULL);
	json_decref(o);
}

/* The PGP/MIME message an Exchange server "mangled" into multipart/mixed (notmuch repairs it
 * when decrypting): here it must simply come out as its parts. */
static void test_notmuch_mangling(void)
{
	json_t *o, *atts;

	NEED_CORPUS();
	o = parse_one("mangling/mixed-up.eml");
	CHECK_EQ_STR(str(o, "subject"), "Here is the password");
	CHECK(str(o, "body_text") != NULL && str(o, "body_text")[0] == '\0');
	atts = json_object_get(o, "attachments");
	CHECK_EQ_INT(json_array_size(atts), 2);
	CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(atts, 0), "content_type")),
		     "application/pgp-encrypted");
	/* "Version: 1\r\n", base64 decoded. */
	CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(atts, 0), "size")), 12);
	CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(atts, 1), "content_type")),
		     "application/octet-stream");
	CHECK(json_is_null(json_object_get(o, "parse_error")));
	json_decref(o);
}

/* T300-encoding.sh's messages, built as its add_message does (they are not corpus files),
 * with the UTF-8 notmuch expects. */
static void test_notmuch_t300_encoding(void)
{
	static const struct {
		const char *headers, *body, *subject, *body_has;
	} cases[] = {
		{ "Subject: Message with text of unknown charset\n"
		  "Content-Type: text/plain; charset=unknown-8bit\n",
		  "irrelevant\n", "Message with text of unknown charset", "irrelevant" },
		{ "Subject: ISO-8859-2 encoded message\n"
		  "Content-Type: text/plain; charset=iso-8859-2\nContent-Transfer-Encoding: 8bit\n",
		  "Czech word tu\350\362\341\350\350\355 means pinguin's.\n",
		  "ISO-8859-2 encoded message", "tu\xC4\x8D\xC5\x88\xC3\xA1\xC4\x8D\xC4\x8D\xC3\xAD" },
		{ "Subject: =?utf-8?q?encoded word with spaces?=\n", "x\n", "encoded word with spaces",
		  NULL },
		{ "Subject: =?utf-8?q?encoded-words-back?==?utf-8?q?to-back?=\n", "x\n",
		  "encoded-words-backto-back", NULL },
		{ "Subject: =?utf-8?q?encoded?=word without=?utf-8?q?space?=\n", "x\n",
		  "encodedword withoutspace", NULL },
	};
	json_t *o;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *raw = g_strdup_printf("From: Notmuch Test Suite <test_suite@notmuchmail.org>\n"
					    "To: Notmuch Test Suite <test_suite@notmuchmail.org>\n"
					    "Message-Id: <msg-%03zu@notmuch-test-suite>\n"
					    "Date: Fri, 05 Jan 2001 15:43:57 +0000\n%s\n%s",
					    i + 1, cases[i].headers, cases[i].body);

		o = extract_message(raw, strlen(raw), NULL);
		CHECK(o != NULL && valid_json_strings(o));
		CHECK_EQ_STR(str(o, "subject"), cases[i].subject);
		if (cases[i].body_has != NULL)
			CHECK(str(o, "body_text") && strstr(str(o, "body_text"), cases[i].body_has));
		json_decref(o);
		g_free(raw);
	}
}

static void test_notmuch_encoded_headers(void)
{
	json_t *o;

	NEED_CORPUS();
	/* default/cur/52: "=?ISO-8859-1?Q?Fran=E7ois_Boulogne?=" inside quotes. */
	o = parse_one("default/cur/52:2,");
	CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(o, "from"), "name")),
		     "Fran\xC3\xA7ois Boulogne");
	json_decref(o);
	/* default/cur/53: "Essai =?iso-8859-1?Q?accentu=E9?=". */
	o = parse_one("default/cur/53:2,");
	CHECK_EQ_STR(str(o, "subject"), "Essai accentu\xC3\xA9");
	json_decref(o);
}

/* expected/notmuch-tree-tag-inbox draws every message of the default corpus as date, author
 * (20 columns) and, where it differs from the parent's, the subject. Each line with a
 * subject must be some message's date, From name (or address) and subject. */
static void test_notmuch_tree_expected(void)
{
	char *dir, *path, *contents = NULL;
	char **lines;
	GArray *a;
	guint i, checked = 0, matched = 0;

	NEED_CORPUS();
	dir = notmuch_dir();
	path = g_strdup_printf("%s/expected/notmuch-tree-tag-inbox", dir);
	if (!g_file_get_contents(path, &contents, NULL, NULL)) {
		g_free(path);
		g_free(dir);
		TEST_SKIP("no expected/notmuch-tree-tag-inbox in the notmuch corpus");
	}
	a = parse_tree("default");
	lines = g_strsplit(contents, "\n", -1);
	for (i = 0; lines[i] != NULL; i++) {
		const char *line = lines[i], *author, *arrow, *tags;
		char date[11], *who, *subject;
		guint k;
		int found = 0;

		/* "  2009-11-17  Jan Janak             ┬►[notmuch] What a great idea!   (inbox unread)" */
		if (strlen(line) < 16 || line[0] != ' ' || !g_ascii_isdigit(line[2]))
			continue;
		memcpy(date, line + 2, 10);
		date[10] = '\0';
		author = line + 14;
		arrow = strstr(author, "\xE2\x96\xBA"); /* ► */
		tags = strrchr(line, '(');
		if (arrow == NULL || tags == NULL)
			continue;
		for (who = g_strndup(author, (gsize)(arrow - author)); strlen(who) > 0;) {
			/* The tree's drawing characters are all U+25xx: drop them, then spaces. */
			size_t n = strlen(who);

			if (n >= 3 && (unsigned char)who[n - 3] == 0xE2)
				who[n - 3] = '\0';
			else if (who[n - 1] == ' ')
				who[n - 1] = '\0';
			else
				break;
		}
		subject = g_strndup(arrow + 3, (gsize)(tags - arrow - 3));
		g_strstrip(subject);
		if (strcmp(subject, "...") == 0) {
			g_free(who);
			g_free(subject);
			continue;
		}
		checked++;
		for (k = 0; k < a->len && !found; k++) {
			json_t *o = g_array_index(a, struct parsed, k).o, *from = json_object_get(o, "from");
			const char *name = json_string_value(json_object_get(from, "name"));
			const char *sent = str(o, "sent_at"), *subj = str(o, "subject");

			if (name == NULL)
				name = json_string_value(json_object_get(from, "email"));
			/* notmuch-tree shows subjects without leading "Re: ". */
			while (subj != NULL && g_ascii_strncasecmp(subj, "re:", 3) == 0)
				for (subj += 3; *subj == ' '; subj++)
					;
			found = name != NULL && g_str_has_prefix(name, who) && sent != NULL &&
				strncmp(sent, date, 10) == 0 && subj != NULL && strcmp(subj, subject) == 0;
		}
		if (found)
			matched++;
		else
			printf("  no message for tree line: %s | %s | %s\n", date, who, subject);
		g_free(who);
		g_free(subject);
	}
	printf("notmuch tree: %u/%u lines with a subject matched by date, author and subject\n",
	       matched, checked);
	CHECK(checked >= 24);
	CHECK_EQ_INT(matched, checked);
	g_strfreev(lines);
	free_tree(a);
	g_free(contents);
	g_free(path);
	g_free(dir);
}

int main(void)
{
	extract_global_init();
	TEST_RUN(test_notmuch_every_message);
	TEST_RUN(test_notmuch_html);
	TEST_RUN(test_notmuch_duplicates);
	TEST_RUN(test_notmuch_broken);
	TEST_RUN(test_notmuch_attachments);
	TEST_RUN(test_notmuch_mangling);
	TEST_RUN(test_notmuch_t300_encoding);
	TEST_RUN(test_notmuch_encoded_headers);
	TEST_RUN(test_notmuch_tree_expected);
	return test_summary();
}

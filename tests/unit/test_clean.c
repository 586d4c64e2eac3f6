/* Unit tests for parser/clean.c: each step alone and switched off, invisible characters, bad and
 * huge input, and two public corpora in ../shared/corpora (or $MAILPIPE_CORPORA): discourse's
 * email_reply_trimmer and crisp's email-forward-parser. Run by `make unit`; pure, no servers. */
#include "../../parser/clean.h"

#include <glib.h>
#include <stdint.h>
#include <time.h>

#include "test.h"

/* Set CLEAN_VERBOSE=1 to see the output of every corpus case that fails. */
static int verbose;

static char *corpus_path(const char *rel)
{
	const char *root = getenv("MAILPIPE_CORPORA");

	return g_build_filename(root && *root ? root : "../shared/corpora", rel, NULL);
}

static char *clean_str(const char *s, unsigned steps)
{
	return clean_text(s, strlen(s), steps);
}

/* Runs clean_text on s and compares with want; frees the result. */
static int cleans_to(const char *s, unsigned steps, const char *want)
{
	char *got = clean_str(s, steps);
	int ok = got && strcmp(got, want) == 0;

	if (!ok)
		printf("  cleaned:\n---\n%s\n---\n  wanted:\n---\n%s\n---\n", got ? got : "(null)", want);
	free(got);
	return ok;
}

static int has(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

/* Whitespace runs (and the ends) do not count when comparing with a corpus. */
static char *squeeze(const char *s)
{
	GString *g = g_string_new(NULL);
	int space = 0;

	for (; *s; s++) {
		if (g_ascii_isspace(*s)) {
			space = g->len > 0;
			continue;
		}
		if (space)
			g_string_append_c(g, ' ');
		space = 0;
		g_string_append_c(g, *s);
	}
	return g_string_free(g, FALSE);
}

/* Sorted names in dir that contain part (all with NULL); NULL if dir cannot be read. */
static GPtrArray *list_dir(const char *dir, const char *part)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	GPtrArray *names;
	const char *e;

	if (!d)
		return NULL;
	names = g_ptr_array_new_with_free_func(g_free);
	while ((e = g_dir_read_name(d)))
		if (!part || strstr(e, part))
			g_ptr_array_add(names, g_strdup(e));
	g_dir_close(d);
	return names;
}

static int cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static GPtrArray *sorted_dir(const char *dir, const char *part)
{
	GPtrArray *names = list_dir(dir, part);

	if (names)
		g_ptr_array_sort(names, cmp_names);
	return names;
}

/* ---- corpus 1: discourse/email_reply_trimmer (emails/NAME -> trimmed/NAME) ---- */

/* Cases whose expected output contradicts what body_clean is for, one reason each. The test
 * fails if one of them starts passing, so that the list only ever shrinks. */
static const struct {
	const char *name, *why;
} discourse_known[] = {
	{ "forwarded_apple.txt", "the trimmer drops a forwarded body; body_clean keeps it" },
	{ "forwarded_gmail.txt", "the trimmer drops a forwarded body; body_clean keeps it" },
};

static const char *discourse_why(const char *name)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(discourse_known); i++)
		if (strcmp(discourse_known[i].name, name) == 0)
			return discourse_known[i].why;
	return NULL;
}

static void test_corpus_discourse(void)
{
	char *dir = corpus_path("discourse-email_reply_trimmer");
	char *emails = g_build_filename(dir, "emails", NULL);
	GPtrArray *names = sorted_dir(emails, ".txt");
	size_t i, pass = 0;

	if (!names) {
		g_free(emails);
		g_free(dir);
		TEST_SKIP("corpus discourse-email_reply_trimmer not found (set MAILPIPE_CORPORA)");
	}
	for (i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];
		char *ep = g_build_filename(dir, "emails", name, NULL);
		char *tp = g_build_filename(dir, "trimmed", name, NULL);
		char *in = NULL, *want = NULL, *got, *a, *b;
		gsize len = 0;
		int ok;

		if (!g_file_get_contents(ep, &in, &len, NULL) ||
		    !g_file_get_contents(tp, &want, NULL, NULL)) {
			printf("  discourse %s: unreadable\n", name);
			CHECK(0);
			goto next;
		}
		got = clean_text(in, len, CLEAN_ALL);
		CHECK(got != NULL && g_utf8_validate(got, -1, NULL));
		a = squeeze(got ? got : "");
		b = squeeze(want);
		ok = strcmp(a, b) == 0;
		pass += ok;
		if (!ok && !discourse_why(name)) {
			printf("  discourse %s: differs\n", name);
			CHECK(0);
		}
		if (ok && discourse_why(name)) {
			printf("  discourse %s: passes now, take it off discourse_known\n", name);
			CHECK(0);
		}
		if (!ok && verbose)
			printf("  --- %s got:\n%s\n  --- want:\n%s\n", name, got, want);
		g_free(a);
		g_free(b);
		free(got);
	next:
		g_free(in);
		g_free(want);
		g_free(ep);
		g_free(tp);
	}
	printf("  discourse: %zu/%u\n", pass, names->len);
	for (i = 0; i < G_N_ELEMENTS(discourse_known); i++)
		printf("  discourse known: %s: %s\n", discourse_known[i].name, discourse_known[i].why);
	g_ptr_array_free(names, TRUE);
	g_free(emails);
	g_free(dir);
}

/* ---- corpus 2: crisp-oss/email-forward-parser (forwarded bodies in 13 clients) ---- */

#define CRISP_OWN_1 "Praesent suscipit egestas hendrerit."
#define CRISP_OWN_2 "Aliquam eget dui dui."
#define CRISP_BODY "Aenean quis diam urna."

static const char *const crisp_clients[] = {
	"apple_mail", "gmail", "hubspot", "ionos_one_and_one", "mailmate", "missive",
	"new_outlook_2019", "outlook_2013", "outlook_2019", "outlook_live", "thunderbird",
	"unknown", "yahoo",
};

static const struct {
	const char *name, *why;
} crisp_known[] = {
	{ "ionos_one_and_one_en_body_variant_2.txt",
	  "\"Original Message\" under the writer's text is a reply unless the Subject says "
	  "forward, and the corpus ships no subject for it" },
};

static const char *crisp_why(const char *name)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(crisp_known); i++)
		if (strcmp(crisp_known[i].name, name) == 0)
			return crisp_known[i].why;
	return NULL;
}

static size_t crisp_client(const char *name)
{
	size_t i, best = G_N_ELEMENTS(crisp_clients), blen = 0;

	for (i = 0; i < G_N_ELEMENTS(crisp_clients); i++) {
		size_t k = strlen(crisp_clients[i]);
		if (strncmp(name, crisp_clients[i], k) == 0 && name[k] == '_' && k > blen) {
			best = i;
			blen = k;
		}
	}
	return best;
}

/* The subject the fixture is paired with upstream: NAME_subject[_variant_N], the same without
 * the variant, or the client's own; NULL when there is none. */
static char *crisp_subject(const char *dir, const char *name, size_t client)
{
	char *base = g_strndup(name, strlen(name) - 4), *p = strstr(base, "_body"), *s = NULL;
	GPtrArray *tries = g_ptr_array_new_with_free_func(g_free);
	size_t i;

	if (p) {
		g_ptr_array_add(tries, g_strdup_printf("%.*s_subject%s.txt", (int)(p - base), base, p + 5));
		g_ptr_array_add(tries, g_strdup_printf("%.*s_subject.txt", (int)(p - base), base));
	}
	if (client < G_N_ELEMENTS(crisp_clients)) {
		g_ptr_array_add(tries, g_strdup_printf("%s_subject.txt", crisp_clients[client]));
		g_ptr_array_add(tries, g_strdup_printf("%s_en_subject.txt", crisp_clients[client]));
	}
	for (i = 0; i < tries->len && !s; i++) {
		char *path = g_build_filename(dir, tries->pdata[i], NULL);
		if (g_file_get_contents(path, &s, NULL, NULL))
			g_strstrip(s);
		g_free(path);
	}
	g_ptr_array_free(tries, TRUE);
	g_free(base);
	return s;
}

/* A line without its quote marks, padding, BOM and no-break spaces, for comparing lines. */
static char *line_key(const char *line)
{
	GString *g = g_string_new(NULL);
	const char *s = line;
	char *out;

	while (*s == '>' || *s == ' ' || *s == '\t')
		s++;
	for (; *s; s++) {
		if (strncmp(s, "\xEF\xBB\xBF", 3) == 0) {
			s += 2;
			continue;
		}
		if (strncmp(s, "\xC2\xA0", 2) == 0) {
			g_string_append_c(g, ' ');
			s++;
			continue;
		}
		if (*s != '\r')
			g_string_append_c(g, *s);
	}
	out = g_string_free(g, FALSE);
	return g_strstrip(out);
}

/* Checks one fixture; prints why it fails. */
static int crisp_case(const char *name, const char *in, const char *out)
{
	char **il = g_strsplit(in, "\n", -1), **ol = g_strsplit(out, "\n", -1), **p, **q;
	GHashTable *outkeys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	int ok = 1, zone = 0;

	for (q = ol; *q; q++) {
		if (has(*q, "john.doe@acme.com")) {
			printf("  crisp %s: header address left: %s\n", name, *q);
			ok = 0;
		}
		if (has(*q, "Integer consequat non purus")) {
			printf("  crisp %s: header subject left: %s\n", name, *q);
			ok = 0;
		}
		g_hash_table_add(outkeys, line_key(*q));
	}
	if (has(in, CRISP_OWN_1) && !(has(out, CRISP_OWN_1) && has(out, CRISP_OWN_2))) {
		printf("  crisp %s: forwarder's message lost\n", name);
		ok = 0;
	}
	if (has(in, CRISP_BODY) && !has(out, CRISP_BODY)) {
		printf("  crisp %s: forwarded body lost\n", name);
		ok = 0;
	}
	/* Between the forwarder's message and the forwarded body lie the separator and the
	 * header block: none of those lines may survive. */
	for (p = il; *p && has(in, CRISP_BODY); p++) {
		char *k = line_key(*p);
		if (has(*p, CRISP_BODY)) {
			g_free(k);
			break;
		}
		if (!zone && *k && strcmp(k, CRISP_OWN_1) && strcmp(k, CRISP_OWN_2))
			zone = 1;
		if (zone && *k && g_hash_table_contains(outkeys, k)) {
			printf("  crisp %s: separator/header line left: %s\n", name, k);
			ok = 0;
		}
		g_free(k);
	}
	g_hash_table_destroy(outkeys);
	g_strfreev(il);
	g_strfreev(ol);
	return ok;
}

static void test_corpus_crisp(void)
{
	char *dir = corpus_path("crisp-email-forward-parser/fixtures");
	GPtrArray *names = sorted_dir(dir, "_body");
	size_t i, pass = 0, cpass[G_N_ELEMENTS(crisp_clients) + 1] = { 0 },
		  ctotal[G_N_ELEMENTS(crisp_clients) + 1] = { 0 };

	if (!names) {
		g_free(dir);
		TEST_SKIP("corpus crisp-email-forward-parser not found (set MAILPIPE_CORPORA)");
	}
	for (i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];
		size_t client = crisp_client(name);
		char *path = g_build_filename(dir, name, NULL), *in = NULL, *subject, *out;
		gsize len = 0;
		int ok;

		if (!g_file_get_contents(path, &in, &len, NULL)) {
			printf("  crisp %s: unreadable\n", name);
			CHECK(0);
			g_free(path);
			continue;
		}
		subject = crisp_subject(dir, name, client);
		out = clean_text_subject(in, len, CLEAN_ALL, subject);
		CHECK(out != NULL && g_utf8_validate(out, -1, NULL));
		ok = out && crisp_case(name, in, out);
		pass += ok;
		ctotal[client]++;
		cpass[client] += ok;
		if (!ok && !crisp_why(name))
			CHECK(0);
		if (ok && crisp_why(name)) {
			printf("  crisp %s: passes now, take it off crisp_known\n", name);
			CHECK(0);
		}
		if (!ok && verbose)
			printf("  --- %s (subject %s) got:\n%s\n", name, subject ? subject : "-", out);
		free(out);
		g_free(subject);
		g_free(in);
		g_free(path);
	}
	for (i = 0; i <= G_N_ELEMENTS(crisp_clients); i++)
		if (ctotal[i])
			printf("  crisp %s: %zu/%zu\n",
			       i < G_N_ELEMENTS(crisp_clients) ? crisp_clients[i] : "other", cpass[i],
			       ctotal[i]);
	printf("  crisp: %zu/%u\n", pass, names->len);
	for (i = 0; i < G_N_ELEMENTS(crisp_known); i++)
		printf("  crisp known: %s: %s\n", crisp_known[i].name, crisp_known[i].why);
	CHECK(names->len > 100);
	g_ptr_array_free(names, TRUE);
	g_free(dir);
}

/* ---- the API ---- */

static void test_step_names(void)
{
	static const char *const names[] = { "forward_headers", "quotes", "signature", "footers",
					      "link_lines", "invisible", "whitespace" };
	unsigned all = 0, bit;
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(names); i++) {
		bit = clean_step_from_name(names[i]);
		CHECK_EQ_INT(bit, 1u << i);
		CHECK_EQ_STR(clean_step_name(bit), names[i]);
		all |= bit;
	}
	CHECK_EQ_INT(all, CLEAN_ALL);
	CHECK_EQ_INT(clean_step_from_name("Quotes"), 0);
	CHECK_EQ_INT(clean_step_from_name(""), 0);
	CHECK_EQ_INT(clean_step_from_name(NULL), 0);
	CHECK(clean_step_name(CLEAN_QUOTES | CLEAN_FOOTERS) == NULL);
	CHECK(clean_step_name(0) == NULL);
	CHECK(CLEANER_VERSION >= 1);
}

static void test_empty(void)
{
	char *s = clean_text("", 0, CLEAN_ALL);

	CHECK_EQ_STR(s, "");
	free(s);
	s = clean_text(NULL, 0, CLEAN_ALL);
	CHECK_EQ_STR(s, "");
	free(s);
	CHECK(cleans_to("\n\r\n  \n\t\n", CLEAN_ALL, ""));
	CHECK(cleans_to("only text", 0, "only text"));
}

/* With no step on, valid UTF-8 without NUL comes back byte for byte. */
static void test_no_steps_is_identity(void)
{
	static const char *const inputs[] = {
		"a\r\nb\r\n\r\n\r\n\r\nc  \n",
		"Hi\n\nOn Mon, Jan 6, 2025 at 10:00 AM Ann <ann@example.com> wrote:\n> old\n",
		"x\xE2\x80\x8By\xC2\xA0z\n-- \nsig\n",
		"\r\rold mac\rline ends",
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(inputs); i++)
		CHECK(cleans_to(inputs[i], 0, inputs[i]));
}

/* ---- quotes ---- */

static void test_quotes_basic(void)
{
	const char *in = "Sounds good.\n\nOn Mon, Jan 6, 2025 at 10:00 AM Ann <ann@example.com> "
			 "wrote:\n> Shall we meet?\n>\n> Ann\n";
	char *s;

	CHECK(cleans_to(in, CLEAN_ALL, "Sounds good."));
	s = clean_str(in, CLEAN_ALL & ~CLEAN_QUOTES);
	CHECK(has(s, "wrote:") && has(s, "> Shall we meet?"));
	free(s);
	/* a trailing quote without attribution goes, a message that is only a quote stays */
	CHECK(cleans_to("Yes.\n\n> Are you coming?\n", CLEAN_ALL, "Yes."));
	CHECK(cleans_to("> Only a quote.\n", CLEAN_ALL, "> Only a quote."));
}

static void test_quotes_localized(void)
{
	static const char *const attributions[] = {
		"On Mon, Jan 6, 2025 at 10:00 AM Ann Lee <ann@example.com> wrote:",
		"On 6 Jan 2025, at 10:00, Ann Lee <ann@example.com> wrote:",
		"On Mon, Jan 6, 2025 at 10:00 AM Ann Lee <ann@example.com>\nwrote:",
		"On Mon, Jan 6, 2025 at 10:00 AM Ann Lee via Group <\ngroup@example.com> wrote:",
		"Am 06.01.2025 um 10:00 schrieb Ann Lee <ann@example.com>:",
		"Ann Lee <ann@example.com> schrieb am Mo., 6. Jan. 2025, 10:00:",
		"Le lun. 6 janv. 2025 \xC3\xA0 10:00, Ann Lee <ann@example.com> a \xC3\xA9" "crit\xC2\xA0:",
		"Le 6 janv. 2025 10:00, \"Ann Lee\"\n<ann@example.com>\na \xC3\xA9" "crit :",
		"El lun, 6 ene 2025 a las 10:00, Ann Lee (<ann@example.com>) escribi\xC3\xB3:",
		"Il giorno lun 6 gen 2025 alle ore 10:00 Ann Lee <ann@example.com> ha scritto:",
		"Op ma 6 jan. 2025 om 10:00 schreef Ann Lee <ann@example.com>:",
		"Op 6 jan. 2025 om 10:00 heeft Ann Lee <ann@example.com> het volgende geschreven:",
		"Em seg., 6 de jan. de 2025 \xC3\xA0s 10:00, Ann Lee <ann@example.com> escreveu:",
		"Den m\xC3\xA5n 6 jan. 2025 kl 10:00 skrev Ann Lee <ann@example.com>:",
		"man. 6. jan. 2025 kl. 10.00 skrev Ann Lee <ann@example.com>:",
		"ma 6.1.2025 klo 10.00 Ann Lee (ann@example.com) kirjoitti:",
		"pon., 6 sty 2025 o 10:00 Ann Lee <ann@example.com> napisa\xC5\x82(a):",
		"po 6. 1. 2025 v 10:00 odes\xC3\xADlatel Ann Lee <ann@example.com> napsal:",
		"Ann Lee <ann@example.com> ezt \xC3\xADrta (id\xC5\x91pont: 2025. jan. 6., H, 10:00):",
		"\xD0\xBF\xD0\xBD, 6 \xD1\x8F\xD0\xBD\xD0\xB2. 2025\xC2\xA0\xD0\xB3. \xD0\xB2 10:00, "
		"Ann Lee <ann@example.com>:",
		"6 \xD1\x8F\xD0\xBD\xD0\xB2\xD0\xB0\xD1\x80\xD1\x8F 2025 \xD0\xB3., \xD0\xB2 10:00, Ann Lee "
		"<ann@example.com> \xD0\xBD\xD0\xB0\xD0\xBF\xD0\xB8\xD1\x81\xD0\xB0\xD0\xBB(\xD0\xB0):",
		"\xD0\xBF\xD0\xBD, 6 \xD1\x81\xD1\x96\xD1\x87. 2025\xE2\x80\xAF\xD1\x80. \xD0\xBE 10:00 Ann Lee "
		"<ann@example.com> \xD0\xBF\xD0\xB8\xD1\x88\xD0\xB5:",
		"6 Oca 2025 Pzt 10:00 tarihinde Ann Lee <ann@example.com> \xC5\x9F" "unu yazd\xC4\xB1:",
		"\xE5\x9C\xA8 2025\xE5\xB9\xB4" "1\xE6\x9C\x88" "6\xE6\x97\xA5 10:00\xEF\xBC\x8C" "Ann Lee "
		"<ann@example.com> \xE5\x86\x99\xE9\x81\x93\xEF\xBC\x9A",
		"2025\xE5\xB9\xB4" "1\xE6\x9C\x88" "6\xE6\x97\xA5(\xE6\x9C\x88) 10:00 Ann Lee <ann@example.com>:",
		"2025\xEB\x85\x84 1\xEC\x9B\x94 6\xEC\x9D\xBC (\xEC\x9B\x94) \xEC\x98\xA4\xEC\xA0\x84 10:00, "
		"Ann Lee <ann@example.com>\xEB\x8B\x98\xEC\x9D\xB4 \xEC\x9E\x91\xEC\x84\xB1:",
		"2025-01-06 10:00 GMT+01:00 Ann Lee <ann@example.com>:",
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(attributions); i++) {
		char *in = g_strdup_printf("Reply text.\n\n%s\n\n> quoted line\n> more\n",
					   attributions[i]);
		char *in2 = g_strdup_printf("Reply text.\n\n%s\n\nunquoted old text\n",
					    attributions[i]);
		if (!cleans_to(in, CLEAN_ALL, "Reply text.") ||
		    !cleans_to(in2, CLEAN_ALL, "Reply text.")) {
			printf("  attribution %zu: %s\n", i, attributions[i]);
			CHECK(0);
		}
		g_free(in);
		g_free(in2);
	}
	/* not attributions: no date, no address */
	CHECK(cleans_to("Here is what I wrote:\n\nThe plan is fine.", CLEAN_ALL,
			"Here is what I wrote:\n\nThe plan is fine."));
	CHECK(cleans_to("On this day\n\nI wrote something.", CLEAN_ALL,
			"On this day\n\nI wrote something."));
}

static void test_quotes_outlook(void)
{
	CHECK(cleans_to("Fine by me.\n\n-----Original Message-----\nFrom: Ann Lee\nSent: Monday, "
			"January 6, 2025 10:00 AM\nTo: Bob\nSubject: RE: plan\n\nOld text.\n",
			CLEAN_ALL, "Fine by me."));
	CHECK(cleans_to("Fine by me.\n\n________________________________\nFrom: Ann Lee "
			"<ann@example.com>\nSent: Monday, January 6, 2025 10:00\nTo: Bob "
			"<bob@example.com>\nSubject: plan\n\nOld text.\n",
			CLEAN_ALL, "Fine by me."));
	CHECK(cleans_to("Passt.\n\nVon: Ann Lee <ann@example.com>\nGesendet: Montag, 6. Januar 2025 "
			"10:00\nAn: Bob <bob@example.com>\nBetreff: AW: Plan\n\nAlter Text.\n",
			CLEAN_ALL, "Passt."));
	CHECK(cleans_to("Fine.\n\n*From:* Ann Lee <ann@example.com>\n*Sent:* Monday, January 6, 2025"
			"\n*To:* Bob\n*Subject:* plan\n\nOld text.\n",
			CLEAN_ALL, "Fine."));
}

/* Outlook prints replies and forwards alike; the Subject decides. */
static void test_outlook_reply_or_forward(void)
{
	const char *in = "See below.\n\nFrom: Ann Lee <ann@example.com>\nSent: Monday, January 6, "
			 "2025 10:00\nTo: Bob <bob@example.com>\nSubject: Budget\n\nThe budget is "
			 "attached.\n";
	char *s;

	s = clean_text_subject(in, strlen(in), CLEAN_ALL, "RE: Budget");
	CHECK_EQ_STR(s, "See below.");
	free(s);
	s = clean_text_subject(in, strlen(in), CLEAN_ALL, NULL);
	CHECK_EQ_STR(s, "See below.");
	free(s);
	s = clean_text_subject(in, strlen(in), CLEAN_ALL, "FW: Budget");
	CHECK_EQ_STR(s, "See below.\n\nThe budget is attached.");
	free(s);
	s = clean_text_subject(in, strlen(in), CLEAN_ALL, "[team] WG: Budget");
	CHECK_EQ_STR(s, "See below.\n\nThe budget is attached.");
	free(s);
	/* the same for "-----Original Message-----", which Outlook also prints above both */
	in = "FYI\n\n-----Mensaje original-----\nDe: Ann <ann@example.com>\nEnviado el: lunes\n"
	     "Para: Bob\nAsunto: Plan\n\nEl plan.\n";
	s = clean_text_subject(in, strlen(in), CLEAN_ALL, "RV: Plan");
	CHECK_EQ_STR(s, "FYI\n\nEl plan.");
	free(s);
	s = clean_text_subject(in, strlen(in), CLEAN_ALL, "RE: Plan");
	CHECK_EQ_STR(s, "FYI");
	free(s);
	in = "See below.\n\nFrom: Ann Lee <ann@example.com>\nSent: Monday, January 6, "
	     "2025 10:00\nTo: Bob <bob@example.com>\nSubject: Budget\n\nThe budget is "
	     "attached.\n";
	/* nothing above the block: it cannot be a reply */
	CHECK(cleans_to(in + strlen("See below.\n\n"), CLEAN_ALL, "The budget is attached."));
}

/* Interleaved answers keep their quotes (they are what the answers refer to), as the
 * discourse corpus expects; only a quote left below the last answer goes. */
static void test_quotes_interleaved(void)
{
	CHECK(cleans_to("On Mon, Jan 6, 2025 at 10:00 AM Ann <ann@example.com> wrote:\n> Question "
			"one?\nAnswer one.\n\n> Question two?\nAnswer two.\n\n> Bye\n",
			CLEAN_ALL, "> Question one?\nAnswer one.\n\n> Question two?\nAnswer two."));
	CHECK(cleans_to("Hi,\nOn Mon, Jan 6, 2025 at 10:00 AM Ann <ann@example.com> wrote:\n> "
			"Question one?\nAnswer one.\n> Question two?\nAnswer two.\n",
			CLEAN_ALL, "Hi,\n> Question one?\nAnswer one.\n> Question two?\nAnswer two."));
	/* bottom-posting: the full quote above the answer goes */
	CHECK(cleans_to("On Mon, Jan 6, 2025 at 10:00 AM Ann <ann@example.com> wrote:\n> Question?"
			"\n\nAnswer.\n",
			CLEAN_ALL, "Answer."));
}

/* ---- forwards ---- */

static void test_forward_gmail(void)
{
	const char *in = "Have a look.\n\n---------- Forwarded message ---------\nFrom: Ann Lee "
			 "<ann@example.com>\nDate: Mon, Jan 6, 2025 at 10:00 AM\nSubject: Plan\nTo: "
			 "<bob@example.com>\n\n\nThe plan is ready.\n";
	char *s;

	CHECK(cleans_to(in, CLEAN_ALL, "Have a look.\n\nThe plan is ready."));
	s = clean_str(in, CLEAN_ALL & ~CLEAN_FORWARD_HEADERS);
	CHECK(has(s, "Forwarded message") && has(s, "From: Ann Lee") &&
	      has(s, "The plan is ready."));
	free(s);
	/* a forward is no reply: the quote step alone leaves it whole */
	s = clean_str(in, CLEAN_QUOTES);
	CHECK(has(s, "Forwarded message") && has(s, "The plan is ready."));
	free(s);
}

static void test_forward_localized(void)
{
	static const char *const markers[] = {
		"---------- Weitergeleitete Nachricht ---------\nVon: Ann <ann@example.com>\nDatum: "
		"Mo., 6. Jan. 2025\nBetreff: Plan\nAn: <bob@example.com>",
		"-------- Message transf\xC3\xA9r\xC3\xA9 --------\nSujet : Plan\nDate : Mon, 6 Jan 2025"
		"\nDe : Ann <ann@example.com>\nPour : bob@example.com",
		"---------- Mensaje reenviado ---------\nDe: Ann <ann@example.com>\nFecha: lunes\n"
		"Asunto: Plan\nPara: Bob",
		"Begin forwarded message:\n\n> From: Ann <ann@example.com>\n> Subject: Plan\n> Date: 6 "
		"January 2025 at 10:00\n> To: bob@example.com\n>",
		"   ----- Forwarded Message ----- From: Ann <ann@example.com>To: Bob <bob@example.com>"
		"Sent: Monday, January 6, 2025, 10:00Subject: Plan",
		"-------- \xD0\x9F\xD0\xB5\xD1\x80\xD0\xB5\xD0\xBD\xD0\xB0\xD0\xBF\xD1\x80\xD0\xB0\xD0\xB2"
		"\xD0\xBB\xD0\xB5\xD0\xBD\xD0\xBD\xD0\xBE\xD0\xB5 \xD1\x81\xD0\xBE\xD0\xBE\xD0\xB1\xD1\x89"
		"\xD0\xB5\xD0\xBD\xD0\xB8\xD0\xB5 --------\n\xD0\x9E\xD1\x82: Ann <ann@example.com>",
		"---------- \xE3\x83\xA1\xE3\x83\x83\xE3\x82\xBB\xE3\x83\xBC\xE3\x82\xB8\xE3\x82\x92\xE8"
		"\xBB\xA2\xE9\x80\x81 ---------\n\xE9\x80\x81\xE4\xBF\xA1\xE5\x85\x83\xEF\xBC\x9A"
		"Ann <ann@example.com>",
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(markers); i++) {
		char *in = g_strdup_printf("FYI\n\n%s\n\n> The plan is ready.\n", markers[i]);
		char *s = clean_str(in, CLEAN_ALL);
		/* the quoted form (Apple Mail) loses its quote marks with the header */
		if (!s || !has(s, "FYI") || !has(s, "The plan is ready.") ||
		    has(s, "ann@example.com")) {
			printf("  forward %zu:\n%s\n", i, s ? s : "(null)");
			CHECK(0);
		}
		free(s);
		g_free(in);
	}
	CHECK(cleans_to("FYI\n\nBegin forwarded message:\n\n> From: Ann <ann@example.com>\n> "
			"Subject: Plan\n>\n> The plan\n> is ready.\n",
			CLEAN_ALL, "FYI\n\nThe plan\nis ready."));
}

/* ---- signatures ---- */

static void test_signature(void)
{
	const char *in = "See you.\n\n-- \nAnn Lee\nACME\n";
	char *s;

	CHECK(cleans_to(in, CLEAN_ALL, "See you."));
	CHECK(cleans_to(in, CLEAN_ALL & ~CLEAN_SIGNATURE, "See you.\n\n--\nAnn Lee\nACME"));
	CHECK(cleans_to("OK\n\nSent from my iPhone\n", CLEAN_ALL, "OK"));
	CHECK(cleans_to("OK\n\nVon meinem iPhone gesendet\n", CLEAN_ALL, "OK"));
	CHECK(cleans_to("OK\n\nEnvoy\xC3\xA9 de mon iPhone\n", CLEAN_ALL, "OK"));
	CHECK(cleans_to("OK\n\nGet Outlook for iOS<https://aka.ms/o0ukef>\n", CLEAN_ALL, "OK"));
	CHECK(cleans_to("OK\n\nSent from Mail for Windows\n", CLEAN_ALL, "OK"));
	/* a valediction with a contact block is a signature; with a name alone it is the text */
	CHECK(cleans_to("The report is attached.\n\nBest regards,\nAnn Lee\nHead of Finance\n"
			"+1 555 010 0200\nwww.example.com\n",
			CLEAN_ALL, "The report is attached."));
	CHECK(cleans_to("The report is attached.\n\nThanks,\nAnn\n", CLEAN_ALL,
			"The report is attached.\n\nThanks,\nAnn"));
	/* ... and a postscript is text */
	CHECK(cleans_to("Done.\n\nThanks,\nAnn\nP.S. call me on +1 555 010 0200\n", CLEAN_ALL,
			"Done.\n\nThanks,\nAnn\nP.S. call me on +1 555 010 0200"));
	/* "Sent from" in a sentence is text */
	CHECK(cleans_to("The parcel?\n\nSent from the warehouse on Monday.\n", CLEAN_ALL,
			"The parcel?\n\nSent from the warehouse on Monday."));
	/* a signature line cut never empties a message */
	CHECK(cleans_to("-- \nAnn\n", CLEAN_ALL, "--\nAnn"));
	s = clean_str("See you.\n\nSent from my iPhone\n", CLEAN_ALL & ~CLEAN_SIGNATURE);
	CHECK(has(s, "Sent from my iPhone"));
	free(s);
	/* a heading underline is no separator */
	CHECK(cleans_to("Agenda\n======\n1. Budget\n2. Hiring\n", CLEAN_ALL,
			"Agenda\n======\n1. Budget\n2. Hiring"));
}

/* ---- footers ---- */

static void test_footers(void)
{
	const char *list = "Patch looks good.\n\n_______________________________________________\n"
			   "dev mailing list\ndev@lists.example.org\n"
			   "https://lists.example.org/mailman/listinfo/dev\n";
	char *s;

	CHECK(cleans_to(list, CLEAN_ALL, "Patch looks good."));
	s = clean_str(list, CLEAN_ALL & ~CLEAN_FOOTERS);
	CHECK(has(s, "dev mailing list"));
	free(s);
	CHECK(cleans_to("Thanks all.\n\n--\nYou received this message because you are subscribed to "
			"the Google Groups \"dev\" group.\nTo unsubscribe from this group, send email "
			"to dev+unsubscribe@googlegroups.com.\n",
			CLEAN_ALL, "Thanks all."));
	CHECK(cleans_to("Big sale this week!\n\nShop now.\n\nUnsubscribe | Manage preferences\n"
			"ACME Inc, 1 Main St\n",
			CLEAN_ALL, "Big sale this week!\n\nShop now."));
	CHECK(cleans_to("News.\n\nThis email was sent to bob@example.com.\nIf you no longer wish to "
			"receive these emails, click here.\n",
			CLEAN_ALL, "News."));
	CHECK(cleans_to("Invoice attached.\n\nThis e-mail and any attachments are confidential and "
			"may be privileged. If you are not the intended recipient, delete it.\n",
			CLEAN_ALL, "Invoice attached."));
	/* mail converted from HTML has no empty lines to find the footer by */
	CHECK(cleans_to("Big Sale!\nShop now <https://shop.example.com/>\nCopyright \xC2\xA9 2025 ACME, "
			"All rights reserved.\nYou are receiving this email because you opted in.\n"
			"Unsubscribe <https://example.com/u>\n",
			CLEAN_ALL, "Big Sale!\nShop now <https://shop.example.com/>"));
	/* asking to be taken off a list is text */
	CHECK(cleans_to("Hi,\n\nunsubscribe me please, I keep getting these.\n\nThanks\nBob\n",
			CLEAN_ALL, "Hi,\n\nunsubscribe me please, I keep getting these.\n\nThanks\nBob"));
	/* "This email ..." without a confidentiality word is text */
	CHECK(cleans_to("This email is about the budget.\n", CLEAN_ALL,
			"This email is about the budget."));
}

/* ---- link lines ---- */

static void test_link_lines(void)
{
	const char *in = "Read the story\nhttps://example.com/track?id=1234\nOur shop "
			 "<https://shop.example.com/>\n<https://shop.example.com/>\n[image: Logo]\n"
			 "[cid:image001.png@01D00000.00000000]\nMy notes:\nhttps://example.com/notes\n"
			 "Inline https://example.com/x stays.\n";
	char *s;

	CHECK(cleans_to(in, CLEAN_ALL,
			"Read the story\nOur shop <https://shop.example.com/>\nMy notes:\n"
			"https://example.com/notes\nInline https://example.com/x stays."));
	s = clean_str(in, CLEAN_ALL & ~CLEAN_LINK_LINES);
	CHECK(has(s, "[image: Logo]") && has(s, "https://example.com/track?id=1234"));
	free(s);
	/* a URL closing a markdown link is prose */
	CHECK(cleans_to("Our [guide](\nhttps://example.com/guide.md)\nworks.", CLEAN_ALL,
			"Our [guide](\nhttps://example.com/guide.md)\nworks."));
}

/* ---- invisible characters ---- */

static void test_invisible(void)
{
	static const char *const marks[] = {
		"\xE2\x80\x8B", "\xE2\x80\x8C", "\xE2\x80\x8D", "\xE2\x81\xA0", "\xEF\xBB\xBF",
		"\xC2\xAD", "\xE2\x80\x8E", "\xE2\x80\x8F", "\xE2\x80\xAA", "\xE2\x80\xAB",
		"\xE2\x80\xAC", "\xE2\x80\xAD", "\xE2\x80\xAE", "\xE2\x81\xA6", "\xE2\x81\xA7",
		"\xE2\x81\xA8", "\xE2\x81\xA9", "\xCD\x8F", "\x01", "\x7F", "\xC2\x85",
	};
	size_t i;
	char *s;

	for (i = 0; i < G_N_ELEMENTS(marks); i++) {
		char *in = g_strdup_printf("%sin%svis%sible%s", marks[i], marks[i], marks[i], marks[i]);
		if (!cleans_to(in, CLEAN_ALL, "invisible")) {
			printf("  mark %zu\n", i);
			CHECK(0);
		}
		CHECK(cleans_to(in, CLEAN_ALL & ~CLEAN_INVISIBLE, in));
		g_free(in);
	}
	/* no-break spaces become spaces */
	CHECK(cleans_to("a\xC2\xA0" "b\xE2\x80\xAF" "c", CLEAN_ALL, "a b c"));
	/* preheader padding of marketing mail */
	CHECK(cleans_to("Sale\xCD\x8F \xCD\x8F \xCD\x8F \xE2\x80\x8C \xE2\x80\x8C", CLEAN_ALL, "Sale"));
	/* the joiner inside an emoji sequence (family, profession) stays */
	CHECK(cleans_to("\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB", CLEAN_ALL,
			"\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB"));
	/* the classifiers see through invisible characters even when the step is off */
	s = clean_str("Yes\n\n\xEF\xBB\xBFOn Mon, Jan 6, 2025 at 10:00 AM Ann <a@example.com> wrote:\n"
		      "> q\n",
		      CLEAN_ALL & ~CLEAN_INVISIBLE);
	CHECK_EQ_STR(s, "Yes");
	free(s);
}

/* ---- whitespace ---- */

static void test_whitespace(void)
{
	CHECK(cleans_to("\r\n\r\n  \r\nline one  \r\nline two\t\r\n\r\n\r\n\r\n\r\nline three\r\n"
			"\r\n\r\n",
			CLEAN_WHITESPACE, "line one\nline two\n\nline three"));
	CHECK(cleans_to("a\rb\r\rc", CLEAN_WHITESPACE, "a\nb\n\nc"));
	CHECK(cleans_to("a  \r\n\r\n\r\n\r\nb", CLEAN_ALL & ~CLEAN_WHITESPACE, "a  \r\n\r\n\r\n\r\nb"));
	CHECK(cleans_to("    indented code\n\tkept\n", CLEAN_ALL, "    indented code\n\tkept"));
}

/* ---- hostile input ---- */

static int valid_and_bounded(const char *in, size_t len, unsigned steps)
{
	char *s = clean_text(in, len, steps);
	int ok = s && g_utf8_validate(s, -1, NULL) && strlen(s) <= 2 * len;

	free(s);
	return ok;
}

static void test_invalid_utf8(void)
{
	static const char *const bad[] = {
		"\xff", "\xc3", "abc\xe2\x82", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 too big",
		"\xc0\xaf overlong", "\xe0\x80\xaf overlong", "\xf0\x9f\x98", "> \x80\x80\x80\n\xfe",
		"On \xff\xff wrote:\n> \xc3\n", "\xc2",
	};
	static const char alphabet[] = "> \n:@-_=wrote On\xc3\xa9\xe2\x80\x8b\xff\r1/2025<";
	size_t i, k;
	uint32_t x = 12345;
	char buf[512];

	for (i = 0; i < G_N_ELEMENTS(bad); i++)
		for (k = 0; k <= CLEAN_ALL; k += 9)
			CHECK(valid_and_bounded(bad[i], strlen(bad[i]), (unsigned)k));
	/* Latin-1 and Windows-1252 bodies mislabelled as UTF-8 read as such */
	CHECK(cleans_to("caf\xe9 \x93quoted\x94 \x96 it\x92s", CLEAN_ALL,
			"caf\xc3\xa9 \"quoted\" - it's"));
	/* NULs never reach the C string */
	{
		const char in[] = "a\0b\0\0c";
		char *s = clean_text(in, sizeof(in) - 1, 0);
		CHECK_EQ_STR(s, "abc");
		free(s);
	}
	/* random bytes, biased towards the characters the classifiers look at */
	for (i = 0; i < 3000; i++) {
		size_t n = 1 + (i % 300);
		for (k = 0; k < n; k++) {
			x = x * 1103515245u + 12345u;
			buf[k] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
			if ((x >> 8) % 17 == 0)
				buf[k] = (char)(x >> 20);
		}
		CHECK(valid_and_bounded(buf, n, (unsigned)(i % 128)));
	}
}

/* ---- size and time ---- */

static double seconds(const char *in, size_t len, unsigned steps, int *ok)
{
	struct timespec a, b;
	char *s;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	s = clean_text(in, len, steps);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	*ok = s != NULL && g_utf8_validate(s, -1, NULL);
	free(s);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static char *repeat(const char *unit, size_t bytes, size_t *len)
{
	size_t u = strlen(unit), n = bytes / u, i;
	char *s = malloc(n * u + 1);

	for (i = 0; i < n; i++)
		memcpy(s + i * u, unit, u);
	s[n * u] = '\0';
	*len = n * u;
	return s;
}

/* Shapes that would be quadratic in a backtracking or look-ahead-per-line cleaner. The check
 * is relative (4x the input may take at most ~10x the time), so it holds under sanitizers. */
static void test_linear(void)
{
	static const char *const units[] = {
		"> quoted line of text\n",
		">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>\n",
		"1@a:\n",
		"From: a\nTo: b\n",
		"On 1/1/2020 a@b.c wrote:\n> q\nt\n",
		"---------- Forwarded message ---------\nFrom: a <a@b.c>\nDate: 1/1/2020\n\ntext\n",
		"wrote:\n\n",
		"Best regards,\n+1 555 0100 000\n",
		"\xE2\x80\x8B\xC2\xA0 \n",
		"https://example.com/a\n",
		"> On 1/1/2020 a@b.c wrote:\n",
		"Begin forwarded message:\n\n> From: a <a@b.c>\n> Date: 1/1/2020\n>\n> body\n",
		"---------- Forwarded message ---------\n\n\n\n",
		"------------------------------------------------------------------------------\n",
		"x",
	};
	size_t i, small = 256 * 1024, len;
	int ok;

	for (i = 0; i < G_N_ELEMENTS(units); i++) {
		char *a = repeat(units[i], small, &len);
		double t1 = seconds(a, len, CLEAN_ALL, &ok), t4;
		free(a);
		CHECK(ok);
		a = repeat(units[i], 4 * small, &len);
		t4 = seconds(a, len, CLEAN_ALL, &ok);
		free(a);
		CHECK(ok);
		if (t4 > 10 * t1 + 0.05) {
			printf("  unit %zu: %.3fs for 1 MiB vs %.3fs for 256 KiB\n", i, t4, t1);
			CHECK(0);
		}
	}
}

static void test_huge(void)
{
	size_t len;
	char *a;
	int ok;
	double t;

	a = repeat("> a quoted line of an old message\n", 5 * 1024 * 1024, &len);
	memcpy(a, "Reply\n", 6);
	t = seconds(a, len, CLEAN_ALL, &ok);
	CHECK(ok);
	printf("  5 MB of quoted lines: %.3fs\n", t);
	free(a);
	a = repeat(">", 5 * 1024 * 1024, &len);
	t = seconds(a, len, CLEAN_ALL, &ok);
	CHECK(ok);
	printf("  5 MB single line of '>': %.3fs\n", t);
	free(a);
	a = repeat("word ", 1024 * 1024, &len);
	t = seconds(a, len, CLEAN_ALL, &ok);
	CHECK(ok);
	printf("  1 MB single line: %.3fs\n", t);
	free(a);
	{
		char *s;
		a = repeat("x", 1024 * 1024, &len);
		s = clean_text(a, len, CLEAN_ALL);
		CHECK(s && strlen(s) == len);
		free(s);
		free(a);
	}
}

/* Throughput on ordinary mail: the discourse bodies over and over. Printed, not asserted. */
static void test_throughput(void)
{
	char *dir = corpus_path("discourse-email_reply_trimmer/emails");
	GPtrArray *names = sorted_dir(dir, ".txt");
	GString *g = g_string_new(NULL);
	size_t i;
	double t;
	int ok;

	if (!names) {
		g_string_free(g, TRUE);
		g_free(dir);
		TEST_SKIP("corpus discourse-email_reply_trimmer not found (set MAILPIPE_CORPORA)");
	}
	while (g->len < 16 * 1024 * 1024)
		for (i = 0; i < names->len; i++) {
			char *p = g_build_filename(dir, names->pdata[i], NULL), *s;
			gsize n;
			if (strcmp(names->pdata[i], "spam_1.txt") && strcmp(names->pdata[i], "spam_2.txt") &&
			    g_file_get_contents(p, &s, &n, NULL)) {
				/* blocks of ordinary text, as if many short messages were one */
				g_string_append_len(g, s, (gssize)n);
				g_string_append(g, "\n\nSome more ordinary text in between.\n\n");
				g_free(s);
			}
			g_free(p);
		}
	t = seconds(g->str, g->len, CLEAN_ALL, &ok);
	CHECK(ok);
	printf("  throughput: %.0f MB/s (%zu bytes in %.3fs)\n", (double)g->len / 1e6 / t, g->len, t);
	g_string_free(g, TRUE);
	g_ptr_array_free(names, TRUE);
	g_free(dir);
}

int main(void)
{
	verbose = getenv("CLEAN_VERBOSE") != NULL;
	TEST_RUN(test_step_names);
	TEST_RUN(test_empty);
	TEST_RUN(test_no_steps_is_identity);
	TEST_RUN(test_quotes_basic);
	TEST_RUN(test_quotes_localized);
	TEST_RUN(test_quotes_outlook);
	TEST_RUN(test_outlook_reply_or_forward);
	TEST_RUN(test_quotes_interleaved);
	TEST_RUN(test_forward_gmail);
	TEST_RUN(test_forward_localized);
	TEST_RUN(test_signature);
	TEST_RUN(test_footers);
	TEST_RUN(test_link_lines);
	TEST_RUN(test_invisible);
	TEST_RUN(test_whitespace);
	TEST_RUN(test_invalid_utf8);
	TEST_RUN(test_linear);
	TEST_RUN(test_huge);
	TEST_RUN(test_throughput);
	TEST_RUN(test_corpus_discourse);
	TEST_RUN(test_corpus_crisp);
	return test_summary();
}

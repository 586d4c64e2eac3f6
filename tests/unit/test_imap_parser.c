/* Unit tests for common/imap_parser.c: every case is fed whole, one byte at a time and in
 * random-sized chunks and must give identical results; then limits, garbage, and a replay of
 * MailKit's recorded server transcripts (../shared/corpora or $MAILPIPE_CORPORA). */
#include "imap_parser.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

/* A growable string for dumps. */
struct sb {
	char *s;
	size_t n, cap;
};

static void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->n + n + 1)
			cap *= 2;
		b->s = realloc(b->s, cap);
		if (!b->s)
			abort();
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_quote(struct sb *b, const char *s, size_t n)
{
	char tmp[8];

	sb_puts(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			sb_putn(b, tmp, 2);
		} else if (c == '\r') {
			sb_puts(b, "\\r");
		} else if (c == '\n') {
			sb_puts(b, "\\n");
		} else if (c == '\0') {
			sb_puts(b, "\\0");
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			sb_puts(b, tmp);
		} else {
			sb_putn(b, (const char *)&c, 1);
		}
	}
	sb_puts(b, "\"");
}

static void dump_value(struct sb *b, const struct imap_value *v)
{
	char tmp[32];

	switch (v->type) {
	case IMAP_V_ATOM:
		sb_putn(b, v->s, v->len);
		break;
	case IMAP_V_STRING:
		sb_quote(b, v->s, v->len);
		break;
	case IMAP_V_LITERAL:
		snprintf(tmp, sizeof(tmp), "{%zu}", v->len);
		sb_puts(b, tmp);
		sb_quote(b, v->s, v->len);
		break;
	case IMAP_V_NIL:
		sb_puts(b, "NIL");
		break;
	case IMAP_V_LIST:
		sb_puts(b, "(");
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				sb_puts(b, " ");
			dump_value(b, &v->items[i]);
		}
		sb_puts(b, ")");
		break;
	}
}

static const char *status_name(enum imap_status st)
{
	static const char *names[] = {"NONE", "OK", "NO", "BAD", "BYE", "PREAUTH"};

	return names[st];
}

/* One line per response: "+ [code] "text"", "TAG OK [code] "text"", "* 3 FETCH (...)". */
static void dump_response(struct sb *b, const struct imap_response *r)
{
	char tmp[32];

	if (r->kind == IMAP_RESP_CONTINUE) {
		sb_puts(b, "+");
	} else {
		sb_puts(b, r->kind == IMAP_RESP_TAGGED ? r->tag : "*");
		if (r->status != IMAP_ST_NONE) {
			sb_puts(b, " ");
			sb_puts(b, status_name(r->status));
		}
	}
	if (r->kind == IMAP_RESP_CONTINUE || r->status != IMAP_ST_NONE) {
		if (r->code) {
			sb_puts(b, " [");
			sb_puts(b, r->code);
			sb_puts(b, "]");
		}
		sb_puts(b, " ");
		sb_quote(b, r->text, strlen(r->text));
	} else {
		if (r->has_number) {
			snprintf(tmp, sizeof(tmp), " %u", r->number);
			sb_puts(b, tmp);
		}
		sb_puts(b, " ");
		sb_puts(b, r->name);
		for (size_t i = 0; i < r->nargs; i++) {
			sb_puts(b, " ");
			dump_value(b, &r->args[i]);
		}
	}
	sb_puts(b, "\n");
}

enum feed_mode { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

static uint32_t rng_next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* What a run ended with, beyond the dump. */
struct run_end {
	size_t responses;
	int rc;		/* last imap_parser_next() result: 0 or the error */
	size_t partial; /* imap_parser_buffered() at the end */
};

/* Feeds in according to mode, draining after every feed; returns the dump (caller frees),
 * ending in "ERROR <rc>: <message>" or "PARTIAL <n>" when applicable. */
static char *run_parser(const char *in, size_t len, const struct imap_limits *lim,
			enum feed_mode mode, uint32_t seed, struct run_end *end)
{
	struct imap_parser *p = imap_parser_new(lim);
	struct sb b = {0};
	size_t off = 0, count = 0;
	int rc = 0;

	if (!p)
		abort();
	sb_puts(&b, "");
	while (off < len && rc >= 0) {
		size_t chunk = len - off;
		struct imap_response *r;

		if (mode == FEED_BYTES)
			chunk = 1;
		else if (mode == FEED_RANDOM)
			chunk = 1 + rng_next(&seed) % 64;
		if (chunk > len - off)
			chunk = len - off;
		if (imap_parser_feed(p, in + off, chunk) != 0)
			abort();
		off += chunk;
		while ((rc = imap_parser_next(p, &r)) == 1) {
			dump_response(&b, r);
			count++;
		}
	}
	if (rc < 0) {
		char tmp[32];

		snprintf(tmp, sizeof(tmp), "ERROR %d: ", rc);
		sb_puts(&b, tmp);
		sb_puts(&b, imap_parser_error(p));
		sb_puts(&b, "\n");
	} else if (imap_parser_buffered(p)) {
		char tmp[32];

		snprintf(tmp, sizeof(tmp), "PARTIAL %zu\n", imap_parser_buffered(p));
		sb_puts(&b, tmp);
	}
	if (end) {
		end->responses = count;
		end->rc = rc;
		end->partial = imap_parser_buffered(p);
	}
	imap_parser_free(p);
	return b.s;
}

/* The dump of in must be `want` however the bytes are split. */
static void expect_lim(const char *in, size_t len, const struct imap_limits *lim, const char *want)
{
	char *whole = run_parser(in, len, lim, FEED_WHOLE, 0, NULL);
	char *bytes = run_parser(in, len, lim, FEED_BYTES, 0, NULL);

	CHECK_EQ_STR(whole, want);
	CHECK_EQ_STR(bytes, want);
	for (uint32_t seed = 1; seed <= 8; seed++) {
		char *rnd = run_parser(in, len, lim, FEED_RANDOM, seed * 2654435761u, NULL);

		CHECK_EQ_STR(rnd, want);
		free(rnd);
	}
	free(whole);
	free(bytes);
}

static void expect_with(const char *in, const struct imap_limits *lim, const char *want)
{
	expect_lim(in, strlen(in), lim, want);
}

static void expect(const char *in, const char *want)
{
	expect_lim(in, strlen(in), NULL, want);
}

/* The dump must start with "ERROR <code>: " and mention `needle` in the message. */
static void expect_error(const char *in, size_t len, const struct imap_limits *lim, int code,
			 const char *needle)
{
	char *whole = run_parser(in, len, lim, FEED_WHOLE, 0, NULL);
	char *bytes = run_parser(in, len, lim, FEED_BYTES, 0, NULL);
	char *rnd = run_parser(in, len, lim, FEED_RANDOM, 7, NULL);
	char prefix[32];
	const char *e = strstr(whole, "ERROR ");

	snprintf(prefix, sizeof(prefix), "ERROR %d: ", code);
	CHECK(e != NULL && strncmp(e, prefix, strlen(prefix)) == 0);
	CHECK(e != NULL && strstr(e, needle) != NULL);
	if (!e || strstr(e, needle) == NULL || strncmp(e, prefix, strlen(prefix)) != 0)
		printf("  got: %s  want %s... %s\n", whole, prefix, needle);
	CHECK_EQ_STR(bytes, whole);
	CHECK_EQ_STR(rnd, whole);
	free(whole);
	free(bytes);
	free(rnd);
}

static void expect_err(const char *in, const struct imap_limits *lim, int code, const char *needle)
{
	expect_error(in, strlen(in), lim, code, needle);
}

static void test_greeting(void)
{
	expect("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	       "AUTH=PLAIN] Dovecot ready.\r\n",
	       "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	       "AUTH=PLAIN] \"Dovecot ready.\"\n");
	expect("* OK IMAP4rev1 Service Ready\r\n", "* OK \"IMAP4rev1 Service Ready\"\n");
	expect("* PREAUTH [CAPABILITY IMAP4rev1] Logged in as joe\r\n",
	       "* PREAUTH [CAPABILITY IMAP4rev1] \"Logged in as joe\"\n");
	expect("* BYE Autologout; idle for too long\r\n",
	       "* BYE \"Autologout; idle for too long\"\n");
	expect("* OK\r\n* OK \r\n* OK [ALERT]\r\n", "* OK \"\"\n* OK \"\"\n* OK [ALERT] \"\"\n");
}

static void test_capability(void)
{
	expect("* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI AUTH=PLAIN CONDSTORE QRESYNC\r\n"
	       "A0001 OK CAPABILITY completed\r\n",
	       "* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI AUTH=PLAIN CONDSTORE QRESYNC\n"
	       "A0001 OK \"CAPABILITY completed\"\n");
	expect("* ENABLED\r\n* ENABLED QRESYNC\r\n", "* ENABLED\n* ENABLED QRESYNC\n");
}

static void test_list(void)
{
	/* Holds a NUL, so its length is not strlen(). */
	static const char in[] =
	    "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n"
	    "* LIST (\\HasChildren \\Noselect) \"/\" {14}\r\nProjekte/&AOk-\r\n"
	    "* LIST () NIL \"quoted \\\"x\\\" \\\\ y\"\r\n"
	    "* LIST (\\Marked) \".\" ~{3}\r\na\0c\r\n"
	    "* LIST (\\HasNoChildren) \"/\" [Gmail]/Sent\r\n"
	    "* LIST (\\HasNoChildren) \"/\" {4+}\r\nb(c)\r\n"
	    "* XLIST (\\Inbox) \"/\" \"Posteingang \xc3\xa4\"\r\n"
	    "A3 OK LIST completed\r\n";

	expect_lim(in, sizeof(in) - 1, NULL,
		   "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\n"
		   "* LIST (\\HasChildren \\Noselect) \"/\" {14}\"Projekte/&AOk-\"\n"
		   "* LIST () NIL \"quoted \\\"x\\\" \\\\ y\"\n"
		   "* LIST (\\Marked) \".\" {3}\"a\\0c\"\n"
		   "* LIST (\\HasNoChildren) \"/\" [Gmail]/Sent\n"
		   "* LIST (\\HasNoChildren) \"/\" {4}\"b(c)\"\n"
		   "* XLIST (\\Inbox) \"/\" \"Posteingang \\xc3\\xa4\"\n"
		   "A3 OK \"LIST completed\"\n");
}

static void test_select(void)
{
	static const char in[] =
	    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
	    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n"
	    "* 172 EXISTS\r\n"
	    "* 1 RECENT\r\n"
	    "* OK [UNSEEN 12] Message 12 is first unseen\r\n"
	    "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
	    "* OK [UIDNEXT 4392] Predicted next UID\r\n"
	    "* OK [HIGHESTMODSEQ 715194045007] Highest\r\n"
	    "A142 OK [READ-WRITE] SELECT completed\r\n";
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_response *r;
	uint64_t v = 0;
	int n = 0;

	expect(in, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\n"
		   "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
		   "\"Limited\"\n"
		   "* 172 EXISTS\n"
		   "* 1 RECENT\n"
		   "* OK [UNSEEN 12] \"Message 12 is first unseen\"\n"
		   "* OK [UIDVALIDITY 3857529045] \"UIDs valid\"\n"
		   "* OK [UIDNEXT 4392] \"Predicted next UID\"\n"
		   "* OK [HIGHESTMODSEQ 715194045007] \"Highest\"\n"
		   "A142 OK [READ-WRITE] \"SELECT completed\"\n");
	CHECK_EQ_INT(imap_parser_feed(p, in, sizeof(in) - 1), 0);
	while (imap_parser_next(p, &r) == 1) {
		n++;
		if (r->has_number && strcmp(r->name, "EXISTS") == 0)
			CHECK_EQ_INT(r->number, 172);
		if (n == 6) {
			CHECK_EQ_INT(imap_response_code_u64(r, "uidvalidity", &v), 0);
			CHECK_EQ_INT(v, 3857529045u);
			CHECK_EQ_INT(imap_response_code_u64(r, "UIDNEXT", &v), -ENOENT);
			CHECK_EQ_INT(imap_response_code_u64(r, "UIDVALID", &v), -ENOENT);
		}
		if (n == 8) {
			CHECK_EQ_INT(imap_response_code_u64(r, "HIGHESTMODSEQ", &v), 0);
			CHECK_EQ_INT(v, 715194045007ull);
		}
		if (n == 9) {
			CHECK_EQ_INT(r->kind, IMAP_RESP_TAGGED);
			CHECK_EQ_STR(r->tag, "A142");
			CHECK_EQ_INT(r->status, IMAP_ST_OK);
			CHECK_EQ_STR(r->code, "READ-WRITE");
			CHECK_EQ_INT(imap_response_code_u64(r, "READ-WRITE", &v), -EINVAL);
		}
	}
	CHECK_EQ_INT(n, 9);
	imap_parser_free(p);
}

/* A literal holding CRLFs, NULs and lines that look like responses, then more responses. */
static const char fetch_in[] =
    "* 12 FETCH (UID 4827313 FLAGS (\\Seen $Label1) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
    "RFC822.SIZE 44827 BODY[] {42}\r\n"
    "From: a\r\n\r\n* 13 FETCH (UID 1)\r\nA1 OK x\0\0\r\n)\r\n"
    "* 13 FETCH (UID 4827314 MODSEQ (12121231000) BODY[HEADER.FIELDS (FROM TO)] {5}\r\n"
    "To: b BODY[1.2]<0> {0}\r\n)\r\n"
    "* 14 fetch (uid 9 flags () X-GM-LABELS (\\Inbox \"\\\\Important\" \"[Gmail]/Sent\"))\n"
    "A5 OK [CLIENTBUG] UID FETCH Completed\r\n";

static void test_fetch(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_response *r;
	const struct imap_value *v;
	uint64_t u = 0;

	expect_lim(fetch_in, sizeof(fetch_in) - 1, NULL,
		   "* 12 FETCH (UID 4827313 FLAGS (\\Seen $Label1) INTERNALDATE \"17-Jul-1996 "
		   "02:44:25 -0700\" RFC822.SIZE 44827 BODY[] {42}\"From: a\\r\\n\\r\\n* 13 FETCH "
		   "(UID 1)\\r\\nA1 OK x\\0\\0\\r\\n\")\n"
		   "* 13 FETCH (UID 4827314 MODSEQ (12121231000) BODY[HEADER.FIELDS (FROM TO)] "
		   "{5}\"To: b\" BODY[1.2]<0> {0}\"\")\n"
		   "* 14 fetch (uid 9 flags () X-GM-LABELS (\\Inbox \"\\\\Important\" "
		   "\"[Gmail]/Sent\"))\n"
		   "A5 OK [CLIENTBUG] \"UID FETCH Completed\"\n");

	CHECK_EQ_INT(imap_parser_feed(p, fetch_in, sizeof(fetch_in) - 1), 0);
	CHECK_EQ_INT(imap_parser_next(p, &r), 1);
	CHECK_EQ_INT(r->kind, IMAP_RESP_UNTAGGED);
	CHECK_EQ_INT(r->status, IMAP_ST_NONE);
	CHECK(r->has_number && r->number == 12);
	CHECK_EQ_STR(r->name, "FETCH");
	CHECK_EQ_INT(r->nargs, 1);
	CHECK_EQ_INT(r->args[0].type, IMAP_V_LIST);
	CHECK_EQ_INT(imap_value_u64(imap_list_get(&r->args[0], "uid"), &u), 0);
	CHECK_EQ_INT(u, 4827313);
	CHECK_EQ_INT(imap_value_u64(imap_list_get(&r->args[0], "RFC822.SIZE"), &u), 0);
	CHECK_EQ_INT(u, 44827);
	v = imap_list_get(&r->args[0], "FLAGS");
	CHECK(v && v->type == IMAP_V_LIST && v->n == 2 && imap_value_is(&v->items[0], "\\seen"));
	v = imap_list_get(&r->args[0], "INTERNALDATE");
	CHECK(v && v->type == IMAP_V_STRING);
	CHECK_EQ_STR(v->s, "17-Jul-1996 02:44:25 -0700");
	v = imap_list_get(&r->args[0], "BODY[]");
	CHECK(v && v->type == IMAP_V_LITERAL && v->len == 42 && v->s[42] == '\0');
	CHECK(v && memcmp(v->s + 38, "\0\0\r\n", 4) == 0);
	CHECK(imap_list_get(&r->args[0], "BODY") == NULL);
	/* Keys are looked up at even positions only: a value equal to a key is not a key. */
	CHECK(imap_list_get(&r->args[0], "4827313") == NULL);
	CHECK_EQ_INT(imap_parser_next(p, &r), 1);
	CHECK(r->has_number && r->number == 13);
	v = imap_list_get(&r->args[0], "body[header.fields (from to)]");
	CHECK(v && v->type == IMAP_V_LITERAL && v->len == 5);
	v = imap_list_get(&r->args[0], "BODY[1.2]<0>");
	CHECK(v && v->type == IMAP_V_LITERAL && v->len == 0 && v->s && v->s[0] == '\0');
	v = imap_list_get(&r->args[0], "MODSEQ");
	CHECK(v && v->type == IMAP_V_LIST && v->n == 1);
	CHECK(v && imap_value_u64(&v->items[0], &u) == 0 && u == 12121231000ull);
	CHECK_EQ_INT(imap_parser_next(p, &r), 1);
	CHECK_EQ_STR(r->name, "fetch");
	CHECK_EQ_INT(imap_parser_next(p, &r), 1);
	CHECK_EQ_STR(r->tag, "A5");
	CHECK_EQ_INT(imap_parser_next(p, &r), 0);
	CHECK_EQ_INT(imap_parser_buffered(p), 0);
	imap_parser_free(p);
}

static void test_envelope_bodystructure(void)
{
	expect(
	    "* 1 FETCH (ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" {16}\r\n"
	    "IMAP4rev1 WG mtg ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
	    "NIL NIL NIL \"<B27397-0100000@cac.washington.edu>\") "
	    "BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 "
	    "23)"
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" ~{7}\r\ncc.diff) "
	    "\"<960723163407.20117h@cac>\" \"Compiler diff\" \"BASE64\" 4554 73) \"MIXED\"))\r\n",
	    "* 1 FETCH (ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" {16}\"IMAP4rev1 WG "
	    "mtg\" ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) NIL NIL NIL "
	    "\"<B27397-0100000@cac.washington.edu>\") BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" "
	    "(\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23) (\"TEXT\" \"PLAIN\" (\"CHARSET\" "
	    "\"US-ASCII\" \"NAME\" {7}\"cc.diff\") \"<960723163407.20117h@cac>\" \"Compiler "
	    "diff\" \"BASE64\" 4554 73) \"MIXED\"))\n");
	/* THREAD lists abut; SEARCH/ESEARCH/STATUS/NAMESPACE/VANISHED shapes. */
	expect("* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
	       "* SEARCH 2 84 882\r\n* SEARCH\r\n"
	       "* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3\r\n"
	       "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
	       "* STATUS {5}\r\nx y z (UIDVALIDITY 1)\r\n"
	       "* NAMESPACE ((\"\" \"/\")) NIL ((\"#shared/\" \"/\" \"X-PARAM\" (\"A\" \"B\")))\r\n"
	       "* VANISHED (EARLIER) 300:310,405,411\r\n",
	       "* THREAD (2) (3 6 (4 23) (44 7 96))\n"
	       "* SEARCH 2 84 882\n* SEARCH\n"
	       "* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3\n"
	       "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\n"
	       "* STATUS {5}\"x y z\" (UIDVALIDITY 1)\n"
	       "* NAMESPACE ((\"\" \"/\")) NIL ((\"#shared/\" \"/\" \"X-PARAM\" (\"A\" \"B\")))\n"
	       "* VANISHED (EARLIER) 300:310,405,411\n");
}

static void test_tagged(void)
{
	expect("A1 OK LOGIN completed\r\n"
	       "A2 NO [TRYCREATE] No such mailbox\r\n"
	       "A3 BAD [PARSE] Command unknown: \"FOO\r\n"
	       "A4 NO [BADCHARSET (UTF-8 \"X]Y\")] charset ) unknown [ ( \"\r\n"
	       "A5 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"
	       "A6 NO [REFERRAL imap://user;AUTH=*@SERVER2/SHARED/FOO] Remote mailbox\r\n"
	       "A7 OK [x [nested] y]text right after\r\n"
	       "A8 NO [UNCLOSED code \"with ] in quotes\r\n"
	       "a9 ok [read-only] lowercase\r\n"
	       "A10 OK {5}\r\n",
	       "A1 OK \"LOGIN completed\"\n"
	       "A2 NO [TRYCREATE] \"No such mailbox\"\n"
	       "A3 BAD [PARSE] \"Command unknown: \\\"FOO\"\n"
	       "A4 NO [BADCHARSET (UTF-8 \"X]Y\")] \"charset ) unknown [ ( \\\"\"\n"
	       "A5 OK [COPYUID 38505 304,319:320 3956:3958] \"Done\"\n"
	       "A6 NO [REFERRAL imap://user;AUTH=*@SERVER2/SHARED/FOO] \"Remote mailbox\"\n"
	       "A7 OK [x [nested] y] \"text right after\"\n"
	       "A8 NO \"[UNCLOSED code \\\"with ] in quotes\"\n"
	       "a9 OK [read-only] \"lowercase\"\n"
	       "A10 OK \"{5}\"\n");
}

static void test_continuation(void)
{
	expect("+ \r\n+\r\n+ Ready for literal data\r\n"
	       "+ YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQAgAAQEBAQ=\r\n"
	       "+ [ALERT] idling\r\n+  two spaces\r\n",
	       "+ \"\"\n+ \"\"\n+ \"Ready for literal data\"\n"
	       "+ \"YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQAgAAQEBAQ=\"\n"
	       "+ [ALERT] \"idling\"\n+ \" two spaces\"\n");
}

/* Deviations recorded from real servers (MailKit issues 115 and 954) that we accept. */
static void test_server_quirks(void)
{
	expect("[COPYUID 55 31 6]\r\n* 1 EXPUNGE\r\nA1 OK MOVE completed.\r\n",
	       "* OK [COPYUID 55 31 6] \"\"\n* 1 EXPUNGE\nA1 OK \"MOVE completed.\"\n");
	/* A literal counted without its last line end: one line end right after it, inside the
	 * list, is read as a space. */
	expect("* 1 FETCH (BODY[HEADER] {3}\r\nabc \r\n)\r\n* 2 FETCH (X {1}\r\na\n UID 5)\n",
	       "* 1 FETCH (BODY[HEADER] {3}\"abc\")\n* 2 FETCH (X {1}\"a\" UID 5)\n");
	expect_err("* 1 FETCH (X {1}\r\na\r\n\r\n)\r\n", NULL, -EPROTO, "list not closed");
	expect_err("* 1 FETCH (X {1}\r\na UID\r\n)\r\n", NULL, -EPROTO, "list not closed");
	expect_err("* 1 FETCH (X {1}\r\na\r)\r\n", NULL, -EPROTO, "CR not followed by LF");
	/* At depth 0 a line end after a literal still ends the response. */
	expect("* STATUS {1}\r\na\r\n* 1 EXISTS\r\n", "* STATUS {1}\"a\"\n* 1 EXISTS\n");
}

/* Bare LF is accepted as a line end everywhere, and blank lines between responses vanish. */
static void test_lf_and_blank_lines(void)
{
	expect("\r\n\n* 3 EXISTS\n\r\n\r\n* 1 FETCH (BODY[] {3}\nab\n)\n\nA1 ok done\n",
	       "* 3 EXISTS\n* 1 FETCH (BODY[] {3}\"ab\\n\")\nA1 OK \"done\"\n");
	/* An unfinished response is kept, not reported. */
	expect("* 1 FETCH (BODY[] {10}\r\nabc", "PARTIAL 27\n");
	expect("* 2 EXISTS\r\n\r\n", "* 2 EXISTS\n");
	expect("* 2 EXISTS\r", "PARTIAL 11\n");
}

static void test_limit_literal(void)
{
	static const char in[] = "* 1 FETCH (BODY[] {4294967296}\r\n";
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_limits lim;
	struct imap_response *r;

	expect_error(in, sizeof(in) - 1, NULL, -E2BIG, "max_literal");
	expect_err("* 1 FETCH (BODY[] {99999999999999999999999999}\r\n", NULL, -E2BIG, "{9999999");
	CHECK_EQ_INT(imap_parser_feed(p, in, sizeof(in) - 1), 0);
	CHECK_EQ_INT(imap_parser_next(p, &r), -E2BIG);
	CHECK(r == NULL);
	/* The announced size was never allocated. */
	CHECK(imap_parser_memory(p) < 64 * 1024);
	/* The stream stays failed: more bytes are dropped, next() repeats the error. */
	CHECK_EQ_INT(imap_parser_feed(p, "* OK\r\n", 6), 0);
	CHECK_EQ_INT(imap_parser_next(p, &r), -E2BIG);
	CHECK(strstr(imap_parser_error(p), "{4294967") != NULL);
	imap_parser_free(p);

	imap_limits_default(&lim);
	lim.max_literal = 10;
	expect_with("* 1 FETCH (BODY[] {10}\r\n0123456789)\r\n", &lim,
		    "* 1 FETCH (BODY[] {10}\"0123456789\")\n");
	expect_err("* 1 FETCH (BODY[] {11}\r\n0123456789a)\r\n", &lim, -E2BIG, "max_literal");
	lim.max_response = 30;
	expect_err("* 1 FETCH (BODY[] {10}\r\n0123456789)\r\n", &lim, -E2BIG, "max_response");
}

static void test_limit_line(void)
{
	struct imap_limits lim;
	struct imap_parser *p;
	struct imap_response *r;
	char chunk[4096];
	int rc = 0;
	size_t fed = 0;

	imap_limits_default(&lim);
	lim.max_line = 20;
	/* Literal bytes do not count against max_line: each line here is short. */
	expect_with("* 1 FETCH (X {40}\r\n0123456789012345678901234567890123456789)\r\n", &lim,
		    "* 1 FETCH (X {40}\"0123456789012345678901234567890123456789\")\n");
	expect_err("* OK 0123456789abcdef\r\n", &lim, -E2BIG, "max_line");

	/* An endless line fails as soon as it crosses the limit, not at the end. */
	lim.max_line = 64 * 1024;
	p = imap_parser_new(&lim);
	memset(chunk, 'a', sizeof(chunk));
	memcpy(chunk, "* OK ", 5);
	while (rc == 0 && fed < 16 * 1024 * 1024) {
		CHECK_EQ_INT(imap_parser_feed(p, chunk, sizeof(chunk)), 0);
		fed += sizeof(chunk);
		rc = imap_parser_next(p, &r);
		memset(chunk, 'a', 5);
	}
	CHECK_EQ_INT(rc, -E2BIG);
	CHECK(fed <= lim.max_line + sizeof(chunk));
	CHECK(strstr(imap_parser_error(p), "max_line") != NULL);
	CHECK(strstr(imap_parser_error(p), "\"* OK aaaa") != NULL);
	imap_parser_free(p);
}

static void test_limit_depth_tokens(void)
{
	struct imap_limits lim;
	char deep[256];
	size_t n = 0;

	imap_limits_default(&lim);
	n += (size_t)snprintf(deep, sizeof(deep), "* X ");
	for (int i = 0; i < 33; i++)
		deep[n++] = '(';
	for (int i = 0; i < 33; i++)
		deep[n++] = ')';
	memcpy(deep + n, "\r\n", 3);
	expect_error(deep, strlen(deep), NULL, -E2BIG, "max_depth");
	/* 32 levels are fine. */
	memmove(deep + 4, deep + 5, strlen(deep + 5) + 1);
	memmove(deep + 4 + 32, deep + 4 + 33, strlen(deep + 4 + 33) + 1);
	{
		char *got = run_parser(deep, strlen(deep), NULL, FEED_WHOLE, 0, NULL);

		CHECK(strncmp(got, "* X ((((", 8) == 0 && strstr(got, "ERROR") == NULL);
		free(got);
	}
	lim.max_tokens = 5;
	expect_with("* SEARCH 1 2 3 4 5\r\n", &lim, "* SEARCH 1 2 3 4 5\n");
	expect_err("* SEARCH 1 2 3 4 5 6\r\n", &lim, -E2BIG, "max_tokens");
	expect_err("* X (1 (2 (3)) 4)\r\n", &lim, -E2BIG, "max_tokens");
}

static void test_garbage(void)
{
	static const struct {
		const char *in;
		const char *what;
	} cases[] = {
	    {"hello world\r\n", "tagged response is not"},
	    {"(\r\n", "bad byte at start"},
	    {" * OK\r\n", "bad byte at start"},
	    {"*OK\r\n", "expected SP"},
	    {"* \r\n", "missing response name"},
	    {"* 12\r\n", "missing response name"},
	    {"* 99999999999 EXISTS\r\n", "message number"},
	    {"* 1x EXISTS\r\n", "bad message number"},
	    {"A1\r\n", "bad byte in tag"},
	    {"* LIST (\\Noselect \"/\" INBOX\r\n", "list not closed"},
	    {"* LIST ()) \"/\" INBOX\r\n", "unbalanced"},
	    {"* LIST () \"/\" \"INBOX\r\n", "quoted string not closed"},
	    {"* LIST () \"/\" \"IN\"BOX\r\n", "expected SP after string"},
	    {"* 1 FETCH (BODY[] {5} x\r\nabcde)\r\n", "literal size not followed"},
	    {"* 1 FETCH (BODY[] {}\r\n)\r\n", "bad literal size"},
	    {"* 1 FETCH (BODY[] {5+5}\r\n)\r\n", "bad literal size"},
	    {"* 1 FETCH (BODY[HEADER\r\n", "not closed in atom"},
	    {"* 1 FETCH (X a\x01)\r\n", "control byte"},
	    {"* OK a\rb\r\n", "CR not followed by LF"},
	    {"* SEARCH 1\r2\r\n", "CR not followed by LF"},
	    {"\r* OK\r\n", "CR not followed by LF"},
	    {"* OK [A\0B] x\r\n", "NUL"},
	    {"* OK ab\0\r\n", "NUL"},
	    {"* FLAGS(\\Seen)\r\n* FOO\\x\r\n", "bad byte in response name"},
	    {"* OKAY\r\n* OK\x01\r\n", "bad byte after status word"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);

		if (strstr(cases[i].what, "NUL"))
			len += strlen(cases[i].in + len + 1) + 1;
		expect_error(cases[i].in, len, NULL, -EPROTO, cases[i].what);
	}
	/* The message escapes what it quotes and stays on one line. */
	{
		char *got = run_parser("* 1 FETCH (X \"a\r\n", 17, NULL, FEED_WHOLE, 0, NULL);

		CHECK(strstr(got, "near \"* 1 FETCH (X \\\"a\\r\"") != NULL);
		CHECK(strchr(got, '\n') == got + strlen(got) - 1);
		free(got);
	}
	/* Random bytes: any result but a crash, and the same result however they are split. */
	{
		uint32_t x = 12345;
		char buf[512];

		for (int round = 0; round < 300; round++) {
			size_t len = 1 + rng_next(&x) % sizeof(buf);

			for (size_t k = 0; k < len; k++) {
				/* Mostly IMAP-ish bytes so that parsing gets somewhere. */
				static const char alpha[] = "* ()[]{}~\"\\\r\n0123+AOKNIL";
				uint32_t r = rng_next(&x);

				buf[k] = (r & 0x100) ? alpha[r % (sizeof(alpha) - 1)] : (char)r;
			}
			char *a = run_parser(buf, len, NULL, FEED_WHOLE, 0, NULL);
			char *b = run_parser(buf, len, NULL, FEED_BYTES, 0, NULL);

			CHECK_EQ_STR(b, a);
			free(a);
			free(b);
		}
	}
}

static void test_helpers(void)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_response *r;
	uint64_t u = 7;
	static const char in[] = "* X 18446744073709551615 18446744073709551616 \"42\" 0x1 NIL "
				 "nil {2}\r\n42 () -1 \"\"\r\n";

	CHECK_EQ_INT(imap_parser_feed(p, in, sizeof(in) - 1), 0);
	CHECK_EQ_INT(imap_parser_next(p, &r), 1);
	CHECK_EQ_INT(r->nargs, 10);
	CHECK_EQ_INT(imap_value_u64(&r->args[0], &u), 0);
	CHECK(u == UINT64_MAX);
	CHECK_EQ_INT(imap_value_u64(&r->args[1], &u), -EINVAL);
	CHECK_EQ_INT(imap_value_u64(&r->args[2], &u), 0);
	CHECK_EQ_INT(u, 42);
	CHECK_EQ_INT(imap_value_u64(&r->args[3], &u), -EINVAL);
	CHECK_EQ_INT(imap_value_u64(&r->args[4], &u), -EINVAL);
	CHECK_EQ_INT(r->args[4].type, IMAP_V_NIL);
	CHECK_EQ_INT(r->args[5].type, IMAP_V_NIL);
	CHECK(imap_value_is(&r->args[5], "NIL"));
	CHECK(imap_value_is(&r->args[6], "42"));
	CHECK_EQ_INT(imap_value_u64(&r->args[6], &u), -EINVAL);
	CHECK(!imap_value_is(&r->args[7], "()"));
	CHECK_EQ_INT(imap_value_u64(&r->args[8], &u), -EINVAL);
	CHECK_EQ_INT(imap_value_u64(&r->args[9], &u), -EINVAL);
	CHECK(imap_value_is(&r->args[9], ""));
	CHECK(!imap_value_is(NULL, "x"));
	CHECK(imap_list_get(&r->args[0], "X") == NULL);
	CHECK(imap_list_get(NULL, "X") == NULL);
	CHECK(imap_list_get(&r->args[7], "X") == NULL);
	CHECK_EQ_INT(imap_value_u64(NULL, &u), -EINVAL);
	CHECK_EQ_INT(imap_response_code_u64(r, "X", &u), -ENOENT);
	CHECK_EQ_INT(imap_parser_next(p, &r), 0);
	CHECK_EQ_STR(imap_parser_error(p), "");
	imap_parser_free(p);
	imap_parser_free(NULL);
}

/* A 20 MB literal fed in 16 KB chunks: each byte is scanned once (a rescan per feed would be
 * ~10 GB of work here and show as a hang), and the buffer is given back afterwards. */
static void test_big_literal(void)
{
	const size_t size = 20 * 1024 * 1024;
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_response *r = NULL;
	char *chunk = malloc(16 * 1024);
	char head[64];
	size_t left = size;
	int rc, n;

	n = snprintf(head, sizeof(head), "* 1 FETCH (UID 7 BODY[] {%zu}\r\n", size);
	CHECK_EQ_INT(imap_parser_feed(p, head, (size_t)n), 0);
	CHECK_EQ_INT(imap_parser_next(p, &r), 0);
	memset(chunk, 'x', 16 * 1024);
	while (left) {
		size_t k = left < 16 * 1024 ? left : 16 * 1024;

		CHECK_EQ_INT(imap_parser_feed(p, chunk, k), 0);
		left -= k;
		CHECK_EQ_INT(imap_parser_next(p, &r), 0);
	}
	CHECK_EQ_INT(imap_parser_feed(p, ")\r\nA1 OK done\r\n", 15), 0);
	rc = imap_parser_next(p, &r);
	CHECK_EQ_INT(rc, 1);
	if (rc == 1) {
		const struct imap_value *v = imap_list_get(&r->args[0], "BODY[]");

		CHECK(v && v->len == size && v->s[0] == 'x' && v->s[size - 1] == 'x');
	}
	CHECK(imap_parser_memory(p) > size);
	CHECK_EQ_INT(imap_parser_next(p, &r), 1);
	CHECK_EQ_STR(r->tag, "A1");
	CHECK_EQ_INT(imap_parser_next(p, &r), 0);
	CHECK(imap_parser_memory(p) < 1024 * 1024);
	imap_parser_free(p);
	free(chunk);
}

/* --- corpus replay ------------------------------------------------------------------------ */

/* No transcript is allow-listed as bad: exchange/issue115.txt (bare "[COPYUID ...]" line) and
 * gmail/headers.1+unsolicited-info.txt (literal counted 3 bytes short) pass through the two
 * server quirks imap_parser.h accepts. */

/* Files under the transcript corpus that are not server output, matched by name suffix;
 * each entry says why. */
static const struct {
	const char *match;
	const char *why;
} corpus_skip[] = {
    /* common/message.N.msg are RFC 5322 messages MailKit's tests upload with APPEND or splice
     * into FETCH replies; they are client data, not IMAP responses. */
    {".msg", "RFC 5322 message, not a transcript"},
    {"SOURCES.txt", "provenance notes"},
};

static const char *corpus_skip_why(const char *rel)
{
	size_t n = strlen(rel);

	for (size_t i = 0; i < sizeof(corpus_skip) / sizeof(corpus_skip[0]); i++) {
		size_t m = strlen(corpus_skip[i].match);

		if (n >= m && strcmp(rel + n - m, corpus_skip[i].match) == 0)
			return corpus_skip[i].why;
	}
	return NULL;
}

struct corpus_stats {
	size_t files, skipped, responses, bytes, failed;
};

/* MailKit stores transcripts with LF and converts them with Unix2DosFilter before replay: the
 * literal sizes inside count CRLF line ends. Do the same (a CR already present is kept). */
static char *unix2dos(const char *in, size_t len, size_t *outlen)
{
	char *out = malloc(2 * len + 1);
	size_t o = 0;

	if (!out)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	*outlen = o;
	return out;
}

static void replay_file(const char *path, const char *rel, struct corpus_stats *st)
{
	FILE *f = fopen(path, "rb");
	char *raw, *data, *whole, *chunks;
	struct run_end e1, e2;
	size_t rawlen, len;
	long sz;

	if (!f) {
		printf("  cannot open %s\n", path);
		st->failed++;
		return;
	}
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	raw = malloc((size_t)sz + 1);
	rawlen = fread(raw, 1, (size_t)sz, f);
	fclose(f);
	data = unix2dos(raw, rawlen, &len);
	whole = run_parser(data, len, NULL, FEED_WHOLE, 0, &e1);
	chunks = run_parser(data, len, NULL, FEED_RANDOM, (uint32_t)len | 1, &e2);
	/* Every transcript ends with a complete line, and none stops inside a literal, so neither
	 * an error nor a partial response may remain. */
	if (e1.rc < 0 || e1.partial || e1.responses == 0 || strcmp(whole, chunks) != 0) {
		const char *last = whole;

		for (const char *q = whole; *q; q++)
			if (q[0] == '\n' && q[1])
				last = q + 1;
		printf("  %s: %s", rel,
		       e1.rc < 0 || e1.partial ? last : "chunked result differs or no responses\n");
		st->failed++;
	}
	st->files++;
	st->responses += e1.responses;
	st->bytes += len;
	free(whole);
	free(chunks);
	free(data);
	free(raw);
}

static void replay_dir(const char *dir, const char *rel, struct corpus_stats *st)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char path[4096], sub[4096];
		struct stat sb;

		if (name[0] == '.') {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", name);
		if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
			replay_dir(path, sub, st);
		else if (corpus_skip_why(sub))
			st->skipped++;
		else if (S_ISREG(sb.st_mode))
			replay_file(path, sub, st);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static void test_corpus_mailkit(void)
{
	const char *env = getenv("MAILPIPE_CORPORA");
	char dir[4096];
	struct stat sb;
	struct corpus_stats st = {0};

	snprintf(dir, sizeof(dir), "%s/mailkit-imap-transcripts", env ? env : "../shared/corpora");
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		char why[4200];

		snprintf(why, sizeof(why),
			 "%s not found (run from the repo root or set MAILPIPE_CORPORA)", dir);
		TEST_SKIP(why);
	}
	replay_dir(dir, "", &st);
	printf("  corpus %s: %zu files, %zu responses, %zu bytes replayed whole and chunked; "
	       "%zu non-transcript files skipped\n",
	       dir, st.files, st.responses, st.bytes, st.skipped);
	CHECK(st.files > 0);
	CHECK_EQ_INT(st.failed, 0);
}

int main(void)
{
	TEST_RUN(test_greeting);
	TEST_RUN(test_capability);
	TEST_RUN(test_list);
	TEST_RUN(test_select);
	TEST_RUN(test_fetch);
	TEST_RUN(test_envelope_bodystructure);
	TEST_RUN(test_tagged);
	TEST_RUN(test_continuation);
	TEST_RUN(test_server_quirks);
	TEST_RUN(test_lf_and_blank_lines);
	TEST_RUN(test_limit_literal);
	TEST_RUN(test_limit_line);
	TEST_RUN(test_limit_depth_tokens);
	TEST_RUN(test_garbage);
	TEST_RUN(test_helpers);
	TEST_RUN(test_big_literal);
	TEST_RUN(test_corpus_mailkit);
	return test_summary();
}

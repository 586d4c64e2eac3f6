/* Unit tests for parser/extract.c: handcrafted messages as C strings, the limits, hostile input,
 * and GMime's own test vectors when ../shared/corpora/gmime-test-vectors is present.
 * Run by `make unit` / tests/run.sh; pure, no servers. */
#include "../../parser/extract.h"

#include <pthread.h>

#include <glib.h>

#include "json_check.h"
#include "test.h"

#define VECTORS_DIR "../shared/corpora/gmime-test-vectors"

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int is_null(json_t *o, const char *key)
{
	return json_is_null(json_object_get(o, key));
}

static const char *addr(json_t *o, const char *list, size_t i, const char *field)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(o, list), i), field));
}

static int error_has(json_t *o, const char *needle)
{
	const char *e = str(o, "parse_error");

	return e != NULL && strstr(e, needle) != NULL;
}

static json_t *parse(const char *raw)
{
	json_t *o = extract_message(raw, strlen(raw), NULL);

	if (o == NULL || !valid_json_strings(o)) {
		printf("  parse: NULL or invalid strings\n");
		test_case_failed = 1;
	}
	return o;
}

/* Prints the record when a case fails, which is most of what one needs to debug it. */
static void done(json_t *o)
{
	if (test_case_failed > 0 && o != NULL) {
		char *dump = json_dumps(o, JSON_INDENT(2));

		printf("%.4000s\n", dump ? dump : "(dump failed)");
		free(dump);
	}
	json_decref(o);
}

static void test_plain_ascii(void)
{
	json_t *o = parse("From: Alice Example <alice@example.com>\r\n"
			  "To: bob@example.org, \"Carol, C.\" <carol@example.net>\r\n"
			  "Cc: dave@example.com\r\n"
			  "Reply-To: <lists@example.com>\r\n"
			  "Subject: Lunch   plans\r\n"
			  "Date: Tue, 30 Mar 2004 15:01:38 +0200\r\n"
			  "Message-ID: <abc.123@example.com>\r\n"
			  "List-Id: Lunch people <lunch.example.com>\r\n"
			  "\r\n"
			  "Shall we meet\r\n  at noon?\r\n");

	CHECK_EQ_INT(strlen(str(o, "content_sha256")), 64);
	CHECK_EQ_STR(str(o, "message_id"), "abc.123@example.com");
	CHECK(json_is_false(json_object_get(o, "message_id_synthetic")));
	CHECK_EQ_STR(str(o, "subject"), "Lunch   plans");
	CHECK_EQ_STR(str(o, "sent_at"), "2004-03-30T13:01:38Z");
	CHECK_EQ_STR(str(json_object_get(o, "from"), "name"), "Alice Example");
	CHECK_EQ_STR(str(json_object_get(o, "from"), "email"), "alice@example.com");
	CHECK_EQ_INT(json_array_size(json_object_get(o, "to")), 2);
	CHECK(json_is_null(json_object_get(json_array_get(json_object_get(o, "to"), 0), "name")));
	CHECK_EQ_STR(addr(o, "to", 0, "email"), "bob@example.org");
	CHECK_EQ_STR(addr(o, "to", 1, "name"), "Carol, C.");
	CHECK_EQ_STR(addr(o, "to", 1, "email"), "carol@example.net");
	CHECK_EQ_STR(addr(o, "cc", 0, "email"), "dave@example.com");
	CHECK_EQ_INT(json_array_size(json_object_get(o, "bcc")), 0);
	CHECK_EQ_STR(addr(o, "reply_to", 0, "email"), "lists@example.com");
	CHECK_EQ_STR(str(o, "list_id"), "lunch.example.com");
	CHECK_EQ_STR(str(o, "body_text"), "Shall we meet\r\n  at noon?\r\n");
	CHECK_EQ_STR(str(o, "snippet"), "Shall we meet at noon?");
	CHECK(is_null(o, "body_html"));
	CHECK(is_null(o, "in_reply_to"));
	CHECK_EQ_INT(json_array_size(json_object_get(o, "references")), 0);
	CHECK_EQ_INT(json_array_size(json_object_get(o, "attachments")), 0);
	CHECK(is_null(o, "parse_error"));
	done(o);
}

static void test_sha256(void)
{
	json_t *o = parse("abc");

	CHECK_EQ_STR(str(o, "content_sha256"),
		     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	done(o);
}

static void test_rfc2047(void)
{
	json_t *o = parse("From: =?iso-8859-1?q?Fran=E7ois_Pons?= <fpons@example.com>\n"
			  "To: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>,\n"
			  " =?ISO-8859-1?B?Sm/rbA==?= <joel@example.com>\n"
			  "Subject: =?UTF-8?Q?Caf=C3=A9_=E2=82=AC?= and =?iso-8859-1?b?d2Vp3yw=?= ok\n"
			  "Message-ID: <x@y>\n\nhi\n");

	CHECK_EQ_STR(str(o, "subject"), "Café € and weiß, ok");
	CHECK_EQ_STR(str(json_object_get(o, "from"), "name"), "François Pons");
	CHECK_EQ_STR(addr(o, "to", 0, "name"), "Jürgen");
	CHECK_EQ_STR(addr(o, "to", 1, "name"), "Joël");
	CHECK_EQ_STR(addr(o, "to", 1, "email"), "joel@example.com");
	done(o);
}

static void test_raw_8bit_headers(void)
{
	/* Subject in raw UTF-8, From name in raw latin-1: both must come out as the same text. */
	json_t *o = parse("From: Ren\xe9 Tr\xe9panier <rene@example.com>\n"
			  "Subject: Caf\xc3\xa9 cr\xc3\xa8me\n\nbody\n");

	CHECK_EQ_STR(str(o, "subject"), "Café crème");
	CHECK_EQ_STR(str(json_object_get(o, "from"), "name"), "René Trépanier");
	done(o);
}

static void test_alternative(void)
{
	json_t *o = parse("From: a@example.com\n"
			  "Subject: alt\n"
			  "MIME-Version: 1.0\n"
			  "Content-Type: multipart/alternative; boundary=\"XX\"\n"
			  "\n"
			  "preamble\n"
			  "--XX\n"
			  "Content-Type: text/html; charset=utf-8\n"
			  "\n"
			  "<p>Hello <b>HTML</b></p>\n"
			  "--XX\n"
			  "Content-Type: text/plain; charset=utf-8\n"
			  "\n"
			  "Hello plain\n"
			  "--XX--\n");

	CHECK_EQ_STR(str(o, "body_text"), "Hello plain"); /* the last newline belongs to the boundary */
	CHECK_EQ_STR(str(o, "body_html"), "<p>Hello <b>HTML</b></p>");
	CHECK_EQ_STR(str(o, "snippet"), "Hello plain");
	CHECK_EQ_INT(json_array_size(json_object_get(o, "attachments")), 0);
	CHECK(is_null(o, "parse_error"));
	done(o);
}

static void test_html_only(void)
{
	json_t *o = parse("Subject: html\n"
			  "Content-Type: text/html; charset=\"us-ascii\"\n"
			  "\n"
			  "<html><head><title>T</title><style>p { color: red }</style>"
			  "<script>var x = '<p>no</p>';</script></head>\n"
			  "<body><h1>Big&nbsp;news</h1><p>Fish &amp; chips &lt;3 &#233;&#x20AC;"
			  " &bogus; AT&T</p>\n<!-- hidden -->"
			  "<ul><li>one<li>two</ul>a<br>b<div title=\"x > y\" data-x=it's>c</div>"
			  "</body></html>\n");

	CHECK_EQ_STR(str(o, "body_text"),
		     "Big news\n\nFish & chips <3 é€ &bogus; AT&T\n\n- one\n- two\n\na\nb\nc");
	CHECK(strstr(str(o, "body_html"), "<script>") != NULL);
	CHECK_EQ_STR(str(o, "snippet"), "Big news Fish & chips <3 é€ &bogus; AT&T - one - two a b c");
	done(o);
}

static void test_blank_text_uses_html(void)
{
	json_t *o = parse("Content-Type: multipart/alternative; boundary=b\n\n"
			  "--b\nContent-Type: text/plain\n\n \n"
			  "--b\nContent-Type: text/html\n\n<p>real</p>\n--b--\n");

	CHECK_EQ_STR(str(o, "body_text"), "real");
	done(o);
}

static void test_qp_latin1(void)
{
	json_t *o = parse("Subject: qp\n"
			  "Content-Type: text/plain; charset=ISO-8859-1\n"
			  "Content-Transfer-Encoding: quoted-printable\n"
			  "\n"
			  "Caf=E9 cr=E8me, =93quoted=94 and a soft=\n"
			  " break.\n");

	CHECK_EQ_STR(str(o, "body_text"), "Café crème, “quoted” and a soft break.\n");
	done(o);
}

static void test_8bit_no_charset(void)
{
	json_t *o = parse("Subject: 8bit\n\nna\xefve caf\xe9 \x93ok\x94, mixed caf\xc3\xa9\n");

	CHECK_EQ_STR(str(o, "body_text"), "naïve café “ok”, mixed café\n");
	done(o);
}

static void test_iconv_charsets(void)
{
	json_t *o = parse("Content-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n");

	CHECK_EQ_STR(str(o, "body_text"), "Привет\n");
	done(o);
	o = parse("Content-Type: text/plain; charset=iso-2022-jp\n\n"
		  "\x1b$B$3$s$K$A$O\x1b(B\n");
	CHECK_EQ_STR(str(o, "body_text"), "こんにちは\n");
	done(o);
	o = parse("Content-Type: text/plain; charset=windows-1250\n"
		  "Content-Transfer-Encoding: base64\n\n"
		  "tWx1nW916Gv9IGv58go=\n");
	CHECK_EQ_STR(str(o, "body_text"), "µluťoučký kůň\n");
	done(o);
	/* Declared UTF-8 with a bad byte: U+FFFD, never the raw byte. */
	o = parse("Content-Type: text/plain; charset=utf-8\n\nbad \xff byte\n");
	CHECK_EQ_STR(str(o, "body_text"), "bad \xEF\xBF\xBD byte\n");
	done(o);
}

static void test_invalid_charset(void)
{
	json_t *o = parse("Content-Type: multipart/mixed; boundary=b\n\n"
			  "--b\nContent-Type: text/plain; charset=x-foo\n\ncaf\xc3\xa9\n--b--\n");

	CHECK_EQ_STR(str(o, "body_text"), "café");
	CHECK_EQ_STR(str(o, "parse_error"), "invalid charset 'x-foo' in part 2");
	done(o);
	o = parse("Content-Type: text/plain; charset=\"a'b\\\"\xff\"\n\nx\n");
	CHECK_EQ_STR(str(o, "body_text"), "x\n");
	CHECK(error_has(o, "invalid charset 'a?b"));
	done(o);
}

static void test_synthetic_id(void)
{
	const char *a = "From: a@example.com\nSubject: one\n\nbody\n";
	const char *b = "From: a@example.com\nSubject: two\n\nbody\n";
	json_t *o1 = parse(a), *o2 = parse(a), *o3 = parse(b);
	const char *id = str(o1, "message_id");

	CHECK(json_is_true(json_object_get(o1, "message_id_synthetic")));
	CHECK(id != NULL && g_str_has_suffix(id, "@mailpipe.invalid"));
	CHECK(id != NULL && strncmp(id, str(o1, "content_sha256"), 32) == 0);
	CHECK_EQ_STR(str(o2, "message_id"), id);
	CHECK(strcmp(str(o3, "message_id"), id) != 0);
	done(o1);
	done(o2);
	done(o3);
	o1 = parse("Message-ID: <>\n\nx\n");
	CHECK(json_is_true(json_object_get(o1, "message_id_synthetic")));
	done(o1);
}

static void test_references(void)
{
	json_t *o = parse("Message-ID: <c@example.com>\n"
			  "In-Reply-To: <b@example.com> (Bob's message of yesterday) <z@example.com>\n"
			  "References: <a@example.com>\n"
			  "\t<a2@example.com> junk <b@example.com>\n"
			  "\n"
			  "x\n");
	json_t *refs = json_object_get(o, "references");

	CHECK_EQ_STR(str(o, "in_reply_to"), "b@example.com");
	CHECK_EQ_INT(json_array_size(refs), 3);
	CHECK_EQ_STR(json_string_value(json_array_get(refs, 0)), "a@example.com");
	CHECK_EQ_STR(json_string_value(json_array_get(refs, 1)), "a2@example.com");
	CHECK_EQ_STR(json_string_value(json_array_get(refs, 2)), "b@example.com");
	done(o);
	o = parse("In-Reply-To: bare@example.com\n\nx\n");
	CHECK_EQ_STR(str(o, "in_reply_to"), "bare@example.com");
	done(o);
}

static void test_dates(void)
{
	json_t *o = parse("Date: nonsense\n\nx\n");

	CHECK(is_null(o, "sent_at"));
	done(o);
	o = parse("Date: Sat, 24 Mar 2007 21:23:03 EDT\n\nx\n");
	CHECK_EQ_STR(str(o, "sent_at"), "2007-03-25T01:23:03Z");
	done(o);
	o = parse("Subject: no date\n\nx\n");
	CHECK(is_null(o, "sent_at"));
	done(o);
}

static void test_groups(void)
{
	json_t *o = parse("From: Team: alice@example.com;\n"
			  "To: A Group: Chris Jones <c@example.com>, joe@example.org;,"
			  " undisclosed-recipients:;, last@example.net\n\nx\n");

	CHECK_EQ_STR(str(json_object_get(o, "from"), "email"), "alice@example.com");
	CHECK_EQ_INT(json_array_size(json_object_get(o, "to")), 3);
	CHECK_EQ_STR(addr(o, "to", 0, "name"), "Chris Jones");
	CHECK_EQ_STR(addr(o, "to", 1, "email"), "joe@example.org");
	CHECK_EQ_STR(addr(o, "to", 2, "email"), "last@example.net");
	done(o);
}

static void test_attachment_rfc2231(void)
{
	json_t *o = parse("Subject: files\n"
			  "Content-Type: multipart/mixed; boundary=\"==b==\"\n"
			  "\n"
			  "--==b==\n"
			  "Content-Type: text/plain\n"
			  "\n"
			  "see attached\n"
			  "--==b==\n"
			  "Content-Type: Application/PDF; name=\"fallback.pdf\"\n"
			  "Content-Disposition: attachment;\n"
			  " filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf\n"
			  "Content-Transfer-Encoding: base64\n"
			  "Content-ID: <part1@example.com>\n"
			  "\n"
			  "SGVsbG8sIHdvcmxkIQ==\n"
			  "--==b==\n"
			  "Content-Type: image/png\n"
			  "Content-Disposition: inline; filename=\"=?iso-8859-1?q?p=E2t=E9.png?=\"\n"
			  "\n"
			  "PNGDATA\n"
			  "--==b==\n"
			  "Content-Type: text/plain; name=notes.txt\n"
			  "\n"
			  "a text file, not the body\n"
			  "--==b==--\n");
	json_t *atts = json_object_get(o, "attachments"), *a = json_array_get(atts, 0);

	CHECK_EQ_STR(str(o, "body_text"), "see attached");
	CHECK_EQ_INT(json_array_size(atts), 3);
	CHECK_EQ_STR(str(a, "filename"), "naïve résumé.pdf");
	CHECK_EQ_STR(str(a, "content_type"), "application/pdf");
	CHECK_EQ_INT(json_integer_value(json_object_get(a, "size")), 13);
	CHECK_EQ_STR(str(a, "content_id"), "part1@example.com");
	CHECK_EQ_STR(str(a, "disposition"), "attachment");
	a = json_array_get(atts, 1);
	CHECK_EQ_STR(str(a, "filename"), "pâté.png");
	CHECK_EQ_STR(str(a, "disposition"), "inline");
	CHECK_EQ_INT(json_integer_value(json_object_get(a, "size")), 7);
	a = json_array_get(atts, 2);
	CHECK_EQ_STR(str(a, "filename"), "notes.txt");
	CHECK(is_null(a, "disposition"));
	CHECK(is_null(o, "parse_error"));
	done(o);
}

/* Sizes are counted from the encoded bytes, not decoded: they must still equal what GMime's
 * decoders give, junk, early padding and damaged escapes included. */
static void test_attachment_sizes(void)
{
	json_t *o = parse("Subject: sizes\n"
			  "Content-Type: multipart/mixed; boundary=b\n"
			  "\n"
			  "--b\n"
			  "Content-Type: text/plain\n"
			  "\n"
			  "body\n"
			  "--b\n"
			  "Content-Type: application/octet-stream; name=a.bin\n"
			  "Content-Transfer-Encoding: base64\n"
			  "\n"
			  "QUJD\r\nQU*JD\r\nQUI=QUJD\r\n"
			  "--b\n"
			  "Content-Type: application/octet-stream; name=b.bin\n"
			  "Content-Transfer-Encoding: base64\n"
			  "\n"
			  "QUJDQ\n"
			  "--b\n"
			  "Content-Type: text/calendar; name=c.ics\n"
			  "Content-Transfer-Encoding: quoted-printable\n"
			  "\n"
			  "caf=C3=A9 soft=\nbreak=\r\nkept =zz and =4\n"
			  "--b\n"
			  "Content-Type: text/calendar; name=d.ics\n"
			  "Content-Transfer-Encoding: quoted-printable\n"
			  "\n"
			  "ends in =4\n"
			  "--b--\n");
	json_t *atts = json_object_get(o, "attachments");

	CHECK_EQ_INT(json_array_size(atts), 4);
	/* "ABC" "ABC" "AB": the '=' ends the data, what follows it is ignored */
	CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(atts, 0), "size")), 8);
	/* a trailing single character makes no byte */
	CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(atts, 1), "size")), 3);
	/* "café soft" "break" "kept =zz and ": soft breaks gone, "=zz" kept, "=4" at the end lost */
	CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(atts, 2), "size")), 28);
	CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(atts, 3), "size")), 8);
	done(o);
}

static void test_nested_rfc822(void)
{
	json_t *o = parse("Subject: Fwd: report\n"
			  "Content-Type: multipart/mixed; boundary=outer\n"
			  "\n"
			  "--outer\n"
			  "Content-Type: text/plain\n"
			  "\n"
			  "Forwarding this.\n"
			  "--outer\n"
			  "Content-Type: message/rfc822\n"
			  "\n"
			  "Subject: Quarterly report\n"
			  "From: boss@example.com\n"
			  "Content-Type: multipart/mixed; boundary=inner\n"
			  "\n"
			  "--inner\n"
			  "Content-Type: text/plain\n"
			  "\n"
			  "Inner body, not ours.\n"
			  "--inner\n"
			  "Content-Type: application/octet-stream\n"
			  "Content-Disposition: attachment; filename=q3.xls\n"
			  "\n"
			  "XLS\n"
			  "--inner--\n"
			  "--outer--\n");
	json_t *atts = json_object_get(o, "attachments"), *a = json_array_get(atts, 0);

	CHECK_EQ_STR(str(o, "subject"), "Fwd: report");
	CHECK_EQ_STR(str(o, "body_text"), "Forwarding this.");
	CHECK_EQ_INT(json_array_size(atts), 2);
	CHECK_EQ_STR(str(a, "content_type"), "message/rfc822");
	CHECK_EQ_STR(str(a, "filename"), "Quarterly report");
	CHECK(json_integer_value(json_object_get(a, "size")) > 150);
	CHECK_EQ_STR(str(json_array_get(atts, 1), "filename"), "q3.xls");
	CHECK(is_null(o, "parse_error"));
	done(o);
}

static void test_hostile_small(void)
{
#define RAW(s) s, sizeof(s) - 1
	static const struct {
		const char *raw;
		size_t len;
		const char *error; /* expected in parse_error, or NULL for none expected */
	} cases[] = {
		{ RAW(""), "empty input" },
		{ RAW("\x01\x02\xff\xfe garbage\n\0\0more"), "no headers" },
		{ RAW("hello world\n\nbody\n"), "no headers" },
		{ RAW("Subject: only headers"), NULL },
		{ RAW("Subject: nul\n\nbe\0fore\0after\n"), NULL },
		{ RAW("\n\nbody without headers\n"), "no headers" },
		{ RAW("Content-Type: multipart/mixed\n\nno boundary\n"), "multipart without boundary" },
		{ RAW("Content-Type: multipart/mixed; boundary=x\n\n--x\n"), NULL },
		{ RAW("Content-Type: text/plain; charset=\"\n\n\n"), NULL },
		{ RAW("Subject: =?utf-8?q?=00=FF?=\n\nx"), NULL },
		{ RAW("Content-Type: message/rfc822\n\n"), NULL },
		{ RAW("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!=\n"), NULL },
		{ RAW("Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\n"
		      "begin 644 a\n#86)C\n`\nend\n"), NULL },
	};
#undef RAW
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(cases); i++) {
		json_t *o = extract_message(cases[i].raw, cases[i].len, NULL);

		CHECK(o != NULL);
		if (o == NULL)
			continue;
		CHECK(valid_json_strings(o));
		CHECK_EQ_INT(strlen(str(o, "content_sha256")), 64);
		CHECK(str(o, "message_id") != NULL);
		if (cases[i].error != NULL && !error_has(o, cases[i].error)) {
			printf("  case %zu: parse_error lacks \"%s\"\n", i, cases[i].error);
			test_case_failed = 1;
		}
		done(o);
	}
}

static void test_unmatched_boundary_text_kept(void)
{
	json_t *o = parse("Subject: bad boundary\n"
			  "Content-Type: multipart/mixed; boundary=\"=_abc123\"\n\n"
			  "--=_abc124\nContent-Type: text/plain\n\nthe text\n--=_abc124--\n");

	CHECK(str(o, "body_text") != NULL && strstr(str(o, "body_text"), "the text") != NULL);
	CHECK(error_has(o, "no parts in multipart 1; its text kept as body"));
	done(o);
}

static void test_headless_text_kept(void)
{
	json_t *o = parse("just some words\nno headers here\n");

	CHECK(error_has(o, "no headers"));
	CHECK_EQ_STR(str(o, "body_text"), "just some words\nno headers here\n");
	done(o);
}

static void test_nul_in_body(void)
{
	static const char raw[] = "Subject: a\0b\nContent-Type: text/plain; charset=utf-16le\n\n"
				  "h\0i\0\0\0";
	json_t *o = extract_message(raw, sizeof raw - 1, NULL);

	CHECK(o != NULL && valid_json_strings(o));
	CHECK_EQ_STR(str(o, "body_text"), "hi");
	done(o);
}

/* Every prefix of a multipart message: the cut can fall anywhere, the output must stay sane. */
static void test_every_prefix(void)
{
	static const char raw[] =
		"From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\n"
		"Subject: =?iso-8859-1?q?pr=E9fix?=\r\n"
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
		"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
		"--b2\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9=\r\n au lait\r\n"
		"--b2\r\nContent-Type: text/html\r\n\r\n<p>Caf&eacute;</p>\r\n--b2--\r\n"
		"--b1\r\nContent-Type: application/pdf; name*=UTF-8''%C3%A9.pdf\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n";
	size_t n;

	for (n = 0; n <= sizeof raw - 1; n++) {
		json_t *o = extract_message(raw, n, NULL);

		if (o == NULL || !valid_json_strings(o)) {
			printf("  prefix %zu: bad output\n", n);
			test_case_failed = 1;
		}
		json_decref(o);
	}
}

static void test_part_limit(void)
{
	GString *g = g_string_new("Subject: many\nContent-Type: multipart/mixed; boundary=zz\n\n");
	json_t *o;
	int i;

	for (i = 0; i < 5000; i++)
		g_string_append_printf(g, "--zz\nContent-Type: application/x-n%d\n\n%d\n", i, i);
	g_string_append(g, "--zz--\n");
	o = extract_message(g->str, g->len, NULL);
	CHECK(o != NULL && valid_json_strings(o));
	CHECK(error_has(o, "part limit 1000 reached"));
	CHECK_EQ_INT(json_array_size(json_object_get(o, "attachments")), 999);
	done(o);
	g_string_free(g, TRUE);
}

/* Many lines starting with "--" that are not boundaries (a diff removing SQL comments) must
 * not trip the guard meant for part bombs. */
static void test_dash_lines_not_parts(void)
{
	GString *g = g_string_new("Subject: sql diff\n\n");
	json_t *o;
	int i;

	for (i = 0; i < 5000; i++)
		g_string_append(g, "--- comment\n");
	g_string_append(g, "END\n");
	o = extract_message(g->str, g->len, NULL);
	CHECK(o != NULL && is_null(o, "parse_error"));
	CHECK(o != NULL && g_str_has_suffix(str(o, "body_text"), "--- comment\nEND\n"));
	done(o);
	g_string_free(g, TRUE);
}

/* GMime spends hundreds of bytes per header, address or parameter: a few MB of them would cost
 * GBs, so parsing stops at a budget; the record says so and keeps what came before. */
static void test_header_bombs(void)
{
	static const struct {
		const char *opener, *item, *subject;
	} bombs[] = {
		{ "Subject: lines\n", "a:\n", "lines" },                 /* a header per line */
		{ "Subject: addrs\nTo: ", "a@b,", "addrs" },               /* an address per comma */
		{ "Subject: params\nContent-Type: text/plain", "; a=b", "params" },
		{ "Subject: refs\nReferences: ", "<a>", "refs" },          /* a message-id per '<' */
		{ "Subject: fwd\nContent-Type: message/rfc822\n\nSubject: inner\n", "b:\n", "fwd" },
	};
	size_t i;
	int k;

	for (i = 0; i < G_N_ELEMENTS(bombs); i++) {
		GString *g = g_string_new(bombs[i].opener);
		json_t *o;

		for (k = 0; k < 200000; k++)
			g_string_append(g, bombs[i].item);
		g_string_append(g, "\n\nbody\n");
		o = extract_message(g->str, g->len, NULL);
		CHECK(o != NULL && valid_json_strings(o));
		CHECK(error_has(o, "skipped: over 50000 header lines, addresses and parameters"));
		CHECK_EQ_STR(str(o, "subject"), bombs[i].subject);
		done(o);
		g_string_free(g, TRUE);
	}
}

static void test_nesting_limit(void)
{
	GString *g = g_string_new("Subject: deep\n");
	json_t *o;
	int i;

	for (i = 0; i < 200; i++)
		g_string_append_printf(g, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
	g_string_append(g, "Content-Type: text/plain\n\ndeepest\n");
	for (i = 199; i >= 0; i--)
		g_string_append_printf(g, "--b%d--\n", i);
	o = extract_message(g->str, g->len, NULL);
	CHECK(o != NULL && valid_json_strings(o));
	CHECK(error_has(o, "nesting limit 32 reached"));
	CHECK(is_null(o, "body_text"));
	done(o);
	g_string_free(g, TRUE);

	g = g_string_new("Subject: deep messages\n");
	for (i = 0; i < 200; i++)
		g_string_append_printf(g, "Content-Type: message/rfc822\n\nSubject: level %d\n", i);
	g_string_append(g, "\nbottom\n");
	o = extract_message(g->str, g->len, NULL);
	CHECK(o != NULL && valid_json_strings(o));
	CHECK(error_has(o, "nesting limit 32 reached"));
	CHECK(json_array_size(json_object_get(o, "attachments")) <= 33);
	done(o);
	g_string_free(g, TRUE);
}

static void test_text_limit(void)
{
	struct extract_limits lim;
	json_t *o;
	const char *raw = "Content-Type: text/plain; charset=utf-8\n\n"
			  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 and more\n";

	extract_limits_default(&lim);
	lim.max_text = 5;
	o = extract_message(raw, strlen(raw), &lim);
	CHECK_EQ_STR(str(o, "body_text"), "éé"); /* 4 bytes: the 5th would split an é */
	CHECK(error_has(o, "body_text truncated at 5 bytes"));
	done(o);
	lim.max_text = 4;
	raw = "Content-Type: text/html\n\n<p>abcdefgh</p>";
	o = extract_message(raw, strlen(raw), &lim);
	CHECK_EQ_STR(str(o, "body_html"), "<p>a");
	CHECK_EQ_STR(str(o, "body_text"), "a");
	CHECK(error_has(o, "body_html truncated at 4 bytes"));
	done(o);
}

static void test_snippet_length(void)
{
	GString *g = g_string_new("Subject: long\nContent-Type: text/plain; charset=utf-8\n\n");
	json_t *o;
	int i;

	for (i = 0; i < 300; i++)
		g_string_append(g, "\xc3\xa9 \t\n ");
	o = extract_message(g->str, g->len, NULL);
	CHECK_EQ_INT(g_utf8_strlen(str(o, "snippet"), -1), 200);
	CHECK(str(o, "snippet")[0] != ' ');
	done(o);
	g_string_free(g, TRUE);
}

struct big_input {
	GString *raw;
	json_t *out;
};

static void *extract_on_thread(void *data)
{
	struct big_input *in = data;

	in->out = extract_message(in->raw->str, in->raw->len, NULL);
	return NULL;
}

/* GMime copies charset names onto the stack with alloca; unguarded, a 1 MiB name overflows
 * the 256 KiB stack of the thread this runs on (a 9 MiB one overflows a main thread's 8 MiB). */
static void test_oversized_charset(void)
{
	size_t n = 1u << 20;
	struct big_input in = { g_string_new("Subject: =?"), NULL };
	pthread_attr_t attr;
	pthread_t thread;

	g_string_set_size(in.raw, n);
	memset(in.raw->str + 11, 'a', n - 11);
	g_string_append(in.raw, "?q?boom?=\nContent-Disposition: attachment; filename*=");
	g_string_set_size(in.raw, in.raw->len + n);
	memset(in.raw->str + in.raw->len - n, 'b', n);
	g_string_append(in.raw, "''x\n\nbody\n");
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256u << 10);
	CHECK(pthread_create(&thread, &attr, extract_on_thread, &in) == 0);
	pthread_join(thread, NULL);
	pthread_attr_destroy(&attr);
	CHECK(in.out != NULL && valid_json_strings(in.out));
	CHECK(error_has(in.out, "oversized charset name at byte 11 cut"));
	CHECK(error_has(in.out, "cut; oversized charset name at byte"));
	CHECK_EQ_INT(json_integer_value(json_object_get(
			     json_array_get(json_object_get(in.out, "attachments"), 0), "size")), 5);
	done(in.out);
	g_string_free(in.raw, TRUE);
}

/* ---- GMime's own test vectors (optional) ---- */

static json_t *load_vectors(const char *file)
{
	char *path = g_build_filename(VECTORS_DIR, file, NULL);
	json_t *j = g_file_test(path, G_FILE_TEST_EXISTS) ? json_load_file(path, 0, NULL) : NULL;

	g_free(path);
	return j;
}

/* A vector's input: a plain string, or {"bytes_latin1": "..."} for raw 8-bit bytes. */
static char *vector_bytes(json_t *v)
{
	const char *s;
	GString *g;

	if (json_is_string(v))
		return g_strdup(json_string_value(v));
	s = json_string_value(json_object_get(v, "bytes_latin1"));
	if (s == NULL)
		return NULL;
	g = g_string_new(NULL);
	for (; *s; s = g_utf8_next_char(s))
		g_string_append_c(g, (char)g_utf8_get_char(s));
	return g_string_free(g, FALSE);
}

static json_t *parse_header(const char *name, const char *value)
{
	char *raw = g_strdup_printf("%s: %s\n\nx\n", name, value);
	json_t *o = parse(raw);

	g_free(raw);
	return o;
}

static void test_gmime_vectors(void)
{
	json_t *mime = load_vectors("test-mime-vectors.json"), *tables, *e;
	static const char *const text_tables[] = { "rfc2047_text", "broken_rfc2047_text" };
	size_t i, t, checked = 0;

	if (mime == NULL)
		TEST_SKIP(VECTORS_DIR "/test-mime-vectors.json not found");
	tables = json_object_get(mime, "tables");

	/* RFC 2047 text: decoding must equal GMime's expected output, our wrapping intact. */
	for (t = 0; t < G_N_ELEMENTS(text_tables); t++) {
		json_array_foreach(json_object_get(json_object_get(tables, text_tables[t]), "entries"), i, e) {
			json_t *o = parse_header("Subject", json_string_value(json_object_get(e, "input")));

			CHECK_EQ_STR(str(o, "subject"), json_string_value(json_object_get(e, "decoded")));
			json_decref(o);
			checked++;
		}
	}

	/* References: ids in order. */
	json_array_foreach(json_object_get(json_object_get(tables, "references"), "entries"), i, e) {
		json_t *o = parse_header("References", json_string_value(json_object_get(e, "input")));
		json_t *ids = json_object_get(e, "ids"), *refs = json_object_get(o, "references");
		size_t k;

		CHECK_EQ_INT(json_array_size(refs), json_integer_value(json_object_get(e, "count")));
		for (k = 0; k < json_array_size(refs); k++)
			CHECK_EQ_STR(json_string_value(json_array_get(refs, k)),
				     json_string_value(json_array_get(ids, k)));
		json_decref(o);
		checked++;
	}

	/* Dates: the epoch GMime expects, as our UTC string; 0 means unparseable -> null. */
	json_array_foreach(json_object_get(json_object_get(tables, "dates"), "entries"), i, e) {
		json_t *o = parse_header("Date", json_string_value(json_object_get(e, "in")));
		gint64 epoch = json_integer_value(json_object_get(e, "date"));

		if (epoch == 0) {
			CHECK(is_null(o, "sent_at"));
		} else {
			GDateTime *d = g_date_time_new_from_unix_utc(epoch);
			char *want = g_date_time_format(d, "%Y-%m-%dT%H:%M:%SZ");

			CHECK_EQ_STR(str(o, "sent_at"), want);
			g_free(want);
			g_date_time_unref(d);
		}
		json_decref(o);
		checked++;
	}

	/* Address lists: GMime's display form is "name <addr>" per mailbox with groups kept; ours
	 * flattens groups, so check that each extracted address and name appears in it, in
	 * order, and that something was extracted whenever the display names an addr-spec. */
	static const char *const addr_tables[] = { "addrspec", "broken_addrspec" };
	for (t = 0; t < G_N_ELEMENTS(addr_tables); t++) {
		json_array_foreach(json_object_get(json_object_get(tables, addr_tables[t]), "entries"), i, e) {
			char *input = vector_bytes(json_object_get(e, "input"));
			const char *display = json_string_value(json_object_get(e, "display"));
			json_t *o, *to, *a;
			const char *at = display;
			size_t k;

			if (input == NULL || display == NULL) {
				g_free(input);
				continue;
			}
			o = parse_header("To", input);
			to = json_object_get(o, "to");
			if (strchr(display, '@') != NULL && json_array_size(to) == 0) {
				printf("  %s[%zu]: no address from \"%s\"\n", addr_tables[t], i, input);
				test_case_failed = 1;
			}
			json_array_foreach(to, k, a) {
				const char *name = str(a, "name"), *email = str(a, "email");
				const char *hit;

				if (name != NULL && strstr(display, name) == NULL) {
					printf("  %s[%zu]: name \"%s\" not in \"%s\"\n", addr_tables[t], i, name, display);
					test_case_failed = 1;
				}
				hit = email ? strstr(at, email) : NULL;
				if (hit == NULL) {
					printf("  %s[%zu]: email \"%s\" not in order in \"%s\"\n", addr_tables[t], i,
					       email ? email : "(null)", display);
					test_case_failed = 1;
				} else {
					at = hit + strlen(email);
				}
			}
			json_decref(o);
			g_free(input);
			checked++;
		}
	}
	/* Folded headers: unfolding must give GMime's value, whatever field it lands in. */
	json_t *headers = load_vectors("test-headers-vectors.json");
	json_array_foreach(json_object_get(json_object_get(json_object_get(headers, "tables"),
							   "headers"), "entries"), i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *value = json_string_value(json_object_get(e, "value"));
		char *raw = g_strdup_printf("%s:%s\nbody\n", name,
					    json_string_value(json_object_get(e, "raw_value")));
		json_t *o = parse(raw);

		if (g_ascii_strcasecmp(name, "Subject") == 0) {
			CHECK_EQ_STR(str(o, "subject"), value);
		} else if (g_ascii_strcasecmp(name, "Message-Id") == 0) {
			char *bare = g_strndup(value + 1, strlen(value) - 2);
			CHECK_EQ_STR(str(o, "message_id"), bare);
			g_free(bare);
		} else if (g_ascii_strcasecmp(name, "References") == 0) {
			CHECK_EQ_INT(json_array_size(json_object_get(o, "references")), 4);
			CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(o, "references"), 3)),
				     "3nqp09$r7t@ns2.ny.ubs.com");
		} else if (g_ascii_strcasecmp(name, "To") == 0) {
			char **want = g_strsplit(value, ", ", -1);
			size_t k;

			CHECK_EQ_INT(json_array_size(json_object_get(o, "to")), g_strv_length(want));
			for (k = 0; want[k] != NULL && k < json_array_size(json_object_get(o, "to")); k++)
				CHECK_EQ_STR(addr(o, "to", k, "email"), want[k]);
			g_strfreev(want);
		}
		json_decref(o);
		g_free(raw);
		checked++;
	}
	json_decref(headers);
	printf("  gmime vectors checked: %zu\n", checked);
	json_decref(mime);
}

/* The quick parse (GMime's warnings off unless they cannot be ruled out) must give the record
 * the parse with warnings gives, byte for byte: over the fuzz corpus and every file of
 * ../shared/corpora (messages, mboxes, vectors, transcripts: all of it is input). */
static void compare_tree(const char *dir, size_t *n, size_t *diff)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	struct extract_limits quick, warn;

	extract_limits_default(&quick);
	extract_limits_default(&warn);
	warn.always_warn = 1;
	while (d && (name = g_dir_read_name(d)) != NULL) {
		char *path = g_build_filename(dir, name, NULL);
		gchar *raw = NULL;
		gsize len = 0;

		if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
			compare_tree(path, n, diff);
		} else if (g_file_get_contents(path, &raw, &len, NULL) && len < (4u << 20)) {
			json_t *a = extract_message(raw, len, &quick), *b = extract_message(raw, len, &warn);

			if (!json_equal(a, b) && (*diff)++ < 5)
				printf("  %s: the quick parse differs (parse_error %s / %s)\n", path,
				       json_string_value(json_object_get(a, "parse_error")),
				       json_string_value(json_object_get(b, "parse_error")));
			++*n;
			json_decref(a);
			json_decref(b);
		}
		g_free(raw);
		g_free(path);
	}
	if (d)
		g_dir_close(d);
}

static void test_quick_parse_same(void)
{
	const char *root = getenv("MAILPIPE_CORPORA") ? getenv("MAILPIPE_CORPORA") : "../shared/corpora";
	size_t n = 0, diff = 0;

	compare_tree("tests/fuzz/corpus/extract", &n, &diff);
	compare_tree(root, &n, &diff);
	printf("  quick parse: %zu inputs, %zu differ\n", n, diff);
	CHECK(n >= 30);
	CHECK_EQ_INT(diff, 0);
}

int main(void)
{
	extract_global_init();
	TEST_RUN(test_plain_ascii);
	TEST_RUN(test_sha256);
	TEST_RUN(test_rfc2047);
	TEST_RUN(test_raw_8bit_headers);
	TEST_RUN(test_alternative);
	TEST_RUN(test_html_only);
	TEST_RUN(test_blank_text_uses_html);
	TEST_RUN(test_qp_latin1);
	TEST_RUN(test_8bit_no_charset);
	TEST_RUN(test_iconv_charsets);
	TEST_RUN(test_invalid_charset);
	TEST_RUN(test_synthetic_id);
	TEST_RUN(test_references);
	TEST_RUN(test_dates);
	TEST_RUN(test_groups);
	TEST_RUN(test_attachment_rfc2231);
	TEST_RUN(test_attachment_sizes);
	TEST_RUN(test_nested_rfc822);
	TEST_RUN(test_hostile_small);
	TEST_RUN(test_headless_text_kept);
	TEST_RUN(test_unmatched_boundary_text_kept);
	TEST_RUN(test_nul_in_body);
	TEST_RUN(test_every_prefix);
	TEST_RUN(test_part_limit);
	TEST_RUN(test_dash_lines_not_parts);
	TEST_RUN(test_header_bombs);
	TEST_RUN(test_nesting_limit);
	TEST_RUN(test_text_limit);
	TEST_RUN(test_snippet_length);
	TEST_RUN(test_oversized_charset);
	TEST_RUN(test_gmime_vectors);
	TEST_RUN(test_quick_parse_same);
	return test_summary();
}

/* Unit tests for parser/html.c: rendering rules case by case, broken and hostile markup,
 * inputs of 10 MB and 10,000 levels, and that libxml2 stays quiet on stderr.
 * Run by `make unit` / tests/run.sh; pure, no servers. */
#include "../../parser/html.h"

#include <stdint.h>
#include <unistd.h>

#include "test.h"

static char *render(const char *html)
{
	char *text = html_to_text(html, strlen(html), NULL);

	CHECK(text != NULL);
	return text;
}

/* Checks that html renders as want, and says which input failed. */
#define EXPECT(html, want)                                                \
	do {                                                              \
		char *got_ = render(html);                                \
		if (got_ == NULL || strcmp(got_, want) != 0)              \
			printf("  input: %s\n", html);                    \
		CHECK_EQ_STR(got_, want);                                 \
		free(got_);                                               \
	} while (0)

static int valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t len, k;

		if (*p < 0x80) {
			p++;
			continue;
		}
		len = *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : 2;
		if (*p < 0xC2 || *p > 0xF4)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[k] & 0xC0) != 0x80)
				return 0;
		}
		p += len;
	}
	return 1;
}

static void test_html_paragraphs(void)
{
	EXPECT("<p>One</p><p>Two</p>", "One\n\nTwo");
	EXPECT("<div>a</div><div>b</div>", "a\nb");
	EXPECT("<h1>Title</h1><p>text</p>", "Title\n\ntext");
	EXPECT("<section>a</section><article>b</article><footer>c</footer>", "a\nb\nc");
	EXPECT("x<hr>y", "x\n\ny");
	/* Whitespace collapses like a browser's, across inline elements too. */
	EXPECT("<p>  lots   of\n\tspace  </p>", "lots of space");
	EXPECT("<b>bold</b><i>italic</i>", "bolditalic");
	EXPECT("<b>bold </b> <i> italic</i>", "bold italic");
	EXPECT("<div>text <div>block</div> more</div>", "text\nblock\nmore");
	/* libxml2 puts leading text into a <p> of its own; that one draws no paragraph. */
	EXPECT("text <div>block</div> more", "text\nblock\nmore");
	EXPECT("Hi,<p>para</p>", "Hi,\n\npara");
	/* Empty spacer paragraphs, as mail uses them, leave one blank line at most. */
	EXPECT("<p>a</p><p>&nbsp;</p><p></p><p>&nbsp;</p><p>b</p>", "a\n\nb");
}

static void test_html_br(void)
{
	EXPECT("a<br>b", "a\nb");
	EXPECT("a<br><br>b", "a\n\nb");
	EXPECT("a<br><br><br><br><br>b", "a\n\nb");
	EXPECT("<br><br>a<br><br>", "a");
	EXPECT("<div>a<br></div><div>b</div>", "a\nb");
	EXPECT("<p>a<br/>b</p>", "a\nb");
}

static void test_html_lists(void)
{
	EXPECT("<ul><li>one</li><li>two</li></ul>", "- one\n- two");
	EXPECT("<ol><li>one</li><li>two</li></ol>", "1. one\n2. two");
	EXPECT("<ol start=\"7\"><li>seven</li><li>eight</li></ol>", "7. seven\n8. eight");
	EXPECT("<p>before</p><ul><li>a<ul><li>a1</li><li>a2</li></ul></li><li>b<ol><li>b1</li>"
	       "</ol></li></ul><p>after</p>",
	       "before\n\n- a\n  - a1\n  - a2\n- b\n  1. b1\n\nafter");
	/* Unclosed items, as HTML allows. */
	EXPECT("<ul><li>x<li>y</ul>", "- x\n- y");
	/* An empty item shows no marker. */
	EXPECT("<ul><li></li><li>z</li></ul>", "- z");
	EXPECT("<dl><dt>term</dt><dd>meaning</dd></dl>", "term\nmeaning");
}

static void test_html_links(void)
{
	EXPECT("<a href=\"https://example.com/a?b=1\">click here</a>",
	       "click here (https://example.com/a?b=1)");
	/* The text already shows the target. */
	EXPECT("<a href=\"https://www.example.com/\">example.com</a>", "example.com");
	EXPECT("<a href=\"http://x.org/p\">http://x.org/p</a>", "http://x.org/p");
	EXPECT("<a href=\"mailto:bob@example.com\">bob@example.com</a>", "bob@example.com");
	EXPECT("<a href=\"mailto:bob@example.com?subject=hi\">Bob</a>",
	       "Bob (mailto:bob@example.com?subject=hi)");
	/* Targets a reader cannot use are left out. */
	EXPECT("<a href=\"javascript:alert(1)\">js</a>", "js");
	EXPECT("<a href=\"/relative/path\">rel</a>", "rel");
	EXPECT("<a href=\"#top\">top</a>", "top");
	EXPECT("<a href=\"cid:logo@x\">logo</a>", "logo");
	EXPECT("<a name=\"anchor\">no href</a>", "no href");
	/* A link without text (an image without alt) is not shown as a bare URL. */
	EXPECT("<a href=\"https://track.example/c/1\"><img src=\"b.png\"></a>", "");
	EXPECT("<a href=\"https://x.org/\"><img src=\"b.png\" alt=\"Logo\"></a>", "Logo (https://x.org/)");
	/* Line breaks inside the href are dropped, as browsers do; entities are decoded. */
	EXPECT("<a href=\" https://x.org/a\n?b=1&amp;c=2 \">go</a> on", "go (https://x.org/a?b=1&c=2) on");
	EXPECT("Read <a href=\"https://x.org/doc\">the doc</a>.", "Read the doc (https://x.org/doc).");
}

static void test_html_tables(void)
{
	EXPECT("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>",
	       "a\tb\nc\td");
	EXPECT("<p>x</p><table><tr><td>1</td><td></td><td>3</td></tr></table><p>y</p>",
	       "x\n\n1\t3\n\ny");
	/* Layout tables, as mail builds them: blocks inside cells still end lines. */
	EXPECT("<table><tr><td><p>Hello</p><p>World</p></td></tr></table>", "Hello\n\nWorld");
	EXPECT("<table><tr><td>Name<td>Qty<tr><td>Tea<td>2</table>", "Name\tQty\nTea\t2");
}

static void test_html_entities(void)
{
	EXPECT("<p>Tom &amp; Jerry</p>", "Tom & Jerry");
	EXPECT("a&nbsp;b", "a b");
	EXPECT("it&#8217;s", "it\xE2\x80\x99s");
	EXPECT("caf&eacute; &#xE9;", "caf\xC3\xA9 \xC3\xA9");
	EXPECT("&lt;tag&gt; &quot;q&quot; &#39;s&#39;", "<tag> \"q\" 's'");
	EXPECT("&euro;5 &copy; &hellip;", "\xE2\x82\xAC" "5 \xC2\xA9 \xE2\x80\xA6");
	/* Unknown entities and ones without ';' stay as written (libxml2, unlike HTML5). */
	EXPECT("&bogus; AT&T &amp", "&bogus; AT&T &amp");
}

static void test_html_dropped_elements(void)
{
	EXPECT("<html><head><title>T</title><style>p{color:red}</style>"
	       "<script>var x = '<p>no</p>';</script></head><body><p>yes</p></body></html>",
	       "yes");
	EXPECT("<p>a<script>document.write('x')</script>b</p>", "ab");
	EXPECT("<noscript>enable js</noscript><template><p>t</p></template>ok", "ok");
	EXPECT("<!-- a comment --><p>c</p><!--[if mso]><p>outlook only</p><![endif]-->", "c");
	EXPECT("<iframe src=x>frame</iframe><object>obj</object><svg><text>s</text></svg>v", "v");
}

static void test_html_hidden(void)
{
	EXPECT("<div style=\"display:none;max-height:0;overflow:hidden\">Preheader text</div>"
	       "<p>Body</p>",
	       "Body");
	EXPECT("<span style=\"color:#fff; DISPLAY : None !important\">pre</span>Body", "Body");
	EXPECT("<div hidden>h</div><div style=\"visibility:hidden\">v</div>Body", "Body");
	/* Not hidden: display other than none, mso-hide (Outlook only). */
	EXPECT("<div style=\"display:block\">a</div><div style=\"mso-hide:all\">b</div>", "a\nb");
	EXPECT("<div style=\"display:nonesuch\">c</div>", "c");
}

static void test_html_images(void)
{
	EXPECT("<img src=\"a.png\" alt=\"Company logo\"> text", "Company logo text");
	EXPECT("<img src=\"a.png\"> text", "text");
	EXPECT("<img src=\"p.gif\" width=\"1\" height=\"1\" alt=\"pixel\">text", "text");
	EXPECT("<img src=\"p.gif\" width=\"0px\" alt=\"pixel\">text", "text");
	EXPECT("<img src=\"p.gif\" width=\"100\" alt=\"big\">", "big");
}

static void test_html_quotes_and_pre(void)
{
	EXPECT("<p>reply</p><blockquote><p>quoted</p><p>two</p></blockquote><p>end</p>",
	       "reply\n\n> quoted\n>\n> two\n\nend");
	EXPECT("<blockquote>a<blockquote>b</blockquote></blockquote>", "> a\n>\n>> b");
	EXPECT("<pre>\n  code\n    indented\n\n\n\nend</pre>after", "code\n    indented\n\nend\n\nafter");
	EXPECT("<p>x</p><pre>a  b\r\nc</pre>", "x\n\na  b\nc");
	EXPECT("<blockquote><pre>l1\nl2</pre></blockquote>", "> l1\n> l2");
}

static void test_html_broken_markup(void)
{
	EXPECT("<p>unclosed <b>bold <i>both<p>next", "unclosed bold both\n\nnext");
	EXPECT("</div></p>stray end tags</span>", "stray end tags");
	EXPECT("a < b and c > d", "a < b and c > d");
	EXPECT("<p>x<!-- never closed", "x");
	EXPECT("<div class=\"unterminated>text</div>", "");
	EXPECT("<p>a</p>>b<", "a\n\n>b<");
	EXPECT("<p>a</p></body></html><p>after the end</p>", "a\n\nafter the end");
}

static void test_html_empty(void)
{
	char *text;

	text = html_to_text(NULL, 0, NULL);
	CHECK(text != NULL && text[0] == '\0');
	free(text);
	text = html_to_text("<p>ignored</p>", 0, NULL);
	CHECK(text != NULL && text[0] == '\0');
	free(text);
	EXPECT("", "");
	EXPECT("   \n\t ", "");
	EXPECT("<html><body><p></p><div> </div></body></html>", "");
	/* Not NUL-terminated: only len bytes are read. */
	text = html_to_text("<p>abc</p>zzz", 10, NULL);
	CHECK_EQ_STR(text, "abc");
	free(text);
}

static void test_html_plain_text(void)
{
	/* Text that is not HTML reads as a browser would show it. */
	EXPECT("Hello,\n\nthis is plain text.\n", "Hello, this is plain text.");
	EXPECT("x", "x");
}

static void test_html_encodings(void)
{
	char *text;

	/* Input is UTF-8 whatever a <meta> says; bad bytes and NUL do not pass. */
	EXPECT("<meta charset=\"iso-8859-1\"><p>caf\xC3\xA9</p>", "caf\xC3\xA9");
	text = html_to_text("<p>a\xE9z\xFF\0b</p>", 12, NULL);
	CHECK_EQ_STR(text, "a\xEF\xBF\xBDz\xEF\xBF\xBD" "b");
	free(text);
	/* A charset hint converts first. */
	text = html_to_text("<p>caf\xE9 \x80</p>", 11, "windows-1252");
	CHECK_EQ_STR(text, "caf\xC3\xA9 \xE2\x82\xAC");
	free(text);
	text = html_to_text("<p>x</p>", 8, "no-such-charset");
	CHECK_EQ_STR(text, "x");
	free(text);
}

/* Bytes from a fixed xorshift sequence, HTML-ish and not. */
static void test_html_random_bytes(void)
{
	static const char *const pieces[] = {
		"<p>", "</p>", "<a href=\"http://x/\">", "</a>", "<li>", "<ul>", "<table><tr><td>",
		"&amp;", "&#", "<!--", "-->", "<pre>", "\n", " ", "\xC3", "\xA9", "\xFF", "<br>",
		"<blockquote>", "\"", "'", "=", "<img alt=", "<script>", "</script>", "x", "<",
	};
	uint32_t seed = 2463534242u;
	char buf[4096];
	int round;

	for (round = 0; round < 300; round++) {
		size_t len = 0;
		char *text;

		while (len < sizeof buf - 32) {
			const char *p;

			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			if (seed % 7 == 0) {
				buf[len++] = (char)(seed >> 8);
				continue;
			}
			p = pieces[(seed >> 4) % (sizeof pieces / sizeof pieces[0])];
			memcpy(buf + len, p, strlen(p));
			len += strlen(p);
			if (seed % 97 == 0)
				break;
		}
		text = html_to_text(buf, len, NULL);
		CHECK(text != NULL && valid_utf8(text) && strstr(text, "\n\n\n") == NULL);
		free(text);
	}
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
	size_t n = strlen(unit), t = strlen(tail), i;
	char *s = malloc(n * times + t + 1);

	for (i = 0; i < times; i++)
		memcpy(s + i * n, unit, n);
	memcpy(s + n * times, tail, t + 1);
	return s;
}

static void test_html_huge(void)
{
	char *html = repeat("<p>Hello <b>world</b> &amp; more</p>\n", 300000, "<p>THE END</p>");
	size_t len = strlen(html);
	char *text;

	CHECK(len > 10u << 20);
	text = html_to_text(html, len, NULL);
	CHECK(text != NULL);
	if (text != NULL) {
		CHECK(strncmp(text, "Hello world & more\n\nHello world", 31) == 0);
		CHECK(strlen(text) > 5u << 20);
		CHECK(strstr(text, "THE END") != NULL);
	}
	free(text);
	free(html);
}

/* 10,000 levels: libxml2 stops building the tree at 256, so text above the cut is kept, text
 * below is lost, and nothing recurses. */
static void test_html_deep(void)
{
	static const char *const units[] = { "<div>", "<span>", "<blockquote>", "<ul><li>", "<table><tr><td>" };
	size_t i;

	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		char *html = repeat(units[i], 10000, "deep");
		char *head = malloc(strlen(html) + 16);
		char *text;

		memcpy(head, "top ", 4);
		memcpy(head + 4, html, strlen(html) + 1);
		text = html_to_text(head, strlen(head), NULL);
		CHECK(text != NULL && strncmp(text, "top", 3) == 0);
		/* Quote markers and list indents are bounded however deep the nesting. */
		CHECK(text != NULL && strlen(text) < 100);
		free(text);
		free(head);
		free(html);
	}
}

/* libxml2 checks each attribute against every earlier one of its tag: a tag of 200,000 would
 * take minutes. html.c closes tags at HTML_MAX_ATTRIBUTES, so this stays fast, and what
 * follows the tag is still text. */
static void test_html_many_attributes(void)
{
	size_t n = 200000, i, len = 0;
	char *html = malloc(n * 12 + 64);
	char *text;

	len += (size_t)snprintf(html, 16, "<p ");
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(html + len, 16, "a%zu ", i);
	memcpy(html + len, ">after</p>", 11);
	len += 10;
	text = html_to_text(html, len, NULL);
	CHECK(text != NULL);
	if (text != NULL) {
		CHECK(strstr(text, "after") != NULL);
		/* Attributes up to the limit stay attributes, later ones become text. */
		CHECK(strstr(text, "a10 ") == NULL);
		CHECK(strstr(text, "a1000 ") != NULL);
	}
	free(text);
	free(html);
	/* Tags with a normal number of attributes are untouched. */
	EXPECT("<td style=\"a:b\" class=\"c\" width=\"1\" align=\"left\" valign=\"top\">cell</td>",
	       "cell");
}

/* Malformed input makes libxml2 report errors; none of it may reach stderr. */
static void test_html_quiet(void)
{
	static const char *const bad[] = {
		"<p>\xE9\xFF</p>", "<a href=\"x><b>", "</x></y><!DOCTYPE", "<p a=1 a=2 a=3>",
		"&#0; &#xD800; &#99999999;", "<html><html><body><body>", "<![CDATA[x",
	};
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t i;
	long size;

	CHECK(tmp != NULL && saved >= 0);
	if (tmp == NULL || saved < 0)
		return;
	fflush(stderr);
	dup2(fileno(tmp), STDERR_FILENO);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		free(html_to_text(bad[i], strlen(bad[i]), NULL));
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	fseek(tmp, 0, SEEK_END);
	size = ftell(tmp);
	fclose(tmp);
	CHECK_EQ_INT(size, 0);
}

int main(void)
{
	html_global_init();
	TEST_RUN(test_html_paragraphs);
	TEST_RUN(test_html_br);
	TEST_RUN(test_html_lists);
	TEST_RUN(test_html_links);
	TEST_RUN(test_html_tables);
	TEST_RUN(test_html_entities);
	TEST_RUN(test_html_dropped_elements);
	TEST_RUN(test_html_hidden);
	TEST_RUN(test_html_images);
	TEST_RUN(test_html_quotes_and_pre);
	TEST_RUN(test_html_broken_markup);
	TEST_RUN(test_html_empty);
	TEST_RUN(test_html_plain_text);
	TEST_RUN(test_html_encodings);
	TEST_RUN(test_html_random_bytes);
	TEST_RUN(test_html_huge);
	TEST_RUN(test_html_deep);
	TEST_RUN(test_html_many_attributes);
	TEST_RUN(test_html_quiet);
	return test_summary();
}

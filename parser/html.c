/* Owns HTML -> plain text: libxml2's HTML parser builds the tree, one iterative walk renders it.
 * Does not pick the HTML part, clean the text, or keep any state between calls.
 * Called by extract.c through html.h, by tests/unit/test_html.c and tests/fuzz/fuzz_html.c. */
#include "html.h"

#include <errno.h>
#include <iconv.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

/* NOBLANKS is left out on purpose: it drops whitespace-only text nodes by a guess, which
 * glues "<b>a</b> <i>b</i>" into "ab"; whitespace is collapsed here instead. IGNORE_ENC and
 * the explicit UTF-8 keep a <meta charset> from re-decoding text extract already converted. */
#define HTML_PARSE_OPTIONS                                                                  \
	(HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET | \
	 HTML_PARSE_COMPACT | HTML_PARSE_IGNORE_ENC)
#define HTML_MAX_INPUT ((size_t)INT_MAX / 2) /* libxml2 takes an int; the guard may add bytes */
#define HTML_MAX_QUOTE 8  /* "> " markers drawn at most; deeper quotes look the same */
#define HTML_MAX_INDENT 8 /* list levels indented at most */
#define HTML_NAME_MAX 100 /* libxml2's HTML_PARSER_BUFFER_SIZE: longer names split in two */

static const char utf8_replacement[] = "\xEF\xBF\xBD";

/* ---- output buffer ---- */

struct html_buf {
	char *s;
	size_t len, cap;
	int oom;
};

static int buf_reserve(struct html_buf *b, size_t more)
{
	size_t cap;
	char *s;

	if (b->oom)
		return -1;
	if (b->cap - b->len > more)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len <= more) {
		if (cap > SIZE_MAX / 2) {
			b->oom = 1;
			return -1;
		}
		cap *= 2;
	}
	s = realloc(b->s, cap);
	if (s == NULL) {
		b->oom = 1;
		return -1;
	}
	b->s = s;
	b->cap = cap;
	return 0;
}

static void buf_add(struct html_buf *b, const char *s, size_t n)
{
	if (n == 0 || buf_reserve(b, n) != 0)
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
}

static void buf_addc(struct html_buf *b, char c)
{
	buf_add(b, &c, 1);
}

static void buf_fill(struct html_buf *b, char c, size_t n)
{
	if (n == 0 || buf_reserve(b, n) != 0)
		return;
	memset(b->s + b->len, c, n);
	b->len += n;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if there is none (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF). NUL counts as invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	uint32_t cp;

	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

/* Appends s[0..n) to b with NUL dropped and each invalid byte replaced by U+FFFD. */
static void buf_add_utf8(struct html_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	while (i < n) {
		size_t k = utf8_seq(p + i, n - i);

		if (k > 0) {
			i += k;
			run += k;
			continue;
		}
		buf_add(b, s + i - run, run);
		run = 0;
		if (p[i] != 0)
			buf_add(b, utf8_replacement, 3);
		i++;
	}
	buf_add(b, s + i - run, run);
}

/* 1 when s[0..n) is valid UTF-8 without NUL. */
static int utf8_clean(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k;

		if (p[i] >= 0x01 && p[i] < 0x80) {
			i++;
			continue;
		}
		k = utf8_seq(p + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* Converts s[0..n) from charset to UTF-8 with iconv; returns -1 when iconv does not know the
 * charset (the caller then reads the input as UTF-8). Undecodable bytes become U+FFFD. */
static int html_from_charset(const char *charset, const char *s, size_t n, struct html_buf *out)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	char *in = (char *)s;
	size_t inleft = n;

	if (cd == (iconv_t)-1)
		return -1;
	while (inleft > 0 && !out->oom) {
		char *o;
		size_t oleft, before = inleft, written = out->len, rc;
		int err;

		if (buf_reserve(out, 4096) != 0)
			break;
		o = out->s + out->len;
		oleft = out->cap - out->len - 1;
		rc = iconv(cd, &in, &inleft, &o, &oleft);
		err = errno;
		out->len = (size_t)(o - out->s);
		if (rc != (size_t)-1)
			continue;
		if (err == E2BIG && (inleft < before || out->len > written))
			continue;
		buf_add(out, utf8_replacement, 3);
		if (err != EILSEQ)
			break; /* EINVAL: the input ends inside a character */
		in++;
		inleft--;
	}
	iconv_close(cd);
	return 0;
}

static int html_is_utf8_name(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

/* ---- the attribute guard ---- */

/* libxml2 2.9's htmlParseStartTag compares every new attribute name with all earlier ones of
 * the tag, so one tag of n attributes costs n^2/2 string compares: 50,000 took 5 s here, and
 * 4 MB of "a1 a2 a3 ..." would take hours. No option turns that off, so before parsing, a tag
 * reaching HTML_MAX_ATTRIBUTES attributes gets a '>' there, which ends it for libxml2 too; the
 * rest of it is read as text. Where a tag starts is not known without parsing (comments,
 * scripts, quoted values), so every "<letter" is taken as a possible start, and all
 * possible readings are followed at once, as an NFA over libxml2's tag grammar: the largest
 * attribute count of any reading in each state. Linear: eight states per byte at most. */
enum guard_state {
	G_BETWEEN,    /* before an attribute (or the tag name) */
	G_NAME,
	G_AFTER_NAME, /* blanks after a name: '=' may still come */
	G_EQUALS,     /* after '=' and blanks */
	G_BARE,       /* an unquoted value */
	G_DQUOTE,
	G_SQUOTE,
	G_JUNK,       /* bytes libxml2 skips up to the next blank */
	G_STATES
};

struct html_guard {
	int count[G_STATES]; /* attributes so far in the busiest reading, -1 when none */
	unsigned namelen;    /* bytes of the current name in state G_NAME */
};

static int guard_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int guard_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int guard_name_start(unsigned char c)
{
	return guard_alpha(c) || c == '_' || c == ':' || c == '.';
}

static int guard_name_char(unsigned char c)
{
	return guard_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static void guard_put(struct html_guard *g, enum guard_state s, int count)
{
	if (count > g->count[s])
		g->count[s] = count;
}

/* Moves every reading in cur over byte c into next. Returns 1 when a reading would start
 * attribute number HTML_MAX_ATTRIBUTES + 1 at c (next is then incomplete). */
static int guard_step(const struct html_guard *cur, struct html_guard *next, unsigned char c)
{
	int s;

	for (s = 0; s < G_STATES; s++)
		next->count[s] = -1;
	next->namelen = 0;
	for (s = 0; s < G_STATES; s++) {
		int k = cur->count[s];

		if (k < 0)
			continue;
		switch (s) {
		case G_BETWEEN:
		case G_AFTER_NAME:
			if (guard_blank(c))
				guard_put(next, (enum guard_state)s, k);
			else if (c == '>')
				; /* the tag ends */
			else if (s == G_AFTER_NAME && c == '=')
				guard_put(next, G_EQUALS, k);
			else if (guard_name_start(c)) {
				if (k >= HTML_MAX_ATTRIBUTES)
					return 1;
				guard_put(next, G_NAME, k + 1);
				next->namelen = next->namelen ? next->namelen : 1;
			} else
				guard_put(next, G_JUNK, k);
			break;
		case G_NAME:
			if (guard_name_char(c)) {
				/* libxml2 reads 100 bytes of a name and starts another one after. */
				if (cur->namelen >= HTML_NAME_MAX) {
					if (k >= HTML_MAX_ATTRIBUTES)
						return 1;
					guard_put(next, G_NAME, k + 1);
					next->namelen = next->namelen ? next->namelen : 1;
				} else {
					guard_put(next, G_NAME, k);
					if (cur->namelen + 1 > next->namelen)
						next->namelen = cur->namelen + 1;
				}
			} else if (guard_blank(c))
				guard_put(next, G_AFTER_NAME, k);
			else if (c == '=')
				guard_put(next, G_EQUALS, k);
			else if (c != '>')
				guard_put(next, G_JUNK, k);
			break;
		case G_EQUALS:
			if (guard_blank(c))
				guard_put(next, G_EQUALS, k);
			else if (c == '"')
				guard_put(next, G_DQUOTE, k);
			else if (c == '\'')
				guard_put(next, G_SQUOTE, k);
			else if (c != '>')
				guard_put(next, G_BARE, k);
			break;
		case G_BARE:
		case G_JUNK:
			if (guard_blank(c))
				guard_put(next, G_BETWEEN, k);
			else if (c != '>')
				guard_put(next, (enum guard_state)s, k);
			break;
		case G_DQUOTE:
			guard_put(next, c == '"' ? G_BETWEEN : G_DQUOTE, k);
			break;
		case G_SQUOTE:
			guard_put(next, c == '\'' ? G_BETWEEN : G_SQUOTE, k);
			break;
		}
	}
	return 0;
}

static int guard_idle(const struct html_guard *g)
{
	int s;

	for (s = 0; s < G_STATES; s++) {
		if (g->count[s] >= 0)
			return 0;
	}
	return 1;
}

/* Returns in *out a copy of in[0..len) with '>' inserted where a tag would pass
 * HTML_MAX_ATTRIBUTES, or leaves out->s NULL when nothing needed it. -1 on OOM. */
static int html_guard_attributes(const char *in, size_t len, struct html_buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	struct html_guard cur, next;
	size_t i = 0;
	int s;

	for (s = 0; s < G_STATES; s++)
		cur.count[s] = -1;
	cur.namelen = 0;
	while (i < len) {
		unsigned char c = p[i];

		if (guard_idle(&cur)) {
			/* Outside every possible tag: on to the next '<'. */
			const char *lt = memchr(in + i, '<', len - i);
			size_t to = lt ? (size_t)(lt - in) : len;

			if (out->s != NULL)
				buf_add(out, in + i, to - i);
			i = to;
			if (i == len)
				break;
			c = p[i];
		}
		if (guard_step(&cur, &next, c)) {
			/* Close every tag reading here; only quoted values go on, holding the '>'. */
			if (out->s == NULL) {
				if (buf_reserve(out, len + len / HTML_MAX_ATTRIBUTES + 16) != 0)
					return -1;
				buf_add(out, in, i);
			}
			buf_addc(out, '>');
			for (s = 0; s < G_STATES; s++) {
				if (s != G_DQUOTE && s != G_SQUOTE)
					cur.count[s] = -1;
			}
			guard_step(&cur, &next, c);
		}
		if (c == '<' && i + 1 < len && guard_alpha(p[i + 1]))
			guard_put(&next, G_BETWEEN, 0);
		if (out->s != NULL)
			buf_addc(out, (char)c);
		cur = next;
		i++;
	}
	return out->oom ? -1 : 0;
}

/* ---- rendering ---- */

enum html_kind {
	K_INLINE,
	K_SKIP,   /* neither it nor anything inside is shown */
	K_BR,
	K_HR,
	K_IMG,
	K_BLOCK,  /* starts and ends a line */
	K_PARA,   /* starts and ends a paragraph: one blank line around it */
	K_LIST,
	K_OLIST,
	K_ITEM,
	K_PRE,
	K_QUOTE,
	K_ROW,
	K_CELL,
	K_LINK,
};

/* Sorted by name for bsearch; libxml2 lowercases element names. */
static const struct html_element {
	const char *name;
	enum html_kind kind;
} html_elements[] = {
	{ "a", K_LINK },          { "address", K_BLOCK },   { "applet", K_SKIP },
	{ "article", K_BLOCK },   { "aside", K_BLOCK },     { "audio", K_SKIP },
	{ "blockquote", K_QUOTE }, { "body", K_BLOCK },     { "br", K_BR },
	{ "canvas", K_SKIP },     { "caption", K_BLOCK },   { "center", K_BLOCK },
	{ "datalist", K_SKIP },   { "dd", K_BLOCK },        { "details", K_BLOCK },
	{ "dialog", K_BLOCK },    { "dir", K_LIST },        { "div", K_BLOCK },
	{ "dl", K_PARA },         { "dt", K_BLOCK },        { "embed", K_SKIP },
	{ "fieldset", K_BLOCK },  { "figcaption", K_BLOCK }, { "figure", K_BLOCK },
	{ "footer", K_BLOCK },    { "form", K_BLOCK },      { "h1", K_PARA },
	{ "h2", K_PARA },         { "h3", K_PARA },         { "h4", K_PARA },
	{ "h5", K_PARA },         { "h6", K_PARA },         { "head", K_SKIP },
	{ "header", K_BLOCK },    { "hgroup", K_BLOCK },    { "hr", K_HR },
	{ "iframe", K_SKIP },     { "img", K_IMG },         { "legend", K_BLOCK },
	{ "li", K_ITEM },         { "listing", K_PRE },     { "main", K_BLOCK },
	{ "menu", K_LIST },       { "nav", K_BLOCK },       { "noembed", K_SKIP },
	{ "noframes", K_SKIP },   { "noscript", K_SKIP },   { "object", K_SKIP },
	{ "ol", K_OLIST },        { "option", K_BLOCK },    { "p", K_PARA },
	{ "plaintext", K_PRE },   { "pre", K_PRE },         { "script", K_SKIP },
	{ "section", K_BLOCK },   { "select", K_SKIP },     { "style", K_SKIP },
	{ "summary", K_BLOCK },   { "svg", K_SKIP },        { "table", K_BLOCK },
	{ "td", K_CELL },         { "template", K_SKIP },   { "th", K_CELL },
	{ "title", K_SKIP },      { "tr", K_ROW },          { "ul", K_LIST },
	{ "video", K_SKIP },      { "xmp", K_PRE },
};

struct html_frame {
	xmlNodePtr node;
	enum html_kind kind;
	size_t mark;       /* K_LINK: output length where its text starts */
	long number;       /* K_OLIST: the next item's number */
	size_t outer_list; /* lists: the enclosing list's frame, or SIZE_MAX */
};

struct html_render {
	struct html_buf out;
	struct html_frame *frames;
	size_t nframes, cap;
	size_t list;       /* innermost list frame, or SIZE_MAX */
	unsigned lists;    /* list nesting */
	unsigned quote;    /* blockquote nesting */
	unsigned pre;      /* pre nesting */
	unsigned nl;       /* line breaks owed before the next text: 0, 1 or 2 */
	unsigned nl_quote; /* quote depth of the blank line among them */
	unsigned breaks;   /* line breaks at the end of out since its last text */
	int bare_start;    /* the input starts with text, not markup */
	int space;         /* collapsed whitespace owed before the next text */
	int tab;           /* a table cell separator owed */
	char marker[48];   /* a list item's marker, owed to its first line of text */
	size_t marker_len;
};

static int html_element_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct html_element *)elem)->name);
}

static enum html_kind html_kind_of(const xmlChar *name)
{
	const struct html_element *e;

	if (name == NULL)
		return K_INLINE;
	e = bsearch(name, html_elements, sizeof html_elements / sizeof html_elements[0],
		    sizeof html_elements[0], html_element_cmp);
	return e ? e->kind : K_INLINE;
}

/* The value of attribute name (lowercase), "" when it has none, or NULL when absent. Borrowed
 * from the tree: the HTML parser gives each attribute one text child. */
static const char *html_attr(xmlNodePtr n, const char *name)
{
	xmlAttrPtr a;

	for (a = n->properties; a != NULL; a = a->next) {
		if (a->name != NULL && strcmp((const char *)a->name, name) == 0) {
			if (a->children != NULL && a->children->content != NULL)
				return (const char *)a->children->content;
			return "";
		}
	}
	return NULL;
}

static const char *html_skip_space(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f'))
		s++;
	return s;
}

/* An inline style hides its element with display:none or visibility:hidden, the way mail
 * hides preheaders: the preview line a client shows next to the subject, not in the body. */
static int html_style_hides(const char *s)
{
	const char *end = s + strlen(s);

	while (s < end) {
		const char *semi = memchr(s, ';', (size_t)(end - s));
		const char *stop = semi ? semi : end;
		const char *colon = memchr(s, ':', (size_t)(stop - s));

		if (colon != NULL) {
			const char *prop = html_skip_space(s, colon), *pend = colon;
			const char *value = html_skip_space(colon + 1, stop);
			size_t plen;

			while (pend > prop && (pend[-1] == ' ' || pend[-1] == '\t' || pend[-1] == '\n'))
				pend--;
			plen = (size_t)(pend - prop);
			if (plen == 7 && strncasecmp(prop, "display", 7) == 0 && stop - value >= 4 &&
			    strncasecmp(value, "none", 4) == 0 &&
			    (value + 4 == stop || !((value[4] | 0x20) >= 'a' && (value[4] | 0x20) <= 'z')))
				return 1;
			if (plen == 10 && strncasecmp(prop, "visibility", 10) == 0 && stop - value >= 6 &&
			    strncasecmp(value, "hidden", 6) == 0)
				return 1;
		}
		s = semi ? semi + 1 : end;
	}
	return 0;
}

static int html_hidden(xmlNodePtr n)
{
	const char *style;

	if (html_attr(n, "hidden") != NULL)
		return 1;
	style = html_attr(n, "style");
	return style != NULL && html_style_hides(style);
}

/* A width or height of 0 or 1 pixels: a tracking pixel, whatever its alt says. */
static int html_tiny(const char *v)
{
	const char *end;
	char *after;
	long n;

	if (v == NULL)
		return 0;
	end = v + strlen(v);
	v = html_skip_space(v, end);
	if (*v < '0' || *v > '9')
		return 0;
	n = strtol(v, &after, 10);
	v = after;
	if (strncasecmp(v, "px", 2) == 0)
		v += 2;
	return n <= 1 && html_skip_space(v, end) == end;
}

/* Owes n (1: end the line, 2: leave a blank line) line breaks before the next text. */
static void html_break(struct html_render *r, unsigned n)
{
	if (r->nl == 0 || r->quote < r->nl_quote)
		r->nl_quote = r->quote;
	if (n > r->nl)
		r->nl = n > 2 ? 2 : n;
}

/* Line breaks ending b, at most 2; a line of just the quote markers of depth quote counts
 * as blank. */
static unsigned html_trailing_breaks(const struct html_buf *b, unsigned quote)
{
	size_t i = b->len, marks = quote < HTML_MAX_QUOTE ? quote : HTML_MAX_QUOTE;
	unsigned n = 0;

	while (n < 2 && i > 0 && b->s[i - 1] == '\n') {
		n++;
		i--;
		if (marks > 0 && i > marks && b->s[i - marks - 1] == '\n' &&
		    strspn(b->s + i - marks, ">") >= marks)
			i -= marks;
	}
	return n;
}

/* Writes line breaks until want (at most 2) end the output: the first ends the current line
 * (its trailing blanks dropped), a second leaves a blank line, marked ">" inside quotes. */
static void html_newlines(struct html_render *r, unsigned want, unsigned quote)
{
	struct html_buf *b = &r->out;

	if (b->len == 0)
		return;
	if (r->breaks == 0) {
		/* The line may have held only blanks (pre text): then it was no line. */
		while (b->len > 0 && (b->s[b->len - 1] == ' ' || b->s[b->len - 1] == '\t'))
			b->len--;
		if (b->len == 0)
			return;
		r->breaks = html_trailing_breaks(b, quote);
	}
	while (r->breaks < want && r->breaks < 2) {
		if (r->breaks > 0 && quote > 0) {
			buf_fill(b, '>', quote < HTML_MAX_QUOTE ? quote : HTML_MAX_QUOTE);
		}
		buf_addc(b, '\n');
		r->breaks++;
	}
}

/* Settles what is owed before text: line breaks, else a tab or a space, then at the start of
 * a line the quote markers and a list marker. */
static void html_flush(struct html_render *r)
{
	struct html_buf *b = &r->out;

	if (b->len > 0) {
		if (r->nl > 0) {
			html_newlines(r, r->nl, r->nl_quote);
		} else if (r->breaks == 0 && (r->tab || r->space)) {
			char last = b->s[b->len - 1];

			if (r->tab)
				buf_addc(b, '\t');
			else if (last != ' ' && last != '\t')
				buf_addc(b, ' ');
		}
	}
	r->nl = 0;
	r->tab = 0;
	r->space = 0;
	if (b->len == 0 || r->breaks > 0) {
		if (r->quote > 0) {
			buf_fill(b, '>', r->quote < HTML_MAX_QUOTE ? r->quote : HTML_MAX_QUOTE);
			buf_addc(b, ' ');
		}
		buf_add(b, r->marker, r->marker_len);
		r->marker_len = 0;
	}
	r->breaks = 0;
}

static void html_emit(struct html_render *r, const char *s, size_t n)
{
	if (n == 0)
		return;
	html_flush(r);
	buf_add(&r->out, s, n);
}

/* Whitespace as a browser collapses it, plus U+00A0: a no-break space only keeps words
 * together on screen, and mail uses runs of them (and "<p>&nbsp;</p>") for spacing. */
static size_t html_space_len(const char *s)
{
	if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f')
		return 1;
	if ((unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xA0)
		return 2;
	return 0;
}

static void html_text(struct html_render *r, const char *s)
{
	while (*s != '\0') {
		size_t n = html_space_len(s), run = 0;

		if (n > 0) {
			r->space = 1;
			s += n;
			continue;
		}
		while (s[run] != '\0' && html_space_len(s + run) == 0)
			run++;
		html_emit(r, s, run);
		s += run;
	}
}

/* Text inside pre, kept as it is but for line ends; the newline right after <pre> is not
 * content (HTML 4.01 17.2.1, kept by libxml2). */
static void html_text_pre(struct html_render *r, xmlNodePtr n)
{
	const char *s = (const char *)n->content;

	if (n->prev == NULL && n->parent != NULL && html_kind_of(n->parent->name) == K_PRE) {
		if (s[0] == '\r')
			s++;
		if (s[0] == '\n')
			s++;
	}
	while (*s != '\0') {
		size_t run = strcspn(s, "\r\n");

		html_emit(r, s, run);
		s += run;
		if (*s == '\0')
			break;
		if (s[0] == '\r' && s[1] == '\n')
			s++;
		s++;
		if (r->out.len > 0) {
			unsigned owed = r->nl > r->breaks ? r->nl : r->breaks;

			html_newlines(r, owed + 1, r->nl > 0 ? r->nl_quote : r->quote);
			r->nl = 0;
			r->space = 0;
			r->tab = 0;
		}
	}
}

/* Strips a case-insensitive prefix from the slice [*s, end). */
static int html_strip_prefix(const char **s, const char *end, const char *prefix)
{
	size_t n = strlen(prefix);

	if ((size_t)(end - *s) < n || strncasecmp(*s, prefix, n) != 0)
		return 0;
	*s += n;
	return 1;
}

/* The part of a link target or text that names it: no scheme, "www." or trailing '/', and no
 * "?subject=..." of a mailto. */
static void html_target_core(const char **s, const char **end)
{
	*s = html_skip_space(*s, *end);
	while (*end > *s && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\n' ||
			     (*end)[-1] == '\r'))
		(*end)--;
	if (html_strip_prefix(s, *end, "mailto:")) {
		const char *q = memchr(*s, '?', (size_t)(*end - *s));

		if (q != NULL)
			*end = q;
		return;
	}
	if (!html_strip_prefix(s, *end, "https://"))
		html_strip_prefix(s, *end, "http://");
	html_strip_prefix(s, *end, "www.");
	while (*end > *s && (*end)[-1] == '/')
		(*end)--;
}

/* A link's text already shows its target: "example.com" for https://www.example.com/, the
 * address for mailto:, or the whole URL somewhere in the text. */
static int html_text_shows(const char *text, size_t tlen, const char *url)
{
	const char *t = text, *tend = text + tlen, *u = url, *uend = url + strlen(url);

	if (memmem(text, tlen, url, strlen(url)) != NULL)
		return 1;
	html_target_core(&t, &tend);
	html_target_core(&u, &uend);
	return tend - t == uend - u && strncasecmp(t, u, (size_t)(uend - u)) == 0;
}

/* After a link's text: " (url)" for an http(s) or mailto target the text does not show.
 * Other schemes (javascript:, data:, cid:, relative, "#") say nothing a reader can use, and
 * a link without text (an image without alt) is left out rather than shown as a bare URL. */
static void html_link_end(struct html_render *r, const struct html_frame *f)
{
	const char *href = html_attr(f->node, "href");
	struct html_buf url = { 0 };
	const char *text;
	size_t tlen, i;

	if (href == NULL || r->out.len <= f->mark)
		return;
	/* Browsers drop tabs and line breaks anywhere in a URL, and spaces around it. */
	for (i = 0; href[i] != '\0'; i++) {
		unsigned char c = (unsigned char)href[i];

		if (c >= 0x20 && c != 0x7f && !(c == ' ' && url.len == 0))
			buf_addc(&url, (char)c);
	}
	while (url.len > 0 && url.s[url.len - 1] == ' ')
		url.len--;
	buf_addc(&url, '\0');
	if (url.oom) {
		r->out.oom = 1;
		goto out;
	}
	if (strncasecmp(url.s, "http://", 7) != 0 && strncasecmp(url.s, "https://", 8) != 0 &&
	    strncasecmp(url.s, "mailto:", 7) != 0)
		goto out;
	text = r->out.s + f->mark;
	tlen = r->out.len - f->mark;
	if (html_skip_space(text, text + tlen) == text + tlen || html_text_shows(text, tlen, url.s))
		goto out;
	r->space = 1;
	html_emit(r, "(", 1);
	buf_add(&r->out, url.s, url.len - 1);
	buf_addc(&r->out, ')');
out:
	free(url.s);
}

static void html_image(struct html_render *r, xmlNodePtr n)
{
	const char *alt = html_attr(n, "alt");

	if (alt == NULL || html_tiny(html_attr(n, "width")) || html_tiny(html_attr(n, "height")))
		return;
	html_text(r, alt);
}

static void html_item_start(struct html_render *r)
{
	unsigned indent = r->lists > 1 ? r->lists - 1 : 0;
	struct html_frame *list = r->list != SIZE_MAX ? &r->frames[r->list] : NULL;
	int len;

	html_break(r, 1);
	if (indent > HTML_MAX_INDENT)
		indent = HTML_MAX_INDENT;
	if (list != NULL && list->kind == K_OLIST)
		len = snprintf(r->marker, sizeof r->marker, "%*s%ld. ", (int)(2 * indent), "",
			       list->number++);
	else
		len = snprintf(r->marker, sizeof r->marker, "%*s- ", (int)(2 * indent), "");
	r->marker_len = len > 0 && (size_t)len < sizeof r->marker ? (size_t)len : 0;
}

static int html_push(struct html_render *r, xmlNodePtr n, enum html_kind kind)
{
	struct html_frame *f;

	if (r->nframes == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct html_frame *frames = realloc(r->frames, cap * sizeof *frames);

		if (frames == NULL) {
			r->out.oom = 1;
			return -1;
		}
		r->frames = frames;
		r->cap = cap;
	}
	f = &r->frames[r->nframes++];
	f->node = n;
	f->kind = kind;
	f->mark = r->out.len;
	f->number = 1;
	f->outer_list = SIZE_MAX;
	return 0;
}

/* Called on the way down; returns 1 when the walk should visit n's children (and later call
 * html_leave for n), 0 when n is done. */
static int html_enter(struct html_render *r, xmlNodePtr n)
{
	enum html_kind kind;

	if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
		if (n->content == NULL)
			return 0;
		if (r->pre > 0)
			html_text_pre(r, n);
		else
			html_text(r, (const char *)n->content);
		return 0;
	}
	if (n->type != XML_ELEMENT_NODE)
		return 0; /* comments (Outlook's <!--[if mso]> too), DTD, processing instructions */
	kind = html_kind_of(n->name);
	if (kind == K_SKIP || html_hidden(n))
		return 0;
	/* libxml2 wraps text that opens a document in a <p> of its own making, which would end
	 * "Hi,<div>..." with a paragraph break a browser does not draw. That <p> is the body's
	 * first child, without attributes, and only then does the input start with text. */
	if (kind == K_PARA && r->bare_start && n->prev == NULL && n->properties == NULL &&
	    n->parent != NULL && n->parent->name != NULL &&
	    strcmp((const char *)n->parent->name, "body") == 0 &&
	    strcmp((const char *)n->name, "p") == 0)
		kind = K_INLINE;
	switch (kind) {
	case K_BR:
		html_break(r, (r->nl > r->breaks ? r->nl : r->breaks) + 1);
		return 0;
	case K_HR:
		html_break(r, 2);
		return 0;
	case K_IMG:
		html_image(r, n);
		return 0;
	default:
		break;
	}
	if (html_push(r, n, kind) != 0)
		return 0;
	switch (kind) {
	case K_BLOCK:
	case K_ROW:
		html_break(r, 1);
		break;
	case K_PARA:
		html_break(r, 2);
		break;
	case K_LIST:
	case K_OLIST: {
		struct html_frame *f = &r->frames[r->nframes - 1];
		const char *start = kind == K_OLIST ? html_attr(n, "start") : NULL;

		html_break(r, r->lists == 0 ? 2 : 1);
		if (start != NULL) {
			long v = strtol(start, NULL, 10);

			f->number = v > -1000000000L && v < 1000000000L ? v : 1;
		}
		f->outer_list = r->list;
		r->list = r->nframes - 1;
		r->lists++;
		break;
	}
	case K_ITEM:
		html_item_start(r);
		break;
	case K_PRE:
		html_break(r, 2);
		r->pre++;
		break;
	case K_QUOTE:
		html_break(r, 2);
		r->quote++;
		break;
	case K_CELL:
		r->tab = 1;
		break;
	default:
		break;
	}
	return 1;
}

static void html_leave(struct html_render *r)
{
	struct html_frame f;

	if (r->nframes == 0)
		return;
	f = r->frames[--r->nframes];
	switch (f.kind) {
	case K_BLOCK:
	case K_ROW:
		html_break(r, 1);
		break;
	case K_PARA:
		html_break(r, 2);
		break;
	case K_LIST:
	case K_OLIST:
		r->list = f.outer_list;
		r->lists--;
		html_break(r, r->lists == 0 ? 2 : 1);
		break;
	case K_ITEM:
		r->marker_len = 0; /* an item without text shows no marker */
		html_break(r, 1);
		break;
	case K_PRE:
		r->pre--;
		html_break(r, 2);
		break;
	case K_QUOTE:
		r->quote--;
		html_break(r, 2);
		break;
	case K_LINK:
		html_link_end(r, &f);
		break;
	default:
		break;
	}
}

/* Depth-first over the tree by its parent and sibling links, so that no nesting depth can
 * exhaust the C stack; the frames that remember open elements live on the heap. */
static void html_walk(struct html_render *r, xmlDocPtr doc)
{
	xmlNodePtr n = doc->children;

	while (n != NULL && !r->out.oom) {
		if (html_enter(r, n)) {
			if (n->children != NULL) {
				n = n->children;
				continue;
			}
			html_leave(r);
		}
		while (n->next == NULL) {
			n = n->parent;
			if (n == NULL || n == (xmlNodePtr)doc)
				return;
			html_leave(r);
		}
		n = n->next;
	}
}

/* ---- libxml2 set-up and the entry point ---- */

static void html_ignore_error(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void html_ignore_structured_error(void *ctx, xmlErrorPtr error)
{
	(void)ctx;
	(void)error;
}

void html_global_init(void)
{
	xmlInitParser();
	/* The parse options already mute the HTML parser; these also catch what libxml2 reports
	 * outside a parser context, here and in threads started later. */
	xmlSetGenericErrorFunc(NULL, html_ignore_error);
	xmlThrDefSetGenericErrorFunc(NULL, html_ignore_error);
	xmlSetStructuredErrorFunc(NULL, html_ignore_structured_error);
	xmlThrDefSetStructuredErrorFunc(NULL, html_ignore_structured_error);
}

char *html_to_text(const char *html, size_t len, const char *charset_hint)
{
	struct html_buf converted = { 0 }, clean = { 0 }, guarded = { 0 };
	struct html_render r;
	htmlParserCtxtPtr ctxt = NULL;
	htmlDocPtr doc = NULL;
	const char *in = html ? html : "";
	char *result = NULL;

	memset(&r, 0, sizeof r);
	r.list = SIZE_MAX;
	if (html == NULL)
		len = 0;
	if (len > HTML_MAX_INPUT)
		len = HTML_MAX_INPUT;
	if (charset_hint != NULL && charset_hint[0] != '\0' && !html_is_utf8_name(charset_hint) &&
	    html_from_charset(charset_hint, in, len, &converted) == 0) {
		if (converted.oom)
			goto out;
		in = converted.s ? converted.s : "";
		len = converted.len;
	}
	/* libxml2 copies invalid UTF-8 through to the tree and stops at NUL: give it clean text. */
	if (!utf8_clean(in, len)) {
		buf_add_utf8(&clean, in, len);
		if (clean.oom)
			goto out;
		in = clean.s ? clean.s : "";
		len = clean.len;
	}
	if (html_guard_attributes(in, len, &guarded) != 0)
		goto out;
	if (guarded.s != NULL) {
		in = guarded.s;
		len = guarded.len;
	}
	if (len > 0) {
		const char *first = html_skip_space(in, in + len);

		if (len - (size_t)(first - in) >= 3 && memcmp(first, "\xEF\xBB\xBF", 3) == 0)
			first += 3;
		r.bare_start = first < in + len && *first != '<';
		ctxt = htmlNewParserCtxt();
		if (ctxt == NULL)
			goto out;
		doc = htmlCtxtReadMemory(ctxt, in, (int)len, NULL, "UTF-8", HTML_PARSE_OPTIONS);
		if (doc == NULL && ctxt->errNo == XML_ERR_NO_MEMORY)
			goto out;
		if (doc != NULL)
			html_walk(&r, doc);
	}
	if (r.out.oom)
		goto out;
	while (r.out.len > 0 && (r.out.s[r.out.len - 1] == ' ' || r.out.s[r.out.len - 1] == '\t' ||
				 r.out.s[r.out.len - 1] == '\n'))
		r.out.len--;
	{
		/* Only indentation can lead (a nested list or pre first): trimmed too. */
		size_t lead = 0;

		while (lead < r.out.len && (r.out.s[lead] == ' ' || r.out.s[lead] == '\t'))
			lead++;
		if (lead > 0) {
			memmove(r.out.s, r.out.s + lead, r.out.len - lead);
			r.out.len -= lead;
		}
	}
	/* libxml2 makes UTF-8 of UTF-8, but the promise is kept here, not assumed. */
	if (!utf8_clean(r.out.s ? r.out.s : "", r.out.len)) {
		struct html_buf fixed = { 0 };

		buf_add_utf8(&fixed, r.out.s, r.out.len);
		free(r.out.s);
		r.out = fixed;
		if (r.out.oom)
			goto out;
	}
	if (buf_reserve(&r.out, 1) != 0)
		goto out;
	r.out.s[r.out.len] = '\0';
	result = r.out.s;
	r.out.s = NULL;
out:
	if (doc != NULL)
		xmlFreeDoc(doc);
	if (ctxt != NULL)
		htmlFreeParserCtxt(ctxt);
	free(r.frames);
	free(r.out.s);
	free(guarded.s);
	free(clean.s);
	free(converted.s);
	return result;
}

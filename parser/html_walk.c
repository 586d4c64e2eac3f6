/* Owns the walk over libxml2's tree: each element's kind, hidden elements and tracking pixels,
 * links, images, list items, and the iterative enter/leave that keeps no recursion. Not text and
 * whitespace (html_text.c). Called by html.c. */
#include "html_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>

#define HTML_MAX_INDENT 8 /* list levels indented at most */

/* ---- rendering ---- */

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

static int html_element_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct html_element *)elem)->name);
}

enum html_kind html_walk_kind_of(const xmlChar *name)
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

const char *html_walk_skip_space(const char *s, const char *end)
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
			const char *prop = html_walk_skip_space(s, colon), *pend = colon;
			const char *value = html_walk_skip_space(colon + 1, stop);
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
	v = html_walk_skip_space(v, end);
	if (*v < '0' || *v > '9')
		return 0;
	n = strtol(v, &after, 10);
	v = after;
	if (strncasecmp(v, "px", 2) == 0)
		v += 2;
	return n <= 1 && html_walk_skip_space(v, end) == end;
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
	*s = html_walk_skip_space(*s, *end);
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
			html_buf_addc(&url, (char)c);
	}
	while (url.len > 0 && url.s[url.len - 1] == ' ')
		url.len--;
	html_buf_addc(&url, '\0');
	if (url.oom) {
		r->out.oom = 1;
		goto out;
	}
	if (strncasecmp(url.s, "http://", 7) != 0 && strncasecmp(url.s, "https://", 8) != 0 &&
	    strncasecmp(url.s, "mailto:", 7) != 0)
		goto out;
	text = r->out.s + f->mark;
	tlen = r->out.len - f->mark;
	if (html_walk_skip_space(text, text + tlen) == text + tlen ||
	    html_text_shows(text, tlen, url.s))
		goto out;
	r->space = 1;
	html_text_emit(r, "(", 1);
	html_buf_add(&r->out, url.s, url.len - 1);
	html_buf_addc(&r->out, ')');
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

	html_text_break(r, 1);
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
/* The line breaks an element of this kind puts before and after itself: 1 ends the line, 2
 * leaves a blank line; 0 for kinds that break otherwise (lists, items) or not at all. */
static unsigned kind_gap(enum html_kind kind)
{
	switch (kind) {
	case K_BLOCK:
	case K_ROW:
		return 1;
	case K_PARA:
	case K_PRE:
	case K_QUOTE:
		return 2;
	default:
		return 0;
	}
}

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
	kind = html_walk_kind_of(n->name);
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
		html_text_break(r, (r->nl > r->breaks ? r->nl : r->breaks) + 1);
		return 0;
	case K_HR:
		html_text_break(r, 2);
		return 0;
	case K_IMG:
		html_image(r, n);
		return 0;
	default:
		break;
	}
	if (html_push(r, n, kind) != 0)
		return 0;
	if (kind_gap(kind)) /* before pre and quote count this element */
		html_text_break(r, kind_gap(kind));
	switch (kind) {
	case K_LIST:
	case K_OLIST: {
		struct html_frame *f = &r->frames[r->nframes - 1];
		const char *start = kind == K_OLIST ? html_attr(n, "start") : NULL;

		html_text_break(r, r->lists == 0 ? 2 : 1);
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
		r->pre++;
		break;
	case K_QUOTE:
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
	case K_LIST:
	case K_OLIST:
		r->list = f.outer_list;
		r->lists--;
		html_text_break(r, r->lists == 0 ? 2 : 1);
		break;
	case K_ITEM:
		r->marker_len = 0; /* an item without text shows no marker */
		html_text_break(r, 1);
		break;
	case K_PRE:
		r->pre--;
		break;
	case K_QUOTE:
		r->quote--;
		break;
	case K_LINK:
		html_link_end(r, &f);
		break;
	default:
		break;
	}
	if (kind_gap(f.kind)) /* after pre and quote no longer count this element */
		html_text_break(r, kind_gap(f.kind));
}

/* Depth-first over the tree by its parent and sibling links, so that no nesting depth can
 * exhaust the C stack; the frames that remember open elements live on the heap. */
void html_walk(struct html_render *r, xmlDocPtr doc)
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

/* Owns HTML -> plain text's entry point declared in html.h: input to UTF-8, the attribute guard,
 * libxml2's HTML parser, one walk. Does not pick the HTML part, clean the text, or keep any state
 * between calls. Called by extract.c through html.h, tests/unit/test_html.c, fuzz_html.c. */
#include "html_internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/HTMLparser.h>
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
	if (charset_hint != NULL && charset_hint[0] != '\0' &&
	    !html_buf_is_utf8_name(charset_hint) &&
	    html_buf_from_charset(charset_hint, in, len, &converted) == 0) {
		if (converted.oom)
			goto out;
		in = converted.s ? converted.s : "";
		len = converted.len;
	}
	/* libxml2 copies invalid UTF-8 through to the tree and stops at NUL: give it clean text. */
	if (!html_buf_utf8_clean(in, len)) {
		html_buf_add_utf8(&clean, in, len);
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
		const char *first = html_walk_skip_space(in, in + len);

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
	if (!html_buf_utf8_clean(r.out.s ? r.out.s : "", r.out.len)) {
		struct html_buf fixed = { 0 };

		html_buf_add_utf8(&fixed, r.out.s, r.out.len);
		free(r.out.s);
		r.out = fixed;
		if (r.out.oom)
			goto out;
	}
	if (html_buf_reserve(&r.out, 1) != 0)
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

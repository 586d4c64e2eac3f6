/* Owns HTML rendering's text and whitespace: collapsed spaces, owed line breaks and blank
 * lines, quote markers and list markers at line starts, pre text as it is. Not which element
 * does what (html_walk.c). Called by html_walk.c. */
#include "html_internal.h"

#include <string.h>

#include <libxml/tree.h>

#define HTML_MAX_QUOTE 8  /* "> " markers drawn at most; deeper quotes look the same */

/* Owes n (1: end the line, 2: leave a blank line) line breaks before the next text. */
void html_text_break(struct html_render *r, unsigned n)
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
			html_buf_fill(b, '>', quote < HTML_MAX_QUOTE ? quote : HTML_MAX_QUOTE);
		}
		html_buf_addc(b, '\n');
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
				html_buf_addc(b, '\t');
			else if (last != ' ' && last != '\t')
				html_buf_addc(b, ' ');
		}
	}
	r->nl = 0;
	r->tab = 0;
	r->space = 0;
	if (b->len == 0 || r->breaks > 0) {
		if (r->quote > 0) {
			html_buf_fill(b, '>',
				      r->quote < HTML_MAX_QUOTE ? r->quote : HTML_MAX_QUOTE);
			html_buf_addc(b, ' ');
		}
		html_buf_add(b, r->marker, r->marker_len);
		r->marker_len = 0;
	}
	r->breaks = 0;
}

void html_text_emit(struct html_render *r, const char *s, size_t n)
{
	if (n == 0)
		return;
	html_flush(r);
	html_buf_add(&r->out, s, n);
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

void html_text(struct html_render *r, const char *s)
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
		html_text_emit(r, s, run);
		s += run;
	}
}

/* Text inside pre, kept as it is but for line ends; the newline right after <pre> is not
 * content (HTML 4.01 17.2.1, kept by libxml2). */
void html_text_pre(struct html_render *r, xmlNodePtr n)
{
	const char *s = (const char *)n->content;

	if (n->prev == NULL && n->parent != NULL && html_walk_kind_of(n->parent->name) == K_PRE) {
		if (s[0] == '\r')
			s++;
		if (s[0] == '\n')
			s++;
	}
	while (*s != '\0') {
		size_t run = strcspn(s, "\r\n");

		html_text_emit(r, s, run);
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

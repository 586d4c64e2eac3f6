/* Owns the attribute guard: HTML rewritten before libxml2 sees it so that no tag carries more
 * attributes or longer names than libxml2 handles in linear time. Called by html.c. */
#include "html_internal.h"

#include <string.h>

#define HTML_NAME_MAX 100 /* libxml2's HTML_PARSER_BUFFER_SIZE: longer names split in two */

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
int html_guard_attributes(const char *in, size_t len, struct html_buf *out)
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
				html_buf_add(out, in + i, to - i);
			i = to;
			if (i == len)
				break;
			c = p[i];
		}
		if (guard_step(&cur, &next, c)) {
			/* Close every tag reading here; only quoted values go on, holding the '>'. */
			if (out->s == NULL) {
				if (html_buf_reserve(out, len + len / HTML_MAX_ATTRIBUTES + 16) !=
				    0)
					return -1;
				html_buf_add(out, in, i);
			}
			html_buf_addc(out, '>');
			for (s = 0; s < G_STATES; s++) {
				if (s != G_DQUOTE && s != G_SQUOTE)
					cur.count[s] = -1;
			}
			guard_step(&cur, &next, c);
		}
		if (c == '<' && i + 1 < len && guard_alpha(p[i + 1]))
			guard_put(&next, G_BETWEEN, 0);
		if (out->s != NULL)
			html_buf_addc(out, (char)c);
		cur = next;
		i++;
	}
	return out->oom ? -1 : 0;
}

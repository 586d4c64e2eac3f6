/* Owns the body cleaner's entry points declared in clean.h: lines in (both views of each line),
 * the passes run in order, text out. Not the classifiers or the passes themselves (clean_*.c).
 * Called via clean.h. */
#include "clean_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT ((size_t)1 << 30)

/* ---- lines in, text out ---- */

/* Offset of the first c in s[i..n), or n: line ends are found with memchr, a line at a time. */
static size_t next_of(const char *s, size_t i, size_t n, char c)
{
	const char *p = i < n ? memchr(s + i, c, n - i) : NULL;

	return p ? (size_t)(p - s) : n;
}

static size_t count_lines(const char *s, size_t n)
{
	size_t i, k = 0;

	for (i = next_of(s, 0, n, '\n'); i < n; i = next_of(s, i + 1, n, '\n'))
		k++;
	/* a CR not followed by LF ends a line too */
	for (i = next_of(s, 0, n, '\r'); i < n; i = next_of(s, i + 1, n, '\r'))
		k += i + 1 == n || s[i + 1] != '\n';
	return k + 1;
}

/* Fills the line offsets of the output view; returns the number of lines. */
static size_t split_lines(struct cleaner *c, const char *s, size_t n)
{
	size_t i = 0, start, k = 0, cr = next_of(s, 0, n, '\r');
	uint8_t eol;

	while (i < n) {
		start = i;
		if (cr < i)
			cr = next_of(s, i, n, '\r');
		i = next_of(s, i, n, '\n');
		eol = i < n ? EOL_LF : EOL_NONE;
		if (cr < i) {
			i = cr;
			eol = i + 1 < n && s[i + 1] == '\n' ? EOL_CRLF : EOL_CR;
		}
		c->l[k].oo = (uint32_t)start;
		c->l[k].on = (uint32_t)(i - start);
		c->l[k].eol = eol;
		k++;
		i += eol == EOL_CRLF ? 2 : eol == EOL_NONE ? 0 : 1;
	}
	return k;
}

/* Turns the raw line offsets into the classification view: quote level and trimmed text. */
static void prepare_line(struct cleaner *c, struct cline *L)
{
	const char *s = c->cb + L->co;
	size_t n = L->cn, i = 0, e, depth = 0, k;

	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (i < n && s[i] == '>') {
		depth++;
		i++;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
	}
	if (depth == 0 && n && is_alpha(s[0])) {
		/* Supercite: "Richard> text" */
		for (k = 0; k < n && k < 10 && is_alpha(s[k]); k++)
			;
		if (k < n && s[k] == '>' && (k + 1 == n || s[k + 1] == ' ')) {
			depth = 1;
			for (i = k + 1; i < n && s[i] == ' '; i++)
				;
		}
	}
	e = n;
	while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	L->depth = (uint8_t)(depth > 255 ? 255 : depth);
	L->co += (uint32_t)i;
	L->cn = (uint32_t)(e - i);
	L->keep = 1;
}

/* Strips up to k '>' levels from an output line. */
static void unquote(const char **p, size_t *n, unsigned k)
{
	const char *s = *p, *e = *p + *n, *q = s;

	while (q < e && (*q == ' ' || *q == '\t'))
		q++;
	if (q == e || *q != '>')
		return;
	s = q;
	while (k && s < e && *s == '>') {
		s++;
		k--;
		if (s < e && *s == ' ')
			s++;
	}
	*n = (size_t)(e - s);
	*p = s;
}

static char *render(const struct cleaner *c, size_t cap)
{
	static const char *const eols[] = { "", "\n", "\r\n", "\r" };
	/* With whitespace normalised, a kept line may be preceded by two newlines (the line break
	 * and a gap where a forward header was dropped) although its own line ending was one
	 * byte, or none at the end of the input: room for that beyond cap. */
	char *out = malloc(cap + 2 * c->n + 2);
	size_t i, o = 0, n;
	int ws = (c->steps & CLEAN_WHITESPACE) != 0, gap = 0, any = 0;
	const char *p;

	if (!out)
		return NULL;
	for (i = 0; i < c->n; i++) {
		const struct cline *L = &c->l[i];

		if (L->flags & LF_SEG)
			gap = any; /* a dropped forward header still parts the texts around it */
		if (!L->keep)
			continue;
		p = c->ob + L->oo;
		n = L->on;
		if ((c->steps & CLEAN_FORWARD_HEADERS) && L->base && L->depth)
			unquote(&p, &n, L->base);
		if (!ws) {
			memcpy(out + o, p, n);
			o += n;
			n = strlen(eols[L->eol]);
			memcpy(out + o, eols[L->eol], n);
			o += n;
			continue;
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0) {
			gap = any;
			continue;
		}
		if (any)
			out[o++] = '\n';
		if (gap)
			out[o++] = '\n';
		memcpy(out + o, p, n);
		o += n;
		gap = 0;
		any = 1;
	}
	out[o] = '\0';
	return out;
}

/* ---- API ---- */

char *clean_text_subject(const char *text, size_t len, unsigned steps, const char *subject)
{
	struct cleaner c;
	char *cb = NULL, *ob = NULL, *out = NULL;
	size_t cn = 0, on, i;

	memset(&c, 0, sizeof(c));
	if (!text)
		len = 0;
	if (len >= MAX_INPUT) {
		/* Line offsets are 32-bit; such a body is no mail anyone reads whole. */
		out = malloc(2 * len + 1);
		if (out)
			out[clean_utf8_clean((const unsigned char *)text, len,
					     (steps & CLEAN_INVISIBLE) != 0, out)] = '\0';
		return out;
	}
	ob = malloc(2 * len + 1);
	if (!ob)
		goto out;
	on = clean_utf8_clean((const unsigned char *)text, len, (steps & CLEAN_INVISIBLE) != 0, ob);
	c.ob = ob;
	c.steps = steps;
	c.hint_fwd = subject && clean_lines_subject_is_fwd(subject, strlen(subject));
	c.n = count_lines(ob, on);
	c.l = calloc(c.n, sizeof(*c.l));
	if (!c.l)
		goto out;
	c.n = split_lines(&c, ob, on);
	/* The classifiers always see the text without invisible characters; cleaning each line
	 * on its own keeps the two views line for line (a stripped character between CR and LF
	 * would otherwise join two line ends into one). Valid UTF-8 never grows here. */
	if (steps & CLEAN_INVISIBLE) {
		cb = ob;
	} else {
		cb = malloc(on + 1);
		if (!cb)
			goto out;
	}
	for (i = 0; i < c.n; i++) {
		if (cb != ob) {
			c.l[i].co = (uint32_t)cn;
			c.l[i].cn = (uint32_t)clean_utf8_clean(
			    (const unsigned char *)ob + c.l[i].oo, c.l[i].on, 1, cb + cn);
			cn += c.l[i].cn;
		} else {
			c.l[i].co = c.l[i].oo;
			c.l[i].cn = c.l[i].on;
		}
	}
	c.cb = cb;
	for (i = 0; i < c.n; i++)
		prepare_line(&c, &c.l[i]);
	if (steps & (CLEAN_FORWARD_HEADERS | CLEAN_QUOTES))
		clean_structure_pass(&c);
	clean_tail_pass(&c);
	if (steps & CLEAN_QUOTES) {
		clean_tail_pass_trailing_quotes(&c);
		clean_tail_pass(&c);
	}
	if (steps & CLEAN_LINK_LINES)
		clean_tail_pass_links(&c);
	out = render(&c, on);
out:
	free(c.l);
	if (cb != ob)
		free(cb);
	free(ob);
	return out;
}

char *clean_text(const char *text, size_t len, unsigned steps)
{
	return clean_text_subject(text, len, steps, NULL);
}

static const char *const step_names[] = {
	"forward_headers", "quotes", "signature", "footers", "link_lines", "invisible", "whitespace",
};

unsigned clean_step_from_name(const char *name)
{
	size_t i;

	if (!name)
		return 0;
	for (i = 0; i < sizeof(step_names) / sizeof(step_names[0]); i++)
		if (strcmp(name, step_names[i]) == 0)
			return 1u << i;
	return 0;
}

const char *clean_step_name(unsigned step)
{
	size_t i;

	for (i = 0; i < sizeof(step_names) / sizeof(step_names[0]); i++)
		if (step == 1u << i)
			return step_names[i];
	return NULL;
}

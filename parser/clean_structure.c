/* Owns the cleaner's structure pass: forwarded and replied messages (markers, header blocks,
 * attributions, quote blocks), dropped or cut per step. Not signatures, footers or link lines
 * (clean_tail.c). Called by clean.c. */
#include "clean_internal.h"

#include <stdint.h>

#define HBLOCK_MAX 32 /* lines of one forwarded/replied header block */

enum { C_BLANK, C_T, C_Q, C_X };

/* ---- the structure pass: forwards and replies ---- */

size_t clean_structure_next_nonblank(const struct cleaner *c, size_t i)
{
	while (i < c->n && is_blank(c, i))
		i++;
	return i;
}

static int lclass(struct cleaner *c, size_t i, unsigned base)
{
	struct str t;

	if (is_blank(c, i))
		return C_BLANK;
	if (eff_depth(c, i, base) > 0)
		return C_Q;
	t = content(c, i);
	if (clean_lines_delim_kind(t) == 1 || clean_lines_marker_kind(t) ||
	    clean_lines_label_family(c, i) == LAB_FROM)
		return C_X;
	return C_T;
}

/* First non-empty line at or after i whose class is not cls (or n); counts up to max lines. */
static size_t run_end(struct cleaner *c, size_t i, int cls, unsigned base, size_t max,
		      size_t *count)
{
	size_t k = 0;

	for (; i < c->n; i++) {
		int lcls = lclass(c, i, base);
		if (lcls == C_BLANK)
			continue;
		if (lcls != cls || k >= max)
			break;
		k++;
	}
	if (count)
		*count = k;
	return i;
}

/* After an attribution that follows the writer's text: 1 when the quote below it is answered
 * in between (interleaved, or a real text follows it, not just a signature), so only the
 * attribution goes; 0 when everything from the attribution down is the old message. */
static int reply_is_inline(struct cleaner *c, size_t i, unsigned base)
{
	size_t j = clean_structure_next_nonblank(c, i), k, m, cnt;

	if (j == c->n || lclass(c, j, base) != C_Q)
		return 0;
	k = run_end(c, j, C_Q, base, NONE, NULL);
	if (k == c->n || lclass(c, k, base) != C_T)
		return 0;
	m = run_end(c, k, C_T, base, 5, &cnt);
	if (cnt >= 5)
		return 1;
	return m < c->n && lclass(c, m, base) == C_Q;
}

/* After an attribution with nothing above it: the end of the quote it introduces when that
 * quote is simply answered below (bottom-posting), else i (keep the quotes of an inline reply). */
static size_t top_quote_end(struct cleaner *c, size_t i, unsigned base)
{
	size_t j = clean_structure_next_nonblank(c, i), k, m;

	if (j == c->n || lclass(c, j, base) != C_Q)
		return i;
	k = run_end(c, j, C_Q, base, NONE, NULL);
	if (k == c->n || lclass(c, k, base) == C_X)
		return k;
	m = run_end(c, k, C_T, base, NONE, NULL);
	if (m == c->n || lclass(c, m, base) == C_X)
		return k;
	return i;
}

/* The header block starting at line i: its end, or i if there is none. Without a marker line
 * above, it must start with From and hold one more of Date/To/Cc/Subject. */
static size_t hblock_scan(struct cleaner *c, size_t i, int after_marker, int *subj_fwd)
{
	struct cline *l = c->l;
	size_t j = i, labels_seen = 0, v;
	unsigned fams = 0, d = l[i].depth;
	int f;

	*subj_fwd = 0;
	while (j < c->n && j - i < HBLOCK_MAX) {
		if (!l[j].keep || l[j].depth != d || l[j].cn == 0)
			break;
		f = clean_lines_label_family(c, j);
		if (f) {
			fams |= 1u << f;
			labels_seen++;
			if (f == LAB_SUBJECT) {
				struct str t = content(c, j);
				clean_lines_label_of(t.s, t.n, &v);
				*subj_fwd = clean_lines_subject_is_fwd(t.s + v, t.n - v);
			}
			j++;
			continue;
		}
		/* a wrapped value: "Subject: a long\nsubject\nTo: ..." */
		if (labels_seen && j + 1 < c->n && l[j + 1].keep && l[j + 1].depth == d &&
		    l[j + 1].cn && clean_lines_label_family(c, j - 1) &&
		    clean_lines_label_family(c, j + 1)) {
			j++;
			continue;
		}
		break;
	}
	if (after_marker)
		return labels_seen ? j : i;
	if (clean_lines_label_family(c, i) != LAB_FROM || labels_seen < 2 ||
	    !(fams & ((1u << LAB_DATE) | (1u << LAB_TO) | (1u << LAB_SUBJECT) | (1u << LAB_CC))))
		return i;
	return j;
}

void clean_structure_drop(struct cleaner *c, size_t a, size_t b)
{
	for (; a < b && a < c->n; a++)
		c->l[a].keep = 0;
}

/* Everything from line i down is the replied-to message; the separator lines just above
 * ("-----", "_____", empty lines) go with it. */
static void cut(struct cleaner *c, size_t i)
{
	while (i > 0 && c->l[i - 1].keep &&
	       (is_blank(c, i - 1) ||
		(c->l[i - 1].depth == 0 && clean_lines_delim_kind(content(c, i - 1)))))
		i--;
	clean_structure_drop(c, i, c->n);
}

/* Lines [i, end) introduce a forwarded message: clean_structure_drop them (with the step) and make
 * what follows a region of its own, unquoted to the level its first line has. */
static unsigned region_start(struct cleaner *c, size_t i, size_t end)
{
	size_t j, a = i;

	if (c->steps & CLEAN_FORWARD_HEADERS) {
		clean_structure_drop(c, i, end);
		while (a > 0 && c->l[a - 1].keep &&
		       (is_blank(c, a - 1) || (c->l[a - 1].depth == c->l[i].depth &&
					       clean_lines_delim_kind(content(c, a - 1)) == 2)))
			c->l[--a].keep = 0;
	}
	c->l[i].flags |= LF_SEG;
	for (j = end; j < c->n && j < end + 64 && is_blank(c, j); j++)
		;
	return j < c->n && j < end + 64 ? c->l[j].depth : c->l[i].depth;
}

/* An attribution inside a quote belongs to the quote, unless it opens the quote block. */
static int attr_top(const struct cleaner *c, size_t s, size_t floor, unsigned base)
{
	size_t p = s;

	if (eff_depth(c, s, base) == 0)
		return 1;
	while (p > floor && (is_blank(c, p - 1) || !c->l[p - 1].keep))
		p--;
	return p == floor || eff_depth(c, p - 1, base) == 0;
}

void clean_structure_pass(struct cleaner *c)
{
	struct cline *l = c->l;
	size_t i, s, end, first = NONE, floor = 0, k;
	unsigned base = 0, ed;
	int fence = 0, pending = c->hint_fwd, prev_ed = -1, mk, sf, fwd, quotes, top;
	struct str t;

	quotes = (c->steps & CLEAN_QUOTES) != 0;
	if (c->n)
		l[0].flags |= LF_SEG;
	for (i = 0; i < c->n; i++) {
		l[i].base = (uint8_t)base;
		if (!l[i].keep)
			continue;
		t = content(c, i);
		ed = eff_depth(c, i, base);
		if (fence || (ed == 0 && clean_lines_is_fence(t))) {
			fence = fence ? !(ed == 0 && clean_lines_is_fence(t)) : 1;
			l[i].flags |= LF_FENCE;
			goto text;
		}
		if (is_blank(c, i))
			continue;
		/* Separators count at the writer's level, or where a quote block begins. */
		top = ed == 0 || prev_ed <= 0;
		prev_ed = (int)ed;
		/* A forwarded/original-message marker, or a From: header block at the top: either
		 * opens a region (forwarded content starts over) or, for a reply, is cut with what
		 * follows. end is past its header block (i when there is none). */
		mk = top ? clean_lines_marker_kind(t) : MK_NONE;
		end = i;
		sf = 0;
		if (mk) {
			end = i + 1;
			for (k = i + 1; k < c->n && k < i + 4 && l[k].keep && l[k].cn == 0; k++)
				;
			if (k < c->n && clean_lines_label_family(c, k)) {
				size_t e2 = hblock_scan(c, k, 1, &sf);
				if (e2 > k)
					end = e2;
			}
		} else if (top && clean_lines_label_family(c, i) == LAB_FROM) {
			end = hblock_scan(c, i, 0, &sf);
		}
		if (end > i) {
			fwd = mk == MK_FWD || pending || first == NONE;
			pending = sf;
			if (fwd) {
				base = region_start(c, i, end);
				first = NONE;
				floor = end;
				prev_ed = -1;
			} else if (quotes) {
				cut(c, i);
				return;
			}
			for (; i + 1 < end; i++)
				l[i + 1].base = (uint8_t)base;
			continue;
		}
		s = clean_attribution_find(c, i, floor);
		if (s != NONE && !attr_top(c, s, floor, base))
			s = NONE;
		if (s != NONE) {
			fwd = pending;
			pending = 0;
			if (fwd) {
				base = region_start(c, s, i + 1);
				first = NONE;
				floor = i + 1;
				prev_ed = -1;
				continue;
			}
			if (quotes) {
				if (first != NONE && first < s) {
					if (!reply_is_inline(c, i + 1, base)) {
						cut(c, s);
						return;
					}
					clean_structure_drop(c, s, i + 1);
				} else {
					end = top_quote_end(c, i + 1, base);
					clean_structure_drop(c, s, end);
					for (; i + 1 < end; i++)
						l[i + 1].base = (uint8_t)base;
					first = NONE;
				}
				floor = i + 1;
				continue;
			}
		}
	text:
		if (first == NONE && !is_blank(c, i))
			first = i;
	}
}

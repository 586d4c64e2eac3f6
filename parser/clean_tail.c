/* Owns the cleaner's tail passes: signatures, footers, link lines and trailing quotes. Not the
 * forward/reply structure (clean_structure.c). Called by clean.c. */
#include "clean_internal.h"

#include <stdint.h>
#include <string.h>

#define TAIL_LINES 40 /* footers are looked for in this many last non-empty lines */

/* ---- signatures, footers, links, trailing quotes ---- */

/* The first kept non-empty line; cuts at the end never empty the whole message. */
static size_t first_kept(struct cleaner *c)
{
	while (c->fk < c->n && (!c->l[c->fk].keep || is_blank(c, c->fk)))
		c->fk++;
	return c->fk;
}

static int plain(const struct cleaner *c, size_t i)
{
	return c->l[i].keep && !(c->l[i].flags & LF_FENCE) && eff_depth(c, i, c->l[i].base) == 0;
}

/* clean_lines_delim_kind, except that a line of '=' or '-' right under text underlines a heading.
 */
static int delim_at(struct cleaner *c, size_t i)
{
	struct str t = content(c, i);
	int k = clean_lines_delim_kind(t);

	if (k == 2 && i > 0 && (t.s[0] == '=' || t.s[0] == '-') && c->l[i - 1].keep &&
	    !is_blank(c, i - 1) && !clean_lines_delim_kind(content(c, i - 1)))
		return 0;
	return k;
}

static void drop_tail(struct cleaner *c, size_t i, size_t b)
{
	if (first_kept(c) < i)
		clean_structure_drop(c, i, b);
}

static int is_mailing_list(struct str t)
{
	return clean_words_find_ci(t.s, t.n, "mailing list") ||
	       clean_words_find_ci(t.s, t.n, "listinfo") ||
	       clean_words_find_ci(t.s, t.n, "mailman");
}

/* The footer evidence of line i that depends on its own text only. */
static unsigned footer_flags(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];
	struct str t;
	const char *const *w;
	unsigned f = TF_FOOT_DONE;
	size_t k;

	if (L->tf & TF_FOOT_DONE)
		return L->tf;
	t = content(c, i);
	if (clean_words_may_start(c, WL_FOOTER_START, t.s, t.n) &&
	    clean_words_starts_any(t.s, t.n, clean_words_footer_start))
		f |= TF_FOOTER;
	for (w = clean_words_footer_words; !(f & TF_FOOTER) && *w && t.n <= 60 &&
	     clean_words_may_start(c, WL_FOOTER_WORDS, t.s, t.n); w++) {
		k = clean_words_starts_ci(t.s, t.n, *w);
		if (k && (k == t.n || strchr(".:!", t.s[k]) ||
			  clean_words_find_any(t.s, t.n, clean_words_footer_link_marks)))
			f |= TF_FOOTER;
	}
	if (clean_words_may_start(c, WL_CONF_START, t.s, t.n) &&
	    clean_words_starts_any(t.s, t.n, clean_words_conf_start))
		f |= TF_CONF;
	L->tf |= (uint8_t)f;
	return L->tf;
}

static int mailing_list_at(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];

	if (!(L->tf & TF_LIST_DONE))
		L->tf |= TF_LIST_DONE | (is_mailing_list(content(c, i)) ? TF_LIST : 0);
	return (L->tf & TF_LIST) != 0;
}

/* The line opens a footer: list and marketing phrases, or a confidentiality notice (checked
 * against the words of its paragraph, at most 1200 bytes of it). */
static int footer_at(struct cleaner *c, size_t i, size_t b)
{
	unsigned f = footer_flags(c, i);
	size_t j, bytes = 0;
	struct str t;

	if (f & TF_FOOTER)
		return 1;
	if (!(f & TF_CONF))
		return 0;
	for (j = i; j < b && bytes < 1200; j++) {
		if (!c->l[j].keep)
			continue;
		if (is_blank(c, j))
			break;
		t = content(c, j);
		if (clean_words_find_any(t.s, t.n, clean_words_conf_words))
			return 1;
		bytes += t.n;
	}
	return 0;
}

static int is_footer_line(struct cleaner *c, size_t i, size_t b)
{
	return footer_at(c, i, b) || mailing_list_at(c, i);
}

static int mobile_sig_at(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];

	if (!(L->tf & TF_SIG_DONE))
		L->tf |=
		    TF_SIG_DONE | (clean_lines_is_mobile_sig(c, content(c, i)) ? TF_MOBILE : 0);
	return (L->tf & TF_MOBILE) != 0;
}

static void pass_signature(struct cleaner *c, size_t a, size_t b)
{
	size_t i, cnt = 0, cutat = NONE, v = NONE, after = 0;
	int short_ok = 1, contact = 0;

	for (i = a; i < b; i++) {
		if (plain(c, i) && delim_at(c, i) == 1 && first_kept(c) < i) {
			clean_structure_drop(c, i, b);
			b = i;
			break;
		}
	}
	for (i = a; i < b; i++)
		if (plain(c, i) && mobile_sig_at(c, i))
			c->l[i].keep = 0;
	/* a separator line under the text with a few short lines below it, unless those are a
	 * list or legal footer: that is the footer step's to remove or keep */
	for (i = b; i > a;) {
		i--;
		if (!c->l[i].keep || is_blank(c, i))
			continue;
		if (!plain(c, i))
			break;
		if (delim_at(c, i)) {
			if (cnt <= 6 && short_ok)
				cutat = i;
			continue;
		}
		cnt++;
		short_ok = short_ok && c->l[i].cn <= 80 && !is_footer_line(c, i, b);
		if (cnt > 6 || !short_ok)
			break;
	}
	if (cutat != NONE) {
		drop_tail(c, cutat, b);
		b = cutat;
	}
	/* "Best regards,\nJane Doe\nACME\n+1 555 0100": only with a phone, mail or web line */
	for (i = b; i > a && after <= 5;) {
		i--;
		if (!c->l[i].keep || is_blank(c, i))
			continue;
		if (!plain(c, i) || c->l[i].cn > 60 || clean_lines_is_postscript(content(c, i)))
			break;
		if (after >= 1 && clean_lines_is_valediction(content(c, i))) {
			v = i;
			break;
		}
		contact |= clean_lines_is_contact(content(c, i));
		after++;
	}
	if (v != NONE && contact)
		drop_tail(c, v, b);
}

static void pass_footers(struct cleaner *c, size_t a, size_t b)
{
	size_t i, j, cnt = 0, trig = NONE;

	/* Mailman: "_______________________________________________\nfoo mailing list" */
	for (i = a; i < b; i++) {
		struct str t = content(c, i);
		if (!plain(c, i) || t.n < 10 || t.s[0] != '_' || clean_lines_delim_kind(t) != 2)
			continue;
		j = clean_structure_next_nonblank(c, i + 1);
		if (j < b && c->l[j].keep) {
			if (mailing_list_at(c, j)) {
				drop_tail(c, i, b);
				b = i;
				break;
			}
		}
	}
	for (i = b; i > a && cnt < TAIL_LINES;) {
		i--;
		if (!c->l[i].keep || is_blank(c, i))
			continue;
		cnt++;
		if (plain(c, i) && footer_at(c, i, b))
			trig = i;
	}
	if (trig == NONE)
		return;
	/* From the line itself: mail converted from HTML often has no empty line between the
	 * text and its footer. The separator lines above go with it. */
	i = trig;
	while (i > a && (!c->l[i - 1].keep || is_blank(c, i - 1) ||
			 (plain(c, i - 1) && clean_lines_delim_kind(content(c, i - 1)))))
		i--;
	drop_tail(c, i, b);
}

void clean_tail_pass_links(struct cleaner *c)
{
	size_t i, prev = NONE;

	for (i = 0; i < c->n; i++) {
		if (!c->l[i].keep || (c->l[i].flags & LF_FENCE) || c->l[i].cn == 0)
			continue;
		/* "...my write-up:\nhttps://..." announces the link: then it is the message */
		if (clean_lines_is_link_only(content(c, i)) &&
		    (prev == NONE || c->cb[c->l[prev].co + c->l[prev].cn - 1] != ':')) {
			c->l[i].keep = 0;
			continue;
		}
		prev = i;
	}
}

void clean_tail_pass_trailing_quotes(struct cleaner *c)
{
	size_t i, text = 0;

	for (i = 0; i < c->n && !text; i++)
		text = plain(c, i) && !is_blank(c, i);
	if (!text)
		return; /* a message that is only a quote keeps it */
	for (i = c->n; i > 0;) {
		i--;
		if (!c->l[i].keep)
			continue;
		if (!is_blank(c, i) && plain(c, i))
			break;
		if (c->l[i].flags & LF_FENCE)
			break;
		c->l[i].keep = 0;
	}
}

void clean_tail_pass(struct cleaner *c)
{
	size_t a, b;

	for (a = 0; a < c->n; a = b) {
		for (b = a + 1; b < c->n && !(c->l[b].flags & LF_SEG); b++)
			;
		if (c->steps & CLEAN_FOOTERS)
			pass_footers(c, a, b);
		if (c->steps & CLEAN_SIGNATURE)
			pass_signature(c, a, b);
	}
}

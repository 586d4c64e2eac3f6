/* Owns attribution detection ("On <date>, <name> wrote:" and its translations, wrapped over
 * lines): the evidence of a line and where an attribution starts. Not what is cut below it
 * (clean_structure.c). Called by clean_structure.c. */
#include "clean_internal.h"

#include <stdint.h>
#include <string.h>

#define ATTR_MAX_BYTES 500 /* an attribution ("On <date>, <name> wrote:") never is longer */
#define ATTR_MAX_LINES 5   /* ... nor wrapped over more lines, before the upward extension */

/* ---- attributions ---- */

static int ends_attr_phrase(struct cleaner *c, const char *s, size_t n)
{
	struct first_bytes *f = &c->attr_last;
	unsigned char b = n ? (unsigned char)lc((unsigned char)s[n - 1]) : 0;
	const struct str *p;
	size_t k;

	if (n == 0)
		return 0;
	/* The last bytes of the verbs, lower-cased as compared below: most lines end in
	 * something else, and need no loop over the list. */
	if (!f->ready) {
		memset(f->bit, 0, sizeof(f->bit));
		for (p = clean_words_attr_end; p->s; p++)
			clean_words_first_bytes_add(
			    f, (unsigned char)lc((unsigned char)p->s[p->n - 1]));
		f->ready = 1;
	}
	if (!(f->bit[b >> 6] >> (b & 63) & 1))
		return 0;
	for (p = clean_words_attr_end; p->s; p++) {
		k = p->n;
		if (k > n || lc((unsigned char)p->s[k - 1]) != lc((unsigned char)s[n - 1]) ||
		    clean_words_starts_ci(s + n - k, k, p->s) != k)
			continue;
		if (k == n || (unsigned char)p->s[0] >= 0x80 || !is_wordb((unsigned char)s[n - k - 1]))
			return 1;
	}
	return 0;
}

static size_t digit_run(const char *s, size_t n, size_t i)
{
	size_t j = i;
	while (j < n && is_digit(s[j]))
		j++;
	return j - i;
}

static unsigned line_af(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];
	struct str t;
	size_t k, r, r2, r3, j;
	unsigned af = AF_DONE;
	const char *const *p;

	if (L->af)
		return L->af;
	t = content(c, i);
	if (t.n > ATTR_MAX_BYTES) {
		L->af = AF_DONE;
		return L->af;
	}
	if (memchr(t.s, '@', t.n))
		af |= AF_AT;
	for (k = 0; k < t.n;) {
		if (!is_digit(t.s[k])) {
			k++;
			continue;
		}
		r = digit_run(t.s, t.n, k);
		j = k + r;
		if (r == 4 && (t.s[k] == '1' || t.s[k] == '2') && (t.s[k + 1] == '9' || t.s[k + 1] == '0'))
			af |= AF_YEAR;
		if (j + 3 <= t.n && memcmp(t.s + j, "\xE5\xB9\xB4", 3) == 0) /* 2016年 */
			af |= AF_DATE;
		if (j < t.n && r <= 2 && (t.s[j] == ':' || t.s[j] == '.')) {
			r2 = digit_run(t.s, t.n, j + 1);
			if (r2 == 2)
				af |= AF_TIME;
		}
		if (j < t.n && r <= 4 && (t.s[j] == '/' || t.s[j] == '.' || t.s[j] == '-')) {
			r2 = digit_run(t.s, t.n, j + 1);
			if (r2 >= 1 && r2 <= 2 && j + 1 + r2 < t.n && strchr("/.-", t.s[j + 1 + r2])) {
				r3 = digit_run(t.s, t.n, j + 2 + r2);
				if (r3 >= 1 && r3 <= 4) {
					af |= AF_DATE;
					if (k == 0 && r == 4 && t.s[j] != '.')
						af |= AF_NUMDATE;
				}
			}
		}
		k = j;
	}
	for (k = 0; k < t.n && !(af & AF_MID);) {
		if (!is_wordb((unsigned char)t.s[k])) {
			k++;
			continue;
		}
		j = k;
		while (j < t.n && is_wordb((unsigned char)t.s[j]))
			j++;
		for (p = clean_words_attr_mid; *p; p++)
			if (clean_words_eq_ci(t.s + k, j - k, *p))
				af |= AF_MID;
		k = j;
	}
	if (!(af & AF_MID) && clean_words_find_any(t.s, t.n, clean_words_attr_mid_cjk))
		af |= AF_MID;
	if ((t.n && is_digit(t.s[0])) || clean_words_starts_any(t.s, t.n, clean_words_attr_start))
		af |= AF_START;
	L->af = (uint8_t)af;
	return af;
}

static int attr_ok(unsigned af, int colon, int endp, int gt, int iso, int numdate)
{
	int strong = (af & (AF_AT | AF_TIME | AF_DATE)) != 0;

	if (endp && (strong || (af & AF_YEAR)))
		return 1;
	if (colon && (af & AF_MID) && strong)
		return 1;
	if (colon && gt && (af & AF_AT) && (af & (AF_TIME | AF_YEAR | AF_DATE)))
		return 1;
	return iso || (gt && (af & AF_AT) && numdate);
}

/* "2016-03-03 17:21 GMT+01:00 Some One": old Gmail, no verb at all. */
static int iso_gmt(struct str t)
{
	const char *s = t.s;

	return t.n >= 20 && digit_run(s, t.n, 0) == 4 && s[4] == '-' && digit_run(s, t.n, 5) == 2 &&
	       s[7] == '-' && digit_run(s, t.n, 8) == 2 && s[10] == ' ' &&
	       digit_run(s, t.n, 11) >= 1 &&
	       clean_words_find_ci(s, t.n < 24 ? t.n : 24, " GMT") != NULL;
}

/* A line above the attribution's first line still belongs to it when the first line plainly
 * continues something ("<addr>", "mailto:", a lower-case word) or the line above is open. */
static int attr_continues(struct str top, struct str up)
{
	if (up.n == 0)
		return 0;
	if (strchr(".!?", up.s[up.n - 1]))
		return 0;
	if (strchr("<,(", up.s[up.n - 1]))
		return 1;
	return top.n &&
	       (strchr("<([>", top.s[0]) || clean_words_starts_ci(top.s, top.n, "mailto:") ||
		(top.s[0] >= 'a' && top.s[0] <= 'z'));
}

/* If line e ends an attribution, returns its first line (not before floor), else NONE. */
size_t clean_attribution_find(struct cleaner *c, size_t e, size_t floor)
{
	struct str t = content(c, e), top, up;
	size_t n = t.n, s, bytes = 0, found = NONE, added = 0;
	int colon = 0, endp, gt, iso;
	unsigned af = 0;

	if (n == 0 || n > ATTR_MAX_BYTES)
		return NONE;
	while (n && (t.s[n - 1] == '-' || t.s[n - 1] == ' ' || t.s[n - 1] == '*'))
		n--;
	if (n && t.s[n - 1] == ':') {
		colon = 1;
		n--;
	} else if (n >= 3 && memcmp(t.s + n - 3, "\xEF\xBC\x9A", 3) == 0) {
		colon = 1;
		n -= 3;
	}
	while (n && t.s[n - 1] == ' ')
		n--;
	gt = n && t.s[n - 1] == '>';
	endp = ends_attr_phrase(c, t.s, n);
	iso = iso_gmt(t);
	if (!colon && !endp && !gt && !iso)
		return NONE;
	for (s = e;; s--) {
		if (!c->l[s].keep || is_blank(c, s) || c->l[s].cn > ATTR_MAX_BYTES)
			break;
		bytes += c->l[s].cn + 1;
		if (bytes > ATTR_MAX_BYTES)
			break;
		af |= line_af(c, s);
		if (attr_ok(af, colon, endp, gt, iso && s == e, line_af(c, s) & AF_NUMDATE)) {
			found = s;
			break;
		}
		if (s == floor || e - s + 1 >= ATTR_MAX_LINES)
			break;
	}
	if (found == NONE)
		return NONE;
	s = found;
	while (s > floor && added < 4 && !(line_af(c, s) & AF_START)) {
		top = content(c, s);
		if (is_blank(c, s - 1)) {
			/* Gmail for Android splits "On <date> <name>\n\n<\nmailto:<addr>\n> wrote:" */
			if (s - 1 > floor && c->l[s - 2].keep && !is_blank(c, s - 2) &&
			    c->l[s - 2].cn <= 200 && (line_af(c, s - 2) & AF_START) && top.n &&
			    strchr("<(", top.s[0]))
				s -= 2;
			break;
		}
		up = content(c, s - 1);
		if (!c->l[s - 1].keep || up.n > 200 || !attr_continues(top, up))
			break;
		s--;
		added++;
	}
	t = content(c, s);
	if (clean_lines_label_of(t.s, t.n, NULL) || clean_lines_marker_kind(t))
		return NONE;
	return s;
}

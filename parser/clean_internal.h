/* Owns what the files of the body cleaner (clean*.c) share and nothing else: the line table,
 * the cleaner's state, tiny text helpers and the functions that cross files. Not a public
 * interface: included only by parser/clean*.c; callers use clean.h. */
#ifndef MP_CLEAN_INTERNAL_H
#define MP_CLEAN_INTERNAL_H

#include "clean.h"

#include <stddef.h>
#include <stdint.h>

#define NONE ((size_t)-1)

enum { EOL_NONE, EOL_LF, EOL_CRLF, EOL_CR };
enum { LAB_NONE, LAB_FROM, LAB_DATE, LAB_TO, LAB_CC, LAB_SUBJECT, LAB_OTHER };
enum { MK_NONE, MK_FWD, MK_ORIG };

#define LF_SEG 0x01   /* first line of a forwarded region: signatures and footers stop here */
#define LF_FENCE 0x02 /* inside a ``` code block: never classified */

/* Attribution evidence of one line, computed on demand and cached in cline.af. */
#define AF_DONE 0x01
#define AF_AT 0x02
#define AF_TIME 0x04
#define AF_DATE 0x08
#define AF_YEAR 0x10
#define AF_MID 0x20   /* a "wrote"-like word somewhere in the line */
#define AF_START 0x40 /* begins like an attribution: "On ", "Am ", a digit, ... */
#define AF_NUMDATE 0x80 /* begins with 2013/7/20 or 2016-03-03 */

/* Signature and footer evidence of one line, cached in cline.tf. */
#define TF_SIG_DONE 0x01
#define TF_MOBILE 0x02  /* "Sent from my iPhone" and the like */
#define TF_FOOT_DONE 0x04
#define TF_FOOTER 0x08  /* opens a list or marketing footer by its own words */
#define TF_CONF 0x10    /* may open a confidentiality notice */
#define TF_LIST_DONE 0x20
#define TF_LIST 0x40    /* names a mailing list */

struct cline {
	uint32_t co, cn; /* classification view: text after the quote prefix, trimmed */
	uint32_t oo, on; /* output view: the whole line without its end */
	uint8_t eol;
	uint8_t depth; /* '>' quote level, capped at 255 */
	uint8_t base;  /* quote level of the forwarded region the line belongs to */
	uint8_t keep;
	uint8_t flags;
	uint8_t lab; /* label family + 1, 0 = not computed yet */
	uint8_t af;
	uint8_t tf; /* tail evidence (TF_*), computed on demand: pass_tails may run twice */
};

/* The bytes a line can start with and still begin some phrase of a word list: one test
 * instead of one per phrase. Made from the list by first_bytes_of() on first use in a call. */
struct first_bytes {
	uint64_t bit[4];
	int ready;
};

enum { WL_SIG_APP_ANY, WL_SIG_APP_SHORT, WL_FOOTER_START, WL_FOOTER_WORDS, WL_CONF_START, WL_N };

struct cleaner {
	const char *cb; /* classification text: invisible characters always removed */
	const char *ob; /* output text: invisible characters removed only with the step */
	struct cline *l;
	size_t n;
	unsigned steps;
	int hint_fwd;
	size_t fk; /* no kept non-empty line lies before this index */
	struct first_bytes first[WL_N];
	struct first_bytes attr_last; /* last bytes of attr_end, see ends_attr_phrase */
};

struct str {
	const char *s;
	size_t n;
};

/* ---- small text helpers (ASCII case-insensitive, other bytes exact) ---- */

static inline int lc(int ch)
{
	return (unsigned)(ch - 'A') < 26 ? ch + 32 : ch;
}

static inline int is_alpha(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static inline int is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

/* Bytes of a word: ASCII letters and digits, and every non-ASCII byte. */
static inline int is_wordb(unsigned char ch)
{
	return is_alpha(ch) || is_digit(ch) || ch >= 0x80;
}

static inline struct str content(const struct cleaner *c, size_t i)
{
	struct str t = { c->cb + c->l[i].co, c->l[i].cn };
	return t;
}

static inline int is_blank(const struct cleaner *c, size_t i)
{
	return c->l[i].depth == 0 && c->l[i].cn == 0;
}

static inline unsigned eff_depth(const struct cleaner *c, size_t i, unsigned base)
{
	unsigned d = c->l[i].depth;
	return d > base ? d - base : 0;
}

/* clean_utf8.c */
size_t clean_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);
size_t clean_utf8_clean(const unsigned char *s, size_t n, int strip, char *d);

/* clean_words.c */
size_t clean_words_starts_ci(const char *s, size_t n, const char *p);
int clean_words_eq_ci(const char *s, size_t n, const char *p);
int clean_words_ends_ci(const char *s, size_t n, const char *p);
const char *clean_words_find_ci(const char *s, size_t n, const char *p);
int clean_words_starts_any(const char *s, size_t n, const char *const *list);
void clean_words_first_bytes_add(struct first_bytes *f, unsigned char b);
int clean_words_find_any(const char *s, size_t n, const char *const *list);
extern const char *const clean_words_fwd_dashed[];
extern const char *const clean_words_orig_dashed[];
extern const char *const clean_words_fwd_colon[];
extern const struct str clean_words_attr_end[];
extern const char *const clean_words_attr_mid[];
extern const char *const clean_words_attr_mid_cjk[];
extern const char *const clean_words_attr_start[];
extern const char *const clean_words_sig_app_any[];
extern const char *const clean_words_sig_app_short[];
extern const char *const clean_words_apps[];
extern const char *const clean_words_devices[];
extern const char *const clean_words_valedictions[];
extern const char *const clean_words_footer_start[];
extern const char *const clean_words_footer_words[];
extern const char *const clean_words_footer_link_marks[];
extern const char *const clean_words_conf_start[];
extern const char *const clean_words_conf_words[];
extern const char *const clean_words_fwd_prefixes[];
int clean_words_may_start(struct cleaner *c, int wl, const char *s, size_t n);

/* clean_lines.c */
int clean_lines_label_of(const char *s, size_t n, size_t *value);
int clean_lines_label_family(struct cleaner *c, size_t i);
int clean_lines_marker_kind(struct str t);
int clean_lines_delim_kind(struct str t);
int clean_lines_is_fence(struct str t);
int clean_lines_is_mobile_sig(struct cleaner *c, struct str t);
int clean_lines_is_link_only(struct str t);
int clean_lines_is_contact(struct str t);
int clean_lines_is_postscript(struct str t);
int clean_lines_is_valediction(struct str t);
int clean_lines_subject_is_fwd(const char *s, size_t n);

/* clean_attribution.c */
size_t clean_attribution_find(struct cleaner *c, size_t e, size_t floor);

/* clean_structure.c */
size_t clean_structure_next_nonblank(const struct cleaner *c, size_t i);
void clean_structure_drop(struct cleaner *c, size_t a, size_t b);
void clean_structure_pass(struct cleaner *c);

/* clean_tail.c */
void clean_tail_pass_links(struct cleaner *c);
void clean_tail_pass_trailing_quotes(struct cleaner *c);
void clean_tail_pass(struct cleaner *c);

#endif

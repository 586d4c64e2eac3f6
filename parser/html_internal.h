/* Owns what the files of HTML rendering (html*.c) share and nothing else: the output buffer,
 * the walk's frames and state, and the functions that cross files. Not a public interface:
 * included only by parser/html*.c; callers use html.h. */
#ifndef MP_HTML_INTERNAL_H
#define MP_HTML_INTERNAL_H

#include "html.h"

#include <stddef.h>

#include <libxml/tree.h>

struct html_buf {
	char *s;
	size_t len, cap;
	int oom;
};

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

/* html_buf.c */
int html_buf_reserve(struct html_buf *b, size_t more);
void html_buf_add(struct html_buf *b, const char *s, size_t n);
void html_buf_addc(struct html_buf *b, char c);
void html_buf_fill(struct html_buf *b, char c, size_t n);
void html_buf_add_utf8(struct html_buf *b, const char *s, size_t n);
int html_buf_utf8_clean(const char *s, size_t n);
int html_buf_from_charset(const char *charset, const char *s, size_t n, struct html_buf *out);
int html_buf_is_utf8_name(const char *cs);

/* html_guard.c */
int html_guard_attributes(const char *in, size_t len, struct html_buf *out);

/* html_text.c */
void html_text_break(struct html_render *r, unsigned n);
void html_text_emit(struct html_render *r, const char *s, size_t n);
void html_text(struct html_render *r, const char *s);
void html_text_pre(struct html_render *r, xmlNodePtr n);

/* html_walk.c */
enum html_kind html_walk_kind_of(const xmlChar *name);
const char *html_walk_skip_space(const char *s, const char *end);
void html_walk(struct html_render *r, xmlDocPtr doc);

#endif

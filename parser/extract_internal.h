/* Owns what the files of MIME extraction (extract*.c) share and nothing else: the per-message
 * context and the functions that cross files. Not a public interface: included only by
 * parser/extract*.c; callers use extract.h. */
#ifndef MP_EXTRACT_INTERNAL_H
#define MP_EXTRACT_INTERNAL_H

#include "extract.h"

#include <stddef.h>

#include <glib.h>
#include <gmime/gmime.h>
#include <iconv.h>

struct extract_ctx {
	const struct extract_limits *lim;
	GMimeParserOptions *options;
	json_t *attachments;  /* borrowed from the result object */
	GString *text;        /* chosen bodies as UTF-8, NULL until found */
	GString *html;
	gboolean text_cut;
	gboolean html_cut;
	size_t parts;         /* parts walked so far */
	gboolean part_limit_hit;
	gboolean depth_limit_hit;
	gboolean input_cut;   /* a guard kept GMime from the rest of the input */
	guint32 warned;       /* GMime warning codes already noted */
	GString *error;       /* our own findings, most important first */
	GString *warnings;    /* GMime's, appended after ours */
	unsigned nerrors;
	gboolean oom;
};

/* extract.c */
void extract_note(struct extract_ctx *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void extract_printable(char *dst, size_t size, const char *src);
json_t *extract_json_bytes(const char *s, size_t len);
json_t *extract_json_opt(const char *s);
void extract_put(struct extract_ctx *c, json_t *obj, const char *key, json_t *value);
void extract_push(struct extract_ctx *c, json_t *array, json_t *value);

/* extract_charset.c */
void extract_charset_append_utf8(GString *out, const char *s, size_t len, gboolean guess);
void extract_charset_convert(struct extract_ctx *c, GString *out, const char *in, size_t len,
			     const char *charset, size_t partno);
void extract_charset_truncate_utf8(GString *s, size_t max);

/* extract_part.c */
size_t extract_part_size(GMimePart *part);
GString *extract_part_text(struct extract_ctx *c, GMimePart *part, size_t partno, gboolean *cut);

/* extract_walk.c */
void extract_walk_keep_text(struct extract_ctx *c, const char *s, size_t len);
void extract_walk(struct extract_ctx *c, GMimeObject *obj, unsigned depth, gboolean embedded);

/* extract_headers.c */
void extract_headers(struct extract_ctx *c, json_t *o, GMimeMessage *m);

/* extract_guard.c */
size_t extract_guard_boundary_cut(const char *raw, size_t len, size_t max_parts);
size_t extract_guard_header_cut(const char *raw, size_t len, size_t max);
char *extract_guard_defuse_charsets(struct extract_ctx *c, const char *raw, size_t len);

/* extract_warn.c */
gboolean extract_warn_possible(GMimeMessage *m, const char *raw, size_t len);

#endif

/* Owns a leaf part's content: its bytes through the transfer decoding, its decoded size, its
 * text in UTF-8 within the text limit. Not which parts are walked (extract_walk.c). Called by
 * extract_walk.c. */
#include "decode.h"
#include "extract_internal.h"

#include <stdint.h>
#include <string.h>

#include <gmime/gmime.h>

#define EXTRACT_CHUNK 16384        /* bytes decoded per step */

/* ---- part content ---- */

struct extract_bytes {
	const char *data;
	size_t len;
	GByteArray *owned; /* NULL when data points into the caller's raw buffer */
};

static void extract_bytes_release(struct extract_bytes *b)
{
	if (b->owned != NULL)
		g_byte_array_free(b->owned, TRUE);
	b->owned = NULL;
}

/* Points at a part's still-encoded content. GMime gives parsed parts a substream of the stream
 * we parse from, a GMimeStreamMem over the caller's buffer, so normally nothing is copied. */
static void extract_stream_bytes(GMimeStream *s, struct extract_bytes *b)
{
	GMimeStream *mem;

	b->data = "";
	b->len = 0;
	b->owned = NULL;
	if (s == NULL)
		return;
	if (GMIME_IS_STREAM_MEM(s)) {
		GByteArray *a = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)s);
		gint64 start, end;

		if (a == NULL)
			return;
		end = s->bound_end < 0 ? (gint64)a->len : MIN(s->bound_end, (gint64)a->len);
		start = CLAMP(s->bound_start, 0, end);
		b->data = (const char *)a->data + start;
		b->len = (size_t)(end - start);
		return;
	}
	/* Any other stream (none that the parser makes today) is read into a buffer of ours. */
	b->owned = g_byte_array_new();
	mem = g_mime_stream_mem_new_with_byte_array(b->owned);
	g_mime_stream_mem_set_owner((GMimeStreamMem *)mem, FALSE);
	g_mime_stream_reset(s);
	g_mime_stream_write_to_stream(s, mem);
	g_object_unref(mem);
	b->data = (const char *)b->owned->data;
	b->len = b->owned->len;
}

/* Undoes the transfer encoding of in[0..len). out NULL only counts. Stops once more than limit
 * bytes came out (setting *more), keeping limit of them. Returns the bytes produced. */
static size_t extract_decode(GMimeContentEncoding enc, const char *in, size_t len,
			     GByteArray *out, size_t limit, gboolean *more)
{
	char scratch[EXTRACT_CHUNK + 8];
	GMimeEncoding st;
	size_t total = 0, off = 0;

	if (enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		/* Data starts after the "begin <mode> <name>" line GMime's decoder does not skip. */
		const char *p = in, *end = in + len;

		while (p < end && strncmp(p, "begin ", MIN((size_t)6, (size_t)(end - p))) != 0) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			p = nl ? nl + 1 : end;
		}
		if (end - p < 6)
			return 0;
		p = memchr(p, '\n', (size_t)(end - p));
		if (p == NULL)
			return 0;
		off = (size_t)(p + 1 - in);
	}
	g_mime_encoding_init_decode(&st, enc);
	while (off < len) {
		size_t n = MIN((size_t)EXTRACT_CHUNK, len - off), m, old = 0;
		char *dst = scratch;

		if (out != NULL) {
			old = out->len;
			g_byte_array_set_size(out, (guint)(old + g_mime_encoding_outlen(&st, n)));
			dst = (char *)out->data + old;
		}
		if (enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
			m = decode_qp_step(&st, in + off, n, dst);
		else if (enc == GMIME_CONTENT_ENCODING_BASE64)
			m = decode_base64_step(&st, in + off, n, dst);
		else
			m = g_mime_encoding_step(&st, in + off, n, dst);
		if (out != NULL)
			g_byte_array_set_size(out, (guint)(old + m));
		total += m;
		off += n;
		if (total > limit) {
			*more = TRUE;
			if (out != NULL)
				g_byte_array_set_size(out, (guint)limit);
			return limit;
		}
	}
	return total;
}

static gboolean extract_is_identity(GMimeContentEncoding enc)
{
	return enc != GMIME_CONTENT_ENCODING_BASE64 &&
	       enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
	       enc != GMIME_CONTENT_ENCODING_UUENCODE;
}

/* Decoded content of a leaf part, at most limit bytes (*more set if there was more). */
static void extract_part_bytes(GMimePart *part, size_t limit, struct extract_bytes *b,
			       gboolean *more)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeContentEncoding enc;
	struct extract_bytes raw;

	b->data = "";
	b->len = 0;
	b->owned = NULL;
	if (dw == NULL)
		return;
	enc = g_mime_data_wrapper_get_encoding(dw);
	extract_stream_bytes(g_mime_data_wrapper_get_stream(dw), &raw);
	if (extract_is_identity(enc)) {
		*b = raw;
		if (b->len > limit) {
			b->len = limit;
			*more = TRUE;
		}
		return;
	}
	b->owned = g_byte_array_sized_new((guint)MIN(raw.len, limit));
	extract_decode(enc, raw.data, raw.len, b->owned, limit, more);
	b->data = (const char *)b->owned->data;
	b->len = b->owned->len;
	extract_bytes_release(&raw);
}

/* A leaf part's decoded size. Attachments are most of the bytes of mail, and only their size
 * is stored: decoding them to measure it was 6% of parse time. */
size_t extract_part_size(GMimePart *part)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeContentEncoding enc;
	struct extract_bytes raw;
	gboolean more = FALSE;
	size_t n;

	if (dw == NULL)
		return 0;
	enc = g_mime_data_wrapper_get_encoding(dw);
	extract_stream_bytes(g_mime_data_wrapper_get_stream(dw), &raw);
	if (extract_is_identity(enc))
		n = raw.len;
	else if (enc == GMIME_CONTENT_ENCODING_BASE64)
		n = decode_base64_size(raw.data, raw.len);
	else if (enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
		n = decode_qp_size(raw.data, raw.len);
	else
		n = extract_decode(enc, raw.data, raw.len, NULL, SIZE_MAX - 1, &more);
	extract_bytes_release(&raw);
	return n;
}

/* A text part's content as UTF-8, cut to max_text bytes (*cut set when something was lost). */
GString *extract_part_text(struct extract_ctx *c, GMimePart *part, size_t partno, gboolean *cut)
{
	size_t max = c->lim->max_text;
	/* No charset spends more than 4 input bytes on one output byte, so input beyond that
	 * could never be kept. */
	size_t in_limit = max < SIZE_MAX / 8 ? max * 4 + 4 : SIZE_MAX / 2;
	struct extract_bytes b;
	GString *out;

	extract_part_bytes(part, in_limit, &b, cut);
	out = g_string_sized_new(MIN(b.len, max) + 16);
	extract_charset_convert(c, out, b.data, b.len,
			g_mime_object_get_content_type_parameter((GMimeObject *)part, "charset"),
			partno);
	extract_bytes_release(&b);
	if (out->len > max) {
		extract_charset_truncate_utf8(out, max);
		*cut = TRUE;
	}
	return out;
}

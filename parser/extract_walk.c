/* Owns the part walk: which parts become body_text, body_html or attachments, within the part
 * and depth limits, embedded messages included. Not part content (extract_part.c). Called by
 * extract.c. */
#include "extract_internal.h"

#include <stdint.h>
#include <string.h>

#include <gmime/gmime.h>

/* ---- the part walk ---- */

static gboolean extract_is_attachment(GMimePart *part)
{
	const char *disp = g_mime_object_get_disposition((GMimeObject *)part);

	/* RFC 2183: an unknown disposition is treated as attachment. */
	if (disp != NULL && disp[0] != '\0')
		return g_ascii_strcasecmp(disp, "inline") != 0;
	return g_mime_part_get_filename(part) != NULL;
}

static json_t *extract_json_disposition(GMimeObject *obj)
{
	const char *disp = g_mime_object_get_disposition(obj);

	if (disp == NULL || disp[0] == '\0')
		return json_null();
	return json_string(g_ascii_strcasecmp(disp, "inline") == 0 ? "inline" : "attachment");
}

static json_t *extract_json_mime_type(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *type, *lower;
	json_t *j;

	if (ct == NULL)
		return json_string("application/octet-stream");
	type = g_mime_content_type_get_mime_type(ct);
	lower = g_ascii_strdown(type, -1);
	j = extract_json_opt(lower);
	g_free(lower);
	g_free(type);
	return j;
}

static void extract_add_attachment(struct extract_ctx *c, GMimeObject *obj, json_t *filename,
				   json_t *type, size_t size)
{
	json_t *a = json_object();

	if (a == NULL) {
		json_decref(filename);
		json_decref(type);
		c->oom = TRUE;
		return;
	}
	extract_put(c, a, "filename", filename);
	extract_put(c, a, "content_type", type);
	extract_put(c, a, "size", json_integer((json_int_t)MIN(size, (size_t)INT64_MAX)));
	extract_put(c, a, "content_id", extract_json_opt(g_mime_object_get_content_id(obj)));
	extract_put(c, a, "disposition", extract_json_disposition(obj));
	extract_push(c, c->attachments, a);
}

static void extract_leaf(struct extract_ctx *c, GMimePart *part, size_t partno, gboolean embedded)
{
	GMimeObject *obj = (GMimeObject *)part;
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	gboolean attachment = extract_is_attachment(part);

	if (!embedded && !attachment && ct != NULL) {
		if (c->text == NULL && g_mime_content_type_is_type(ct, "text", "plain")) {
			c->text = extract_part_text(c, part, partno, &c->text_cut);
			return;
		}
		if (c->html == NULL && g_mime_content_type_is_type(ct, "text", "html")) {
			c->html = extract_part_text(c, part, partno, &c->html_cut);
			return;
		}
	}
	/* Inside a forwarded message only real attachments are listed; its text is part of the
	 * message/rfc822 entry already. */
	if (embedded && !attachment)
		return;
	extract_add_attachment(c, obj, extract_json_opt(g_mime_part_get_filename(part)),
			       extract_json_mime_type(obj), extract_part_size(part));
}

static void extract_message_part(struct extract_ctx *c, GMimeObject *obj, GMimeMessage *inner)
{
	const char *name = g_mime_object_get_content_disposition_parameter(obj, "filename");
	size_t size = 0;

	if (name == NULL)
		name = g_mime_object_get_content_type_parameter(obj, "name");
	if (name == NULL && inner != NULL)
		name = g_mime_message_get_subject(inner);
	if (inner != NULL) {
		/* GMime keeps no byte offsets per part; writing the message back out gives its
		 * size (headers and bodies are written as they were read). */
		GMimeStream *null = g_mime_stream_null_new();

		g_mime_object_write_to_stream((GMimeObject *)inner, NULL, null);
		size = ((GMimeStreamNull *)null)->written;
		g_object_unref(null);
	}
	extract_add_attachment(c, obj, extract_json_opt(name), json_string("message/rfc822"), size);
}

/* Takes text of unknown charset and structure as body_text, cut to max_text. */
void extract_walk_keep_text(struct extract_ctx *c, const char *s, size_t len)
{
	size_t keep = MIN(len, c->lim->max_text);

	c->text = g_string_sized_new(keep + 16);
	extract_charset_append_utf8(c->text, s, keep, TRUE);
	c->text_cut = keep < len || c->text->len > c->lim->max_text;
	extract_charset_truncate_utf8(c->text, c->lim->max_text);
}

void extract_walk(struct extract_ctx *c, GMimeObject *obj, unsigned depth, gboolean embedded)
{
	size_t partno;

	if (obj == NULL || c->part_limit_hit)
		return;
	if (depth > c->lim->max_depth) {
		if (!c->depth_limit_hit)
			extract_note(c, "nesting limit %u reached", c->lim->max_depth);
		c->depth_limit_hit = TRUE;
		return;
	}
	if (c->parts >= c->lim->max_parts) {
		c->part_limit_hit = TRUE;
		extract_note(c, "part limit %zu reached", c->lim->max_parts);
		return;
	}
	partno = ++c->parts;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = (GMimeMultipart *)obj;
		const char *prologue = g_mime_multipart_get_prologue(mp);
		int i, n = g_mime_multipart_get_count(mp);

		/* No boundary line matched: GMime filed everything under the prologue, which is
		 * all the text there is. */
		if (n == 0 && !embedded && c->text == NULL && prologue != NULL && prologue[0] != '\0') {
			extract_walk_keep_text(c, prologue, strlen(prologue));
			extract_note(c, "no parts in multipart %zu; its text kept as body", partno);
		}
		for (i = 0; i < n && !c->part_limit_hit; i++)
			extract_walk(c, g_mime_multipart_get_part(mp, i), depth + 1, embedded);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message((GMimeMessagePart *)obj);

		extract_message_part(c, obj, inner);
		if (inner != NULL)
			extract_walk(c, g_mime_message_get_mime_part(inner), depth + 1, TRUE);
	} else if (GMIME_IS_PART(obj)) {
		extract_leaf(c, (GMimePart *)obj, partno, embedded);
	}
}

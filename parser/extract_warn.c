/* Owns deciding whether GMime could have warned about a message, so that most are parsed once
 * without its warning callback. Not the warnings themselves (extract.c). Called by extract.c. */
#include "extract_internal.h"

#include <string.h>

#include <gmime/gmime.h>

/* ---- could GMime have warned? ----
 * With a warning callback set, GMime decodes every header's value as it parses (to check its
 * RFC 2047 words), which was a tenth of parse time. The warnings parse_error names are about
 * structure, so a message is parsed without the callback first, and again with it only when
 * the checks below cannot rule those warnings out. They err on the side of parsing again:
 * test_extract compares both ways over every corpus and fuzz input. */

/* A header line GMime accepts: a name without blanks or controls, blanks, ':'. */
static gboolean warn_header_line_ok(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && *q != ':' && *q != ' ' && *q != '\t' && (unsigned char)*q > 0x20 &&
	       *q != 0x7f)
		q++;
	if (q == p)
		return FALSE;
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	return q < end && *q == ':';
}

/* The header block starting at p: every line a header or a continuation, ended by an empty
 * line. FALSE for anything else, including the end of input before the empty line. */
static gboolean warn_header_block_ok(const char *p, const char *end)
{
	gboolean first = TRUE;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;

		if (e > p && e[-1] == '\r')
			e--;
		if (e == p)
			return nl != NULL; /* the empty line that ends the block */
		if (nl == NULL)
			return FALSE;
		if (*p == ' ' || *p == '\t') {
			if (first)
				return FALSE;
		} else if (!warn_header_line_ok(p, e)) {
			return FALSE;
		}
		first = FALSE;
		p = nl + 1;
	}
	return FALSE;
}

/* A parameter named twice in one Content-Type or Content-Disposition value. */
static gboolean warn_repeated_param(const char *value)
{
	char names[32][40];
	unsigned n = 0;
	const char *p = value ? strchr(value, ';') : NULL;

	while (p != NULL) {
		const char *start, *eq;
		size_t len, i;

		p++;
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		start = p;
		eq = strpbrk(p, "=;");
		if (eq == NULL || *eq == ';') {
			p = eq;
			continue;
		}
		len = (size_t)(eq - start);
		while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
			len--;
		/* RFC 2231 sections ("name*0*") are one parameter: compare up to the '*' */
		for (i = 0; i < len && start[i] != '*'; i++)
			;
		len = MIN(i, sizeof names[0] - 1);
		if (n == G_N_ELEMENTS(names))
			return TRUE;
		for (i = 0; i < n; i++)
			if (strlen(names[i]) == len && g_ascii_strncasecmp(names[i], start, len) == 0)
				return TRUE;
		memcpy(names[n], start, len);
		names[n++][len] = '\0';
		/* Past the value, which may be quoted and hold ';'. */
		p = eq + 1;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++)
				if (*p == '\\' && p[1])
					p++;
		}
		p = strchr(p, ';');
	}
	return FALSE;
}

/* Headers that may repeat without GMime calling them conflicting: trace and list fields,
 * signatures, and extensions. Any other name given twice is suspect. */
static gboolean warn_may_repeat(const char *name)
{
	static const char *const prefixes[] = { "X-", "Received", "DKIM-", "ARC-", "Resent-",
						"Authentication-Results", "Return-Path", "Comments",
						"Keywords", "List-", "Delivered-To" };

	for (size_t k = 0; k < G_N_ELEMENTS(prefixes); k++)
		if (g_ascii_strncasecmp(name, prefixes[k], strlen(prefixes[k])) == 0)
			return TRUE;
	return FALSE;
}

/* An object's headers: none at all (unless may_be_empty), a name given twice, or a repeated
 * parameter. */
static gboolean warn_headers_suspect(GMimeObject *obj, gboolean may_be_empty)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(obj);
	int count = list ? g_mime_header_list_get_count(list) : 0;

	if (count == 0)
		return !may_be_empty;
	for (int i = 0; i < count; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
		const char *name = g_mime_header_get_name(h);

		if ((g_ascii_strcasecmp(name, "Content-Type") == 0 ||
		     g_ascii_strcasecmp(name, "Content-Disposition") == 0) &&
		    warn_repeated_param(g_mime_header_get_raw_value(h)))
			return TRUE;
		if (warn_may_repeat(name))
			continue;
		for (int k = 0; k < i; k++)
			if (g_ascii_strcasecmp(name, g_mime_header_get_name(
					g_mime_header_list_get_header_at(list, k))) == 0)
				return TRUE;
	}
	return FALSE;
}

/* Walks the tree: TRUE when GMime may have warned about any part of it. Each multipart's
 * boundary goes into bounds: the raw checks below search the whole message for it, which
 * says something only if no other multipart's boundary can match there too. */
static gboolean warn_tree_suspect(GMimeObject *obj, const char *raw, size_t len, unsigned depth,
				  GPtrArray *bounds)
{
	/* The top-level part holds only the message's Content-* headers, maybe none. */
	if (depth > 64 || GMIME_IS_MESSAGE_PART(obj) || warn_headers_suspect(obj, depth == 0))
		return TRUE;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = (GMimeMultipart *)obj;
		const char *b = g_mime_multipart_get_boundary(mp);
		int n = g_mime_multipart_get_count(mp);
		char *mark;
		const char *p, *end = raw + len;
		gboolean ok = FALSE;

		/* Each multipart's check reads the whole input: past a few, the warning parse is
		 * cheaper (and a hostile message cannot make it quadratic). */
		if (b == NULL || *b == '\0' || n == 0 || bounds->len >= 16)
			return TRUE;
		for (guint k = 0; k < bounds->len; k++) {
			const char *other = g_ptr_array_index(bounds, k);
			size_t lb = strlen(b), lo = strlen(other);

			if (strncmp(b, other, MIN(lb, lo)) == 0)
				return TRUE; /* the same, or one a prefix of the other */
		}
		g_ptr_array_add(bounds, (gpointer)b);
		/* Every boundary line in the whole input: one per part, each followed by a header
		 * block, and one end line. Any other count means GMime's view of where the parts
		 * end may differ from the lines (a corrupt end line, the same boundary reused). */
		mark = g_strconcat("--", b, NULL);
		size_t marklen = strlen(mark), lines = 0, ends = 0;
		for (p = raw; p < end; p++) {
			const char *hit = memmem(p, (size_t)(end - p), mark, marklen);
			const char *after, *nl;

			if (hit == NULL)
				break;
			p = hit;
			if (hit != raw && hit[-1] != '\n')
				continue;
			after = hit + marklen;
			if (end - after >= 2 && after[0] == '-' && after[1] == '-') {
				/* An end boundary is the whole line (blanks may follow). */
				const char *q = after + 2;

				while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
					q++;
				if (q != end && *q != '\n')
					break;
				ends++;
				continue;
			}
			nl = memchr(after, '\n', (size_t)(end - after));
			if (nl == NULL || !(after == nl || (after + 1 == nl && *after == '\r')) ||
			    !warn_header_block_ok(nl + 1, end))
				break;
			lines++;
		}
		ok = p >= end || memmem(p, (size_t)(end - p), mark, marklen) == NULL;
		g_free(mark);
		if (!ok || ends != 1 || lines != (size_t)n)
			return TRUE;
		for (int i = 0; i < n; i++)
			if (warn_tree_suspect(g_mime_multipart_get_part(mp, i), raw, len, depth + 1,
					      bounds))
				return TRUE;
	}
	return FALSE;
}

gboolean extract_warn_possible(GMimeMessage *m, const char *raw, size_t len)
{
	GMimeObject *top = g_mime_message_get_mime_part(m);
	GPtrArray *bounds;
	gboolean suspect;

	if (!warn_header_block_ok(raw, raw + len) || top == NULL ||
	    warn_headers_suspect((GMimeObject *)m, FALSE))
		return TRUE;
	bounds = g_ptr_array_new();
	suspect = warn_tree_suspect(top, raw, len, 0, bounds);
	g_ptr_array_free(bounds, TRUE);
	return suspect;
}

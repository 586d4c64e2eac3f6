/* Owns the guards run before GMime sees the input: cuts at the part limit by boundary lines and
 * at the header item limit, and defused overlong charset names. Called by extract.c. */
#include "extract_internal.h"

#include <stdint.h>
#include <string.h>

/* GMime copies every charset name it meets onto the stack (g_alloca) before looking it up, so
 * one multi-megabyte "=?charset" or "name*=charset'" crashes the process. Inputs shorter than
 * this cannot hold such a name, and a name this long fits on any thread's stack. */
#define EXTRACT_CHARSET_RUN_MAX (64u << 10)

/* ---- guards run before GMime sees the input ---- */

static gboolean extract_is_lwsp(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Collects the values of every boundary= parameter (any case, quoted or not) into set. */
static void extract_collect_boundaries(const char *raw, size_t len, GHashTable *set)
{
	size_t i;

	for (i = 0; i + 9 <= len; i++) {
		size_t j, start;

		if ((raw[i] | 0x20) != 'b' || g_ascii_strncasecmp(raw + i, "boundary", 8) != 0)
			continue;
		for (j = i + 8; j < len && extract_is_lwsp(raw[j]); j++)
			;
		if (j >= len || raw[j] != '=')
			continue;
		for (j++; j < len && extract_is_lwsp(raw[j]); j++)
			;
		if (j < len && raw[j] == '"') {
			start = ++j;
			while (j < len && raw[j] != '"' && raw[j] != '\n')
				j++;
		} else {
			start = j;
			while (j < len && raw[j] != ';' && !g_ascii_isspace(raw[j]))
				j++;
		}
		if (j > start)
			g_hash_table_add(set, g_strndup(raw + start, j - start));
		i = j - 1;
	}
}

/* A line "--x" or "--x--" (trailing whitespace allowed) where x is a collected boundary. */
static gboolean extract_is_boundary_line(const char *line, size_t len, GHashTable *set)
{
	char key[256];
	size_t n;

	while (len > 2 && extract_is_lwsp(line[len - 1]))
		len--;
	n = len - 2;
	if (n == 0 || n >= sizeof key)
		return FALSE;
	memcpy(key, line + 2, n);
	key[n] = '\0';
	if (g_hash_table_contains(set, key))
		return TRUE;
	if (n > 2 && key[n - 1] == '-' && key[n - 2] == '-') {
		key[n - 2] = '\0';
		return g_hash_table_contains(set, key);
	}
	return FALSE;
}

/* The first "\n--" in [p, end), or NULL. Found by its first '-' with memchr: base64, which
 * is most of the bytes of mail, never holds one, and memmem's general search was 6% of parse
 * time for these two scans of every message. */
static const char *extract_find_dashes(const char *p, const char *end)
{
	const char *r;

	if (end - p < 3)
		return NULL;
	for (r = p + 1; r + 1 < end && (r = memchr(r, '-', (size_t)(end - r - 1))) != NULL; r++) {
		if (r[-1] == '\n' && r[1] == '-')
			return r - 1;
	}
	return NULL;
}

/* GMime builds every part of a message before we can count them, and a part costs it far more
 * memory than its few bytes of input. Returns how much of raw to hand to GMime: all of it,
 * unless it holds more boundary lines than max_parts parts can have (each part opens with at
 * most one and each multipart adds one closing line), in which case it is cut before the
 * first line over that budget. */
size_t extract_guard_boundary_cut(const char *raw, size_t len, size_t max_parts)
{
	size_t budget = max_parts < SIZE_MAX / 2 - 2 ? 2 * max_parts + 2 : SIZE_MAX;
	size_t count = 0, cut = len;
	const char *p = raw, *end = raw + len;
	GHashTable *set;

	/* Cheap pass: lines starting with "--" at all. Nearly every message stops here. */
	if (len >= 2 && raw[0] == '-' && raw[1] == '-')
		count++;
	while (count <= budget && (p = extract_find_dashes(p, end)) != NULL) {
		count++;
		p += 3;
	}
	if (count <= budget)
		return len;

	set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	extract_collect_boundaries(raw, len, set);
	count = 0;
	for (p = raw; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t linelen = (size_t)((nl ? nl : end) - p);

		if (linelen > 2 && p[0] == '-' && p[1] == '-' && extract_is_boundary_line(p, linelen, set) &&
		    ++count > budget) {
			cut = (size_t)(p - raw);
			break;
		}
		p = nl ? nl + 1 : end;
	}
	g_hash_table_destroy(set);
	return cut;
}

/* What extract_guard_header_cut looks for in a header line: one lookup per byte. */
enum { HB_ITEM = 1, HB_SLASH, HB_EOL };
static const unsigned char header_bytes[256] = {
	[','] = HB_ITEM, [';'] = HB_ITEM, ['<'] = HB_ITEM, ['/'] = HB_SLASH, ['\n'] = HB_EOL,
};

/* Returns the offset of the line holding the (max + 1)th header item, or len. Header blocks
 * are over-approximated without parsing: one starts at the top, after every line starting with
 * "--" (any boundary) and after a blank line ending a block that mentions "message/" (an
 * embedded message's headers follow); each runs to the next blank line. */
size_t extract_guard_header_cut(const char *raw, size_t len, size_t max)
{
	size_t pos = 0, items = 0;

	while (pos < len) {
		gboolean embedded = FALSE;
		size_t i = pos;
		const char *dashes;

		/* One block: count line by line until a blank line. */
		while (i < len) {
			size_t line = i;

			if (raw[i] == '\n' || (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')) {
				i += raw[i] == '\r' ? 2 : 1;
				break;
			}
			for (items++; i < len; i++) {
				unsigned char k = header_bytes[(unsigned char)raw[i]];

				if (k == 0)
					continue;
				if (k == HB_EOL)
					break;
				if (k == HB_ITEM)
					items++;
				else if (!embedded && i - line >= 7 &&
					 g_ascii_strncasecmp(raw + i - 7, "message", 7) == 0)
					embedded = TRUE; /* "message/" ends here */
			}
			if (items > max)
				return line;
			i = i < len ? i + 1 : len;
		}
		if (embedded) {
			pos = i;
			continue;
		}
		/* The next block starts after the next "--" line. */
		if (i >= len || (dashes = extract_find_dashes(raw + i - 1, raw + len)) == NULL)
			break;
		{
			const char *nl = memchr(dashes + 1, '\n', (size_t)(raw + len - dashes - 1));

			pos = nl ? (size_t)(nl + 1 - raw) : len;
		}
	}
	return len;
}

/* Writes stop into *copy (made on first need from raw) at a point inside the run starting at
 * name, so that no run through it is longer than EXTRACT_CHARSET_RUN_MAX; returns the point. */
static size_t extract_cut_run(struct extract_ctx *c, const char *raw, size_t len, char **copy,
			      size_t name, size_t run_end, char stop, gboolean *noted)
{
	size_t q = name + EXTRACT_CHARSET_RUN_MAX / 2;

	/* Not after '=': a '?' there would open a new encoded word (unless right before the old
	 * stop, where that word's name is empty). */
	while (raw[q - 1] == '=' && q + 1 < run_end)
		q++;
	if (*copy == NULL)
		*copy = g_memdup2(raw, len);
	(*copy)[q] = stop;
	if (!*noted)
		extract_note(c, "oversized charset name at byte %zu cut", name);
	*noted = TRUE;
	return q;
}

/* Bounds every charset name run in raw (from an opener "=?" or "*=" to the next stop byte,
 * '?' or '\'': an upper bound on what GMime takes as the name) by writing a stop byte into
 * any run longer than EXTRACT_CHARSET_RUN_MAX, in *copy. A stop byte placed inside a run ends
 * every earlier run through it too, which patching the opener would not. Both scans step with
 * memchr over bytes that base64 never contains, so large attachments cost little. */
static void extract_defuse_runs(struct extract_ctx *c, const char *raw, size_t len, char **copy)
{
	const char *end = raw + len, *p;
	size_t prev = SIZE_MAX, next_quote = 0;
	gboolean noted = FALSE, known = FALSE;

	/* "=?" runs: each opener's '?' is itself a stop byte, so walking from '?' to '?' sees
	 * every run whole. */
	for (p = raw; (p = memchr(p, '?', (size_t)(end - p))) != NULL; p++) {
		size_t at = (size_t)(p - raw);

		if (prev != SIZE_MAX && at - (prev + 1) > EXTRACT_CHARSET_RUN_MAX)
			extract_cut_run(c, raw, len, copy, prev + 1, at, '?', &noted);
		prev = at > 0 && raw[at - 1] == '=' ? at : SIZE_MAX;
	}
	if (prev != SIZE_MAX && len - (prev + 1) > EXTRACT_CHARSET_RUN_MAX)
		extract_cut_run(c, raw, len, copy, prev + 1, len, '?', &noted);

	/* "*=" runs end at the next '\'', shared by every opener before it. */
	noted = FALSE;
	for (p = raw; (p = memchr(p, '*', (size_t)(end - p))) != NULL; p++) {
		size_t name = (size_t)(p - raw) + 2;

		if (name > len || p[1] != '=')
			continue;
		if (!known || next_quote < name) {
			const char *q = memchr(raw + name, '\'', len - name);

			next_quote = q ? (size_t)(q - raw) : len;
			known = TRUE;
		}
		if (next_quote - name > EXTRACT_CHARSET_RUN_MAX)
			next_quote = extract_cut_run(c, raw, len, copy, name, next_quote, '\'', &noted);
	}
}

/* GMime copies charset names onto the stack (g_alloca) before looking them up: see
 * EXTRACT_CHARSET_RUN_MAX. Returns a defused copy of raw, or NULL when raw is safe as it is. */
char *extract_guard_defuse_charsets(struct extract_ctx *c, const char *raw, size_t len)
{
	char *copy = NULL;

	if (len <= EXTRACT_CHARSET_RUN_MAX)
		return NULL;
	extract_defuse_runs(c, raw, len, &copy);
	return copy;
}

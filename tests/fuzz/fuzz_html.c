/* libFuzzer target for parser/html.c: the input is an HTML body (a leading \x01, \x02 or \x03
 * byte passes latin-1, UTF-16LE or Shift_JIS as the charset hint); the text must keep html.h's
 * promises (valid UTF-8 without NUL, trimmed, at most one blank line) and be the same twice.
 * clang -fsanitize=fuzzer,address,undefined $(pkg-config --cflags libxml-2.0) \
 *	tests/fuzz/fuzz_html.c parser/html.c $(pkg-config --libs libxml-2.0) -o build/fuzz/fuzz_html */
#include "../../parser/html.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(int ok)
{
	if (!ok)
		abort();
}

/* Valid UTF-8 (RFC 3629) without NUL, written out here so the check shares no code with
 * what it checks. */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len, k;
		uint32_t cp;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			len = 2, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			len = 3, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			len = 4, cp = c & 0x07;
		else
			return 0;
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
			return 0;
		i += len;
	}
	return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	html_global_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hints[] = { NULL, "iso-8859-1", "utf-16le", "shift_jis" };
	const char *hint = NULL;
	char *a, *b;
	size_t n;

	if (size > 0 && data[0] >= 1 && data[0] <= 3) {
		hint = hints[data[0]];
		data++;
		size--;
	}
	a = html_to_text((const char *)data, size, hint);
	check(a != NULL);
	n = strlen(a);
	check(valid_utf8((const unsigned char *)a, n));
	check(strstr(a, "\n\n\n") == NULL);
	if (n > 0) {
		check(a[0] != ' ' && a[0] != '\n' && a[0] != '\t');
		check(a[n - 1] != ' ' && a[n - 1] != '\n' && a[n - 1] != '\t');
	}
	b = html_to_text((const char *)data, size, hint);
	check(b != NULL && strcmp(a, b) == 0);
	free(a);
	free(b);
	return 0;
}

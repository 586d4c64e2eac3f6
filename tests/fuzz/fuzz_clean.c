/* libFuzzer target for parser/clean.c: the first byte picks the steps (its top bit passes a
 * forward Subject), the rest is the body. The result must keep clean.h's promises (valid UTF-8,
 * at most twice the body, identity with no step) and be the same when cleaned twice. */
#include "../../parser/clean.h"

#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(int ok)
{
	if (!ok)
		abort();
}

/* clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iparser \
 *	tests/fuzz/fuzz_clean.c parser/clean.c $(pkg-config --cflags --libs glib-2.0) \
 *	-o build/fuzz/fuzz_clean
 * build/fuzz/fuzz_clean -max_len=16384 build/fuzz/corpus_clean tests/fuzz/corpus/clean */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body, *subject;
	unsigned steps;
	char *a, *b;
	size_t n;

	if (size == 0)
		return 0;
	steps = data[0] & CLEAN_ALL;
	subject = data[0] & 0x80 ? "Fwd: subject" : NULL;
	body = (const char *)data + 1;
	size--;
	a = clean_text_subject(body, size, steps, subject);
	check(a != NULL);
	n = strlen(a);
	check(n <= 2 * size);
	check(g_utf8_validate(a, (gssize)n, NULL));
	if (steps == 0 && memchr(body, '\0', size) == NULL && g_utf8_validate(body, (gssize)size, NULL))
		check(n == size && memcmp(a, body, size) == 0);
	b = clean_text_subject(body, size, steps, subject);
	check(b != NULL && strcmp(a, b) == 0);
	free(a);
	free(b);
	return 0;
}

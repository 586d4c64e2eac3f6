/* libFuzzer target for parser/extract.c: the input is one raw message (a leading \x01 byte
 * selects tiny limits so that small inputs reach the limit paths); every record must keep
 * extract.h's promises, and parsing the same bytes again with GMime's warnings on from the
 * start must give the same record. */
#include "../../parser/enrich.h"
#include "../../parser/extract.h"

#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const string_or_null[] = {
	"message_id", "in_reply_to", "subject", "sent_at", "list_id", "body_text", "body_html",
	"snippet", "parse_error",
};
static const char *const address_arrays[] = { "to", "cc", "bcc", "reply_to" };

static void check(int ok)
{
	if (!ok)
		abort();
}

/* Every string valid UTF-8 without NUL, recursively. */
static void check_strings(json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	if (json_is_string(v)) {
		check(g_utf8_validate(json_string_value(v), (gssize)json_string_length(v), NULL));
		check(memchr(json_string_value(v), '\0', json_string_length(v)) == NULL);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			check_strings(item);
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, item)
			check_strings(item);
	}
}

static void check_address(json_t *a)
{
	check(json_is_object(a));
	check(json_is_string(json_object_get(a, "email")));
	check(json_is_string(json_object_get(a, "name")) || json_is_null(json_object_get(a, "name")));
}

static void check_record(json_t *o, const struct extract_limits *lim)
{
	json_t *v, *item;
	size_t i;

	check(json_is_object(o));
	check_strings(o);
	v = json_object_get(o, "content_sha256");
	check(json_is_string(v) && json_string_length(v) == 64);
	check(json_is_string(json_object_get(o, "message_id")));
	check(json_is_boolean(json_object_get(o, "message_id_synthetic")));
	for (i = 0; i < G_N_ELEMENTS(string_or_null); i++) {
		v = json_object_get(o, string_or_null[i]);
		check(json_is_string(v) || json_is_null(v));
	}
	v = json_object_get(o, "body_text");
	check(json_is_null(v) || json_string_length(v) <= lim->max_text);
	v = json_object_get(o, "body_html");
	check(json_is_null(v) || json_string_length(v) <= lim->max_text);
	v = json_object_get(o, "snippet");
	check(json_is_null(v) || g_utf8_strlen(json_string_value(v), -1) <= 200);
	v = json_object_get(o, "from");
	if (!json_is_null(v))
		check_address(v);
	for (i = 0; i < G_N_ELEMENTS(address_arrays); i++) {
		size_t k;

		v = json_object_get(o, address_arrays[i]);
		check(json_is_array(v));
		json_array_foreach(v, k, item)
			check_address(item);
	}
	v = json_object_get(o, "references");
	check(json_is_array(v));
	json_array_foreach(v, i, item)
		check(json_is_string(item));
	v = json_object_get(o, "attachments");
	check(json_is_array(v) && json_array_size(v) <= lim->max_parts);
	json_array_foreach(v, i, item) {
		check(json_is_integer(json_object_get(item, "size")));
		check(json_integer_value(json_object_get(item, "size")) >= 0);
		check(json_is_string(json_object_get(item, "content_type")));
	}
}

/* clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *	$(pkg-config --cflags gmime-3.0 jansson) tests/fuzz/fuzz_extract.c parser/extract.c \
 *	$(pkg-config --libs gmime-3.0 jansson) -o build/fuzz_extract
 * build/fuzz_extract -max_len=65536 build/fuzz-corpus-extract tests/fuzz/corpus/extract */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	extract_global_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct extract_limits lim;
	json_t *a, *b;

	extract_limits_default(&lim);
	if (size > 0 && data[0] == 0x01) {
		lim.max_parts = 6;
		lim.max_depth = 2;
		lim.max_text = 40;
		data++;
		size--;
	}
	a = extract_message((const char *)data, size, &lim);
	check(a != NULL);
	check_record(a, &lim);
	/* The whole extraction: cleaning, HTML, threading keys and contacts too. */
	json_t *meta = json_pack("{s:s}", "account_email", "me@example.org");
	json_t *e = json_deep_copy(a);
	check(e && enrich_message(e, meta) == 0);
	check_strings(e);
	json_decref(e);
	json_decref(meta);
	/* Parsing again, with GMime's warnings on from the start, gives the same record: the
	 * quick parse must never lose a warning parse_error names. */
	lim.always_warn = 1;
	b = extract_message((const char *)data, size, &lim);
	check(b != NULL && json_equal(a, b));
	json_decref(a);
	json_decref(b);
	return 0;
}

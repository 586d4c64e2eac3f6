/* What every parser record must satisfy whatever the input: every string (and key) valid
 * UTF-8 without NUL. Shared by the unit tests that parse corpora. */
#ifndef MP_TEST_JSON_CHECK_H
#define MP_TEST_JSON_CHECK_H

#include <glib.h>
#include <jansson.h>
#include <string.h>

/* Every string and key in v is valid UTF-8 without NUL, recursively. */
static inline int valid_json_strings(json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		return g_utf8_validate(s, (gssize)len, NULL) && memchr(s, '\0', len) == NULL;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, item) {
			if (!valid_json_strings(item))
				return 0;
		}
	}
	if (json_is_object(v)) {
		json_object_foreach(v, key, item) {
			if (!g_utf8_validate(key, -1, NULL) || !valid_json_strings(item))
				return 0;
		}
	}
	return 1;
}

#endif

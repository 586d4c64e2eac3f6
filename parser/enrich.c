/* Record enrichment after MIME extraction. Pure: no I/O, no GMime; works on the JSON record so
 * that the unparsed (dead-letter) path and the normal path share it. */
#include "enrich.h"
#include "clean.h"
#include "subject.h"

#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *enrich_snippet(const char *text, size_t max)
{
	if (!text)
		return NULL;
	size_t len = strlen(text), k = 0, points = 0;
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	int space = 0;
	for (const char *p = text; *p && points < max;) {
		gunichar c = g_utf8_get_char_validated(p, -1);
		const char *next = g_utf8_next_char(p);
		if (c == (gunichar)-1 || c == (gunichar)-2) { /* invalid: skip a byte */
			p++;
			continue;
		}
		if (g_unichar_isspace(c) || c == 0xA0) {
			space = k > 0;
			p = next;
			continue;
		}
		if (space) {
			out[k++] = ' ';
			points++;
			space = 0;
			if (points >= max)
				break;
		}
		memcpy(out + k, p, (size_t)(next - p));
		k += (size_t)(next - p);
		points++;
		p = next;
	}
	out[k] = 0;
	return out;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static unsigned cleaning_steps(json_t *meta)
{
	unsigned steps = CLEAN_ALL;
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(meta, "clean_off"), i, v)
		steps &= ~clean_step_from_name(json_string_value(v) ? json_string_value(v) : "");
	return steps;
}

static int is_own_address(json_t *meta, const char *email)
{
	json_t *own = json_object_get(meta, "account_email");
	if (!email || !own)
		return 0;
	if (json_is_string(own))
		return strcasecmp(json_string_value(own), email) == 0;
	size_t i;
	json_t *v;
	json_array_foreach(own, i, v)
		if (json_is_string(v) && strcasecmp(json_string_value(v), email) == 0)
			return 1;
	return 0;
}

/* A display name is better when it exists and is not just the address again. */
static int better_name(const char *cand, const char *have, const char *email)
{
	if (!cand || !*cand || strcasecmp(cand, email) == 0)
		return 0;
	if (!have || !*have)
		return 1;
	return strlen(cand) > strlen(have);
}

static void add_contact(json_t *contacts, json_t *addr, const char *role)
{
	const char *email = jstr(addr, "email"), *name = jstr(addr, "name");
	if (!email || !*email || !strchr(email, '@'))
		return;
	size_t i;
	json_t *c;
	json_array_foreach(contacts, i, c) {
		if (strcasecmp(jstr(c, "email"), email) != 0)
			continue;
		if (better_name(name, jstr(c, "name"), email))
			json_object_set_new(c, "name", json_string(name));
		json_t *roles = json_object_get(c, "roles");
		size_t k;
		json_t *r;
		json_array_foreach(roles, k, r)
			if (strcmp(json_string_value(r), role) == 0)
				return;
		json_array_append_new(roles, json_string(role));
		return;
	}
	c = json_pack("{s:s, s:o, s:[s]}", "email", email,
		      "name", better_name(name, NULL, email) ? json_string(name) : json_null(),
		      "roles", role);
	if (c)
		json_array_append_new(contacts, c);
}

int enrich_message(json_t *msg, json_t *meta)
{
	const char *body = jstr(msg, "body_text");
	char *clean = NULL, *snippet = NULL, *base = NULL;
	const char *subject = jstr(msg, "subject");

	if (body) {
		clean = clean_text_subject(body, strlen(body), cleaning_steps(meta), subject);
		if (!clean)
			return -ENOMEM;
		snippet = enrich_snippet(*clean ? clean : body, 200);
	}
	/* Both are valid UTF-8 without NUL by construction (clean.h, enrich_snippet): jansson
	 * need not check them again. */
	json_object_set_new(msg, "body_clean",
			    clean ? json_stringn_nocheck(clean, strlen(clean)) : json_null());
	json_object_set_new(msg, "cleaner_version", json_integer(CLEANER_VERSION));
	json_object_set_new(msg, "snippet",
			    snippet ? json_stringn_nocheck(snippet, strlen(snippet)) : json_null());
	free(clean);
	free(snippet);

	base = subject ? subject_base(subject) : NULL;
	json_object_set_new(msg, "base_subject", base ? json_string(base) : json_null());
	json_object_set_new(msg, "is_reply", json_boolean(subject && subject_is_reply(subject) == 1));
	free(base);

	/* RFC 5256 REFERENCES: the parent is the last References id, else In-Reply-To. */
	json_t *refs = json_object_get(msg, "references");
	const char *irt = jstr(msg, "in_reply_to");
	json_t *chain = json_array();
	if (json_array_size(refs) > 0)
		json_array_extend(chain, refs);
	else if (irt)
		json_array_append_new(chain, json_string(irt));
	json_t *parent = json_array_size(chain) ? json_array_get(chain, json_array_size(chain) - 1)
						: NULL;
	json_object_set_new(msg, "thread_parent", parent ? json_incref(parent) : json_null());
	json_object_set_new(msg, "thread_refs", chain);
	json_t *thrid = json_object_get(meta, "gm_thrid");
	json_object_set_new(msg, "gm_thrid", thrid ? json_incref(thrid) : json_null());

	json_t *contacts = json_array();
	static const char *const roles[] = { "from", "to", "cc", "bcc", "reply_to" };
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		json_t *v = json_object_get(msg, roles[i]);
		if (json_is_object(v)) {
			add_contact(contacts, v, roles[i]);
		} else {
			size_t k;
			json_t *a;
			json_array_foreach(v, k, a)
				add_contact(contacts, a, roles[i]);
		}
	}
	json_object_set_new(msg, "contacts", contacts);
	const char *from = jstr(json_object_get(msg, "from"), "email");
	json_object_set_new(msg, "direction",
			    json_string(is_own_address(meta, from) ? "outgoing" : "incoming"));
	return 0;
}

/* Owns a message's header fields in the record: message-id, references, dates, addresses and
 * groups, list id, subject. Not MIME parts. Called by extract.c. */
#include "extract_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gmime/gmime.h>

#define EXTRACT_GROUP_DEPTH 4      /* address groups cannot nest in RFC 5322; be safe anyway */

/* ---- headers ---- */

static void extract_addresses(struct extract_ctx *c, json_t *out, InternetAddressList *list,
			      unsigned depth)
{
	int i, n;

	if (list == NULL || depth > EXTRACT_GROUP_DEPTH)
		return;
	n = internet_address_list_length(list);
	for (i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		json_t *a, *name, *email;

		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			extract_addresses(c, out, internet_address_group_get_members(
							  (InternetAddressGroup *)ia), depth + 1);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		name = extract_json_opt(internet_address_get_name(ia));
		email = extract_json_opt(internet_address_mailbox_get_addr((InternetAddressMailbox *)ia));
		if (json_is_null(email) && json_is_null(name))
			continue;
		if (json_is_null(email))
			email = json_string("");
		a = json_object();
		if (a == NULL) {
			json_decref(name);
			json_decref(email);
			c->oom = TRUE;
			return;
		}
		extract_put(c, a, "name", name);
		extract_put(c, a, "email", email);
		extract_push(c, out, a);
	}
}

static json_t *extract_address_array(struct extract_ctx *c, InternetAddressList *list)
{
	json_t *a = json_array();

	if (a != NULL)
		extract_addresses(c, a, list, 0);
	return a;
}

/* "<id>" headers: the ids in order; a bare id without <> is taken as one. */
static GMimeReferences *extract_ids(struct extract_ctx *c, GMimeMessage *m, const char *header)
{
	const char *value = g_mime_object_get_header((GMimeObject *)m, header);
	GMimeReferences *refs;

	if (value == NULL)
		return NULL;
	refs = g_mime_references_parse(c->options, value);
	if (g_mime_references_length(refs) == 0) {
		char *id = g_mime_utils_decode_message_id(value);

		if (id != NULL && id[0] != '\0')
			g_mime_references_append(refs, id);
		g_free(id);
	}
	return refs;
}

static json_t *extract_date(GMimeMessage *m)
{
	GDateTime *d = g_mime_message_get_date(m);
	char buf[80];
	struct tm tm;
	time_t t;

	if (d == NULL)
		return json_null();
	t = (time_t)g_date_time_to_unix(d);
	/* A zone offset can push GDateTime's years 1..9999 out of ISO-8601's four digits. */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
		return json_null();
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return json_string(buf);
}

static json_t *extract_list_id(GMimeMessage *m)
{
	const char *v = g_mime_object_get_header((GMimeObject *)m, "List-Id");
	const char *lt, *gt;
	json_t *j;
	char *id;

	if (v == NULL)
		return json_null();
	lt = strrchr(v, '<');
	gt = lt ? strchr(lt, '>') : NULL;
	if (lt == NULL || gt == NULL)
		return extract_json_opt(v);
	id = g_strndup(lt + 1, (gsize)(gt - lt - 1));
	j = extract_json_opt(id);
	g_free(id);
	return j;
}

void extract_headers(struct extract_ctx *c, json_t *o, GMimeMessage *m)
{
	const char *mid = g_mime_message_get_message_id(m);
	GMimeReferences *refs;
	json_t *id = extract_json_opt(mid), *from, *array;

	if (id != NULL && json_is_string(id)) {
		const char *s = json_string_value(id);
		size_t len = json_string_length(id);

		/* GMime already strips <>, except from ids it could not parse. */
		if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
			json_t *bare = len > 2 ? extract_json_bytes(s + 1, len - 2) : json_null();
			json_decref(id);
			id = bare;
		}
	}
	extract_put(c, o, "message_id", id);

	/* In-Reply-To is often not just an id: exmh writes "Message from NAME <ADDR> of DATE
	 * <MSGID>", MH 'Your message of "DATE."'. The parent is the id it shares with References,
	 * else its last id; free text without an addr-spec names no parent at all. Threading keys
	 * on this, so a wrong value merges unrelated conversations. */
	refs = extract_ids(c, m, "In-Reply-To");
	if (refs != NULL && g_mime_references_length(refs) > 0) {
		GMimeReferences *chain = extract_ids(c, m, "References");
		int n = g_mime_references_length(refs), pick = n - 1;
		for (int i = n - 1; chain != NULL && i >= 0; i--) {
			const char *id = g_mime_references_get_message_id(refs, i);
			int shared = 0;
			for (int k = 0; k < g_mime_references_length(chain) && !shared; k++)
				shared = strcmp(id, g_mime_references_get_message_id(chain, k)) == 0;
			if (shared) {
				pick = i;
				break;
			}
		}
		const char *id = g_mime_references_get_message_id(refs, pick);
		if (id != NULL && strchr(id, '@') != NULL && strpbrk(id, " \t\r\n\"") == NULL)
			extract_put(c, o, "in_reply_to", extract_json_opt(id));
		if (chain != NULL)
			g_mime_references_free(chain);
	}
	if (refs != NULL)
		g_mime_references_free(refs);

	refs = extract_ids(c, m, "References");
	array = json_object_get(o, "references");
	if (refs != NULL) {
		int i, n = g_mime_references_length(refs);

		for (i = 0; i < n; i++) {
			json_t *ref = extract_json_opt(g_mime_references_get_message_id(refs, i));

			if (json_is_null(ref))
				continue;
			extract_push(c, array, ref);
		}
		g_mime_references_free(refs);
	}

	extract_put(c, o, "subject", extract_json_opt(g_mime_message_get_subject(m)));
	extract_put(c, o, "sent_at", extract_date(m));

	from = extract_address_array(c, g_mime_message_get_from(m));
	if (from != NULL && json_array_size(from) > 0)
		extract_put(c, o, "from", json_incref(json_array_get(from, 0)));
	json_decref(from);
	extract_put(c, o, "to", extract_address_array(c, g_mime_message_get_to(m)));
	extract_put(c, o, "cc", extract_address_array(c, g_mime_message_get_cc(m)));
	extract_put(c, o, "bcc", extract_address_array(c, g_mime_message_get_bcc(m)));
	extract_put(c, o, "reply_to", extract_address_array(c, g_mime_message_get_reply_to(m)));
	extract_put(c, o, "list_id", extract_list_id(m));
}

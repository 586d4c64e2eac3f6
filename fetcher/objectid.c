/* Stable object ids; see objectid.h. A sync's new UIDs are first asked for their id only
 * (UID FETCH set (UID FLAGS EMAILID)), in chunks, and the ids looked up in the account's hash
 * of committed messages (one HMGET per chunk). A hit becomes a `link` record on {mp}:parsed:
 * the writer adds the location to the stored row. The job's cursor lists linked UIDs with the
 * fetched ones, so it waits until the links are committed (invariant 1); a link the writer
 * cannot apply (the row went meanwhile) keeps the cursor below its UID (writer/link.c). */
#include "objectid.h"
#include "log.h"
#include "quirks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* UIDs asked and looked up at a time: bounds the answers held and the HMGET's size. */
#define OID_CHUNK 1000
/* New folder names examined for their MAILBOXID by one list job, at most. */
#define OID_LIST_PROBES 50

void objectid_begin(struct job *j)
{
	json_t *acc = json_object_get(j->json, "account");
	j->oid_item = quirks_object_id(quirks_for(json_string_value(json_object_get(acc, "provider"))),
				       session_capabilities(j->s));
}

void objectid_release(struct job *j)
{
	json_decref(j->oid_seen);
	j->oid_seen = NULL;
	uidset_release(&j->linked);
}

void objectid_key(char *buf, size_t size, const struct mp_config *cfg, long long account_id)
{
	snprintf(buf, size, "%s%lld", cfg->key_emailid_prefix, account_id);
}

static int valid_id(const char *s, size_t n)
{
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

int objectid_value(const struct imap_value *v, char *buf, size_t size)
{
	if (v && v->type == IMAP_V_LIST && v->n == 1)
		v = &v->items[0]; /* EMAILID (M1a2b) */
	if (!v || v->type == IMAP_V_LIST || v->type == IMAP_V_NIL || !v->s ||
	    !valid_id(v->s, v->len) || v->len >= size)
		return -1;
	memcpy(buf, v->s, v->len);
	buf[v->len] = 0;
	return 0;
}

int objectid_on_fetch(struct job *j, uint32_t uid, const struct imap_value *fetch)
{
	char id[256];
	if (!j->oid_seen || !j->oid_item ||
	    objectid_value(imap_list_get(fetch, j->oid_item), id, sizeof(id)) < 0)
		return 0;
	const struct imap_value *flags = imap_list_get(fetch, "FLAGS");
	const struct imap_value *modseq = imap_list_get(fetch, "MODSEQ");
	uint64_t ms = 0;
	json_t *fl = json_array();
	for (size_t i = 0; flags && flags->type == IMAP_V_LIST && i < flags->n; i++)
		if (flags->items[i].s && !imap_value_is(&flags->items[i], "\\Recent"))
			json_array_append_new(fl, json_stringn(flags->items[i].s, flags->items[i].len));
	json_t *row = json_pack("[I, s, o]", (json_int_t)uid, id, fl);
	if (row && modseq && modseq->type == IMAP_V_LIST && modseq->n == 1 &&
	    imap_value_u64(&modseq->items[0], &ms) == 0)
		json_array_append_new(row, json_integer((json_int_t)ms));
	if (row)
		json_array_append_new(j->oid_seen, row);
	return 1;
}

void objectid_on_code(struct job *j, const struct imap_response *r)
{
	const char *c = r->code;
	if (!c || strncasecmp(c, "MAILBOXID", 9) != 0)
		return;
	c += 9;
	c += strspn(c, " (");
	size_t n = strcspn(c, ") ");
	j->mailbox_id[0] = 0;
	if (valid_id(c, n) && n < sizeof(j->mailbox_id)) {
		memcpy(j->mailbox_id, c, n);
		j->mailbox_id[n] = 0;
	}
}

/* Looks up the ids of one chunk's answers (j->oid_seen) and emits one `link` record for the
 * hits. 0, or -EIO (Redis). */
static int link_chunk(struct job *j, const char *key)
{
	size_t n = json_array_size(j->oid_seen);
	if (n == 0)
		return 0;
	const char **argv = calloc(n + 2, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	argv[0] = "HMGET";
	argv[1] = key;
	for (size_t i = 0; i < n; i++)
		argv[i + 2] = json_string_value(json_array_get(json_array_get(j->oid_seen, i), 1));
	redisReply *r = redisCommandArgv(j->f->rc, (int)n + 2, argv, NULL);
	free(argv);
	if (!r) {
		j->redis_failed = 1;
		return -EIO;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		/* A lookup the server refuses costs downloads, not correctness. */
		freeReplyObject(r);
		return 0;
	}
	json_t *links = json_array();
	struct uidset hit;
	uidset_init(&hit);
	for (size_t i = 0; i < n; i++) {
		redisReply *e = r->element[i];
		char *end = NULL;
		long long mid = e->type == REDIS_REPLY_STRING ? strtoll(e->str, &end, 10) : 0;
		if (mid <= 0 || !end || *end)
			continue;
		json_t *row = json_array_get(j->oid_seen, i);
		json_t *l = json_pack("{s:O, s:I, s:O, s:O, s:O?}", "u", json_array_get(row, 0),
				      "m", (json_int_t)mid, "e", json_array_get(row, 1),
				      "fl", json_array_get(row, 2), "s", json_array_get(row, 3));
		if (l) {
			json_array_append_new(links, l);
			uidset_add(&hit, (uint32_t)json_integer_value(json_array_get(row, 0)));
		}
	}
	freeReplyObject(r);
	int rc = 0;
	if (json_array_size(links)) {
		json_t *rec = job_record(j);
		json_object_set_new(rec, "folder_id", json_integer(j->folder_id));
		json_object_set_new(rec, "uidvalidity", json_integer((json_int_t)j->uidvalidity));
		json_object_set(rec, "links", links);
		rc = job_emit(j, "link", rec) < 0 ? -EIO : 0;
		json_decref(rec);
		for (size_t i = 0; rc == 0 && i < hit.n; i++)
			uidset_add(&j->linked, hit.v[i]);
		if (rc < 0)
			j->redis_failed = 1;
	}
	json_decref(links);
	uidset_release(&hit);
	return rc;
}

int objectid_link(struct job *j, struct uidset *todo)
{
	char key[200];
	int rc = 0;
	uidset_normalize(&j->linked);
	/* Linked by an earlier attempt of this job: not asked again. */
	size_t k = 0;
	for (size_t i = 0; i < todo->n; i++)
		if (!uidset_contains(&j->linked, todo->v[i]))
			todo->v[k++] = todo->v[i];
	todo->n = k;
	if (!j->oid_item || todo->n == 0)
		return 0;
	objectid_key(key, sizeof(key), j->f->cfg, j->account_id);
	/* Nothing committed with an id yet (a first sync): every lookup would miss. */
	redisReply *ex = redisCommand(j->f->rc, "EXISTS %s", key);
	int exists = ex && ex->type == REDIS_REPLY_INTEGER && ex->integer > 0;
	if (!ex)
		j->redis_failed = 1;
	freeReplyObject(ex);
	if (!exists)
		return 0;
	size_t before = j->linked.n;
	for (size_t at = 0; at < todo->n && rc == 0; at += OID_CHUNK) {
		struct uidset chunk = { todo->v + at, todo->n - at < OID_CHUNK ? todo->n - at : OID_CHUNK, 0 };
		char rest[96];
		snprintf(rest, sizeof(rest), " (UID FLAGS %s%s)", j->oid_item, j->condstore ? " MODSEQ" : "");
		j->oid_seen = json_array();
		rc = job_command_set(j, "UID FETCH", &chunk, rest);
		if (rc == -EREMOTEIO) {
			log_warn("account=%s folder=\"%s\" msg=\"server refused to name its messages (%s); "
				 "downloading them\"", j->account, j->folder, j->wait_text);
			rc = 0;
			json_decref(j->oid_seen);
			j->oid_seen = NULL;
			break;
		}
		if (rc == 0)
			rc = link_chunk(j, key);
		json_decref(j->oid_seen);
		j->oid_seen = NULL;
	}
	if (rc == -EIO && j->redis_failed)
		snprintf(j->error, sizeof(j->error), "redis write failed for account '%s' folder '%s'",
			 j->account, j->folder);
	uidset_normalize(&j->linked);
	k = 0;
	for (size_t i = 0; i < todo->n; i++)
		if (!uidset_contains(&j->linked, todo->v[i]))
			todo->v[k++] = todo->v[i];
	todo->n = k;
	if (j->linked.n > before)
		log_info("account=%s folder=\"%s\" linked=%zu to_download=%zu msg=\"moved or renumbered "
			 "messages linked to stored ones, not downloaded\"", j->account, j->folder,
			 j->linked.n - before, todo->n);
	return rc;
}

/* 1 when name is among a JSON array's objects' "name". */
static int has_name(json_t *arr, const char *name, int selectable_only)
{
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o) {
		const char *n = json_string_value(json_object_get(o, "name"));
		if (n && !strcmp(n, name) &&
		    (!selectable_only || json_is_true(json_object_get(o, "selectable"))))
			return 1;
	}
	return 0;
}

int objectid_list(struct job *j)
{
	json_t *acc = json_object_get(j->json, "account");
	const struct quirks *q = quirks_for(json_string_value(json_object_get(acc, "provider")));
	json_t *known = json_object_get(j->json, "known_folders");
	size_t i, probes = 0;
	json_t *o;
	/* STATUS (MAILBOXID) would cost nothing extra, but Cyrus 3.6 answers it with garbage
	 * bytes; EXAMINE's response code is right everywhere, so only names that may be a
	 * renamed folder are examined: none on a list where no known folder went. */
	if (q->no_objectid || !quirks_cap(session_capabilities(j->s), "OBJECTID"))
		return 0;
	int gone = 0;
	json_array_foreach(known, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		if (name && json_is_string(json_object_get(o, "mailbox_id")) &&
		    !has_name(j->folders, name, 1))
			gone = 1;
	}
	if (!gone)
		return 0;
	json_array_foreach(j->folders, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		const char *wire = json_string_value(json_object_get(o, "wire_name"));
		char quoted[1100], cmd[1200];
		if (!name || !wire || !json_is_true(json_object_get(o, "selectable")) ||
		    has_name(known, name, 0) || session_quote(quoted, sizeof(quoted), wire) < 0)
			continue;
		if (probes++ == OID_LIST_PROBES)
			break;
		j->mailbox_id[0] = 0;
		snprintf(cmd, sizeof(cmd), "EXAMINE %s", quoted);
		int rc = job_command(j, cmd);
		if (rc == -EIO)
			return rc;
		if (rc == 0 && j->mailbox_id[0])
			json_object_set_new(o, "mailbox_id", json_string(j->mailbox_id));
	}
	j->mailbox_id[0] = 0;
	return 0;
}

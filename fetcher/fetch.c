/* The IMAP side of a job. A sync_folder job is: EXAMINE (read-only, so nothing is marked
 * \Seen), UID SEARCH for UIDs above the cursor, then pipelined UID FETCH batches whose
 * messages go to {mp}:raw as they arrive, then one `cursor` record. The cursor record is
 * written only after every raw XADD was acknowledged by Redis, and the writer applies it only
 * once every UID it lists is committed (invariant 1). */
#include "conn.h"
#include "job.h"
#include "log.h"
#include "mutf7.h"
#include "objectid.h"
#include "quirks.h"
#include "retry.h"
#include "rstream.h"
#include "session.h"
#include "stage.h"
#include "uidset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>



static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static long long jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void on_session_wait(void *data)
{
	struct job *j = data;
	/* The context may hold pipelined XADDs whose replies are unread: read them first, or
	 * the claim's reply would be taken for theirs. */
	job_collect(j);
	job_refresh_claims(j, 0);
	conns_tick(j->f->conns);
}

/* ---- IMAP side ---- */

static void on_untagged(void *data, const struct imap_response *r)
{
	struct job *j = data;
	uint64_t v;
	if (r->status == IMAP_ST_OK && r->code) {
		objectid_on_code(j, r);
		if (imap_response_code_u64(r, "UIDVALIDITY", &v) == 0)
			j->uidvalidity = v;
		else if (imap_response_code_u64(r, "UIDNEXT", &v) == 0)
			j->uidnext = v;
		else if (imap_response_code_u64(r, "HIGHESTMODSEQ", &v) == 0)
			j->highest_modseq = v;
		return;
	}
	if (!r->name)
		return;
	if (r->has_number && strcasecmp(r->name, "EXISTS") == 0) {
		j->exists = r->number;
	} else if (strcasecmp(r->name, "STATUS") == 0) {
		mirror_on_status(j, r);
	} else if (strcasecmp(r->name, "VANISHED") == 0) {
		mirror_on_vanished(j, r);
	} else if (strcasecmp(r->name, "SEARCH") == 0) {
		struct uidset *out = j->search_out ? j->search_out : &j->search;
		for (size_t i = 0; i < r->nargs; i++)
			if (imap_value_u64(&r->args[i], &v) == 0 && v > 0 && v <= UINT32_MAX)
				uidset_add(out, (uint32_t)v);
	} else if (strcasecmp(r->name, "FETCH") == 0 && r->nargs == 1 &&
		   r->args[0].type == IMAP_V_LIST) {
		const struct imap_value *uidv = imap_list_get(&r->args[0], "UID");
		const struct imap_value *body = imap_list_get(&r->args[0], "BODY[]");
		const struct imap_value *size = imap_list_get(&r->args[0], "RFC822.SIZE");
		uint64_t bytes;
		if (!uidv || imap_value_u64(uidv, &v) < 0 || v == 0 || v > UINT32_MAX)
			return;
		if (j->probing) {
			/* Margin for the response around the literal. */
			if (size && imap_value_u64(size, &bytes) == 0 &&
			    bytes + 4096 > (uint64_t)j->f->cfg->max_literal)
				uidset_add(&j->oversize, (uint32_t)v);
			return;
		}
		if (!body)
			body = imap_list_get(&r->args[0], "BODY[HEADER]");
		/* A FETCH without a body is a flag update: the mirror's answer, or unsolicited. */
		if (!body) {
			if (!objectid_on_fetch(j, (uint32_t)v, &r->args[0]))
				mirror_on_fetch(j, (uint32_t)v, &r->args[0]);
			return;
		}
		if (v <= j->last_uid && j->last_uid && j->uidvalidity == j->exp_uidvalidity)
			return;
		job_emit_raw(j, (uint32_t)v, &r->args[0]);
	} else if (strcasecmp(r->name, "LIST") == 0 && r->nargs >= 3 && j->folders) {
		const struct imap_value *attrs = &r->args[0], *delim = &r->args[1], *name = &r->args[2];
		json_t *a = json_array();
		const char *special = NULL;
		int selectable = 1;
		static const char *const uses[] = { "\\All",   "\\Archive", "\\Drafts", "\\Flagged",
						    "\\Junk",  "\\Sent",    "\\Trash" };
		for (size_t i = 0; attrs->type == IMAP_V_LIST && i < attrs->n; i++) {
			const struct imap_value *at = &attrs->items[i];
			if (!at->s)
				continue;
			json_array_append_new(a, json_stringn(at->s, at->len));
			if (imap_value_is(at, "\\Noselect") || imap_value_is(at, "\\NonExistent"))
				selectable = 0;
			for (size_t k = 0; k < sizeof(uses) / sizeof(uses[0]); k++)
				if (imap_value_is(at, uses[k]))
					special = uses[k];
		}
		if (!name->s) {
			json_decref(a);
			return;
		}
		char *decoded = mutf7_decode(name->s);
		json_t *fo = json_object();
		json_object_set_new(fo, "wire_name", json_stringn(name->s, name->len));
		json_object_set_new(fo, "name", json_string(decoded ? decoded : name->s));
		json_object_set_new(fo, "delimiter",
				    delim->s ? json_stringn(delim->s, delim->len) : json_null());
		json_object_set_new(fo, "attributes", a);
		json_object_set_new(fo, "special_use", special ? json_string(special) : json_null());
		json_object_set_new(fo, "selectable", json_boolean(selectable));
		if (json_object_get(fo, "name"))
			json_array_append_new(j->folders, fo);
		else
			json_decref(fo);
		free(decoded);
	}
}

static void on_tagged(void *data, unsigned tag, const struct imap_response *r)
{
	struct job *j = data;
	if (tag == j->wait_tag) {
		j->wait_done = 1;
		j->wait_status = r->status;
		j->wait_transient = r->status != IMAP_ST_OK &&
				    (retry_classify(r->code) == RETRY_TRANSIENT ||
				     retry_classify_text(r->text) == RETRY_TRANSIENT);
		snprintf(j->wait_text, sizeof(j->wait_text), "%s%s%s%s", r->code ? "[" : "",
			 r->code ? r->code : "", r->code ? "] " : "", r->text ? r->text : "");
		return;
	}
	for (size_t i = 0; i < j->inflight; i++) {
		if (j->fetch_tags[i] != tag)
			continue;
		j->fetch_tags[i] = j->fetch_tags[--j->inflight];
		j->fetch_completed = 1;
		if (r->status != IMAP_ST_OK && !j->fetch_failed) {
			j->fetch_failed = 1;
			j->wait_transient = retry_classify(r->code) == RETRY_TRANSIENT;
			snprintf(j->fetch_error, sizeof(j->fetch_error), "UID FETCH failed: %s%s%s%s",
				 r->code ? "[" : "", r->code ? r->code : "", r->code ? "] " : "",
				 r->text ? r->text : "");
		}
		return;
	}
}

int job_command(struct job *j, const char *cmd)
{
	j->wait_done = 0;
	j->wait_tag = session_send(j->s, cmd);
	if (session_run_until(j->s, &j->wait_done) < 0)
		return -EIO;
	return j->wait_status == IMAP_ST_OK ? 0 : -EREMOTEIO;
}

/* What a UID FETCH of whole messages asks for; Gmail's thread id and the message's stable id
 * (objectid.c) where the server offers them. */
static const char *body_items(struct job *j)
{
	int gm = quirks_for(jstr(json_object_get(j->json, "account"), "provider"))->gmail_ext &&
		 quirks_cap(session_capabilities(j->s), "X-GM-EXT-1");
	snprintf(j->fetch_items, sizeof(j->fetch_items), "UID FLAGS INTERNALDATE RFC822.SIZE%s%s%s "
		 "BODY.PEEK[]", gm ? " X-GM-THRID" : "", j->oid_item ? " " : "",
		 j->oid_item ? j->oid_item : "");
	return j->fetch_items;
}

#define HEADER_ITEMS "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER]"

int job_command_set(struct job *j, const char *verb, const struct uidset *set, const char *rest)
{
	char *str = uidset_format(set), *cmd = NULL;
	if (!str || asprintf(&cmd, "%s %s%s", verb, str, rest) < 0) {
		free(str);
		return -ENOMEM;
	}
	free(str);
	int rc = job_command(j, cmd);
	free(cmd);
	return rc;
}

/* The UIDs of asked not in fetched, into out (normalized). */
static void still_missing(struct job *j, const struct uidset *asked, struct uidset *out)
{
	uidset_normalize(&j->fetched);
	out->n = 0;
	for (size_t i = 0; i < asked->n; i++)
		if (!uidset_contains(&j->fetched, asked->v[i]))
			uidset_add(out, asked->v[i]);
	uidset_normalize(out);
}

/* A server may answer UID FETCH without some of the messages asked for: ones expunged
 * meanwhile, and ones it cannot read. Invariant 1 forbids passing them silently: they are
 * asked for once more, and those the server still lists afterwards are reported as missing,
 * so the cursor stays below them and the next sync asks again. */
static int recover_missing(struct job *j, const struct uidset *todo)
{
	struct uidset asked, miss, listed;
	int rc = 0;
	uidset_init(&asked);
	uidset_init(&miss);
	uidset_init(&listed);
	for (size_t i = 0; i < todo->n; i++)
		uidset_add(&asked, todo->v[i]);
	for (size_t i = 0; i < j->oversize.n; i++)
		uidset_add(&asked, j->oversize.v[i]);
	uidset_normalize(&asked);
	still_missing(j, &asked, &miss);
	if (!miss.n)
		goto out;
	char *str = uidset_format(&miss);
	log_warn("account=%s folder=\"%s\" uids=%s msg=\"server did not return these messages; "
		 "asking again\"", j->account, j->folder, str ? str : "?");
	free(str);
	struct uidset whole, header;
	uidset_init(&whole);
	uidset_init(&header);
	for (size_t i = 0; i < miss.n; i++)
		uidset_add(uidset_contains(&j->oversize, miss.v[i]) ? &header : &whole, miss.v[i]);
	char rest[128];
	snprintf(rest, sizeof(rest), " (%s)", body_items(j));
	if (whole.n)
		rc = job_command_set(j, "UID FETCH", &whole, rest);
	if (rc != -EIO && rc != -ENOMEM && header.n)
		rc = job_command_set(j, "UID FETCH", &header, " (" HEADER_ITEMS ")");
	uidset_release(&whole);
	uidset_release(&header);
	if (rc == -EIO || rc == -ENOMEM)
		goto out;
	job_collect(j);
	still_missing(j, &asked, &miss);
	if (!miss.n) {
		rc = 0;
		goto out;
	}
	/* Only what the server still lists is missing; the rest was expunged meanwhile. */
	j->search_out = &listed;
	rc = job_command_set(j, "UID SEARCH UID", &miss, "");
	j->search_out = NULL;
	if (rc == -EIO || rc == -ENOMEM)
		goto out;
	uidset_normalize(&listed);
	for (size_t i = 0; i < miss.n; i++)
		if (rc < 0 || uidset_contains(&listed, miss.v[i]))
			uidset_add(&j->missing, miss.v[i]);
	uidset_normalize(&j->missing);
	rc = 0;
	if (j->missing.n) {
		str = uidset_format(&j->missing);
		log_error("account=%s folder=\"%s\" uids=%s msg=\"server lists these messages but did "
			  "not return them when asked twice; the cursor stays below them\"", j->account,
			  j->folder, str ? str : "?");
		free(str);
	}
out:
	uidset_release(&asked);
	uidset_release(&miss);
	uidset_release(&listed);
	return rc;
}

static int do_list(struct job *j)
{
	json_decref(j->folders);
	j->folders = json_array();
	int rc = mirror_list(j);
	return rc < 0 ? rc : objectid_list(j);
}

/* Fetches the UIDs of todo (which it may reorder and shrink) into {mp}:raw: sizes first,
 * then pipelined UID FETCH batches, headers only for messages over the literal limit, and a
 * second request for what the server left out (recover_missing). newest_first fetches the
 * highest UIDs first (a first sync, a backfill: recent mail is there soonest). 0, or <0 with
 * j->error set. */
static int fetch_todo(struct job *j, struct uidset *todo, int newest_first)
{
	char cmd[1200];
	int rc = 0;
	/* A message over the literal limit would end the connection mid-literal on every sync:
	 * ask the sizes first and fetch only the header of those (stored with parse_error). */
	j->oversize.n = 0;
	if (todo->n) {
		char *set = uidset_format(todo), *probe = NULL;
		if (!set || asprintf(&probe, "UID FETCH %s (UID RFC822.SIZE)", set) < 0) {
			free(set);
			rc = -ENOMEM;
			goto out;
		}
		free(set);
		j->probing = 1;
		rc = job_command(j, probe);
		j->probing = 0;
		free(probe);
		if (rc == -EREMOTEIO)
			snprintf(j->error, sizeof(j->error), "UID FETCH RFC822.SIZE refused for account '%s' folder '%s': %s",
				 j->account, j->folder, j->wait_text);
		if (rc < 0)
			goto out;
		uidset_normalize(&j->oversize);
		size_t k = 0;
		for (size_t i = 0; i < todo->n; i++)
			if (!uidset_contains(&j->oversize, todo->v[i]))
				todo->v[k++] = todo->v[i];
		todo->n = k;
	}

	if (newest_first)
		for (size_t a = 0, b = todo->n; a + 1 < b; a++, b--) {
			uint32_t t = todo->v[a];
			todo->v[a] = todo->v[b - 1];
			todo->v[b - 1] = t;
		}
	size_t next = 0, batch = (size_t)j->f->cfg->fetch_batch;
	size_t pipeline = (size_t)j->f->cfg->fetch_pipeline;
	j->inflight = 0;
	j->fetch_failed = 0;
	while ((next < todo->n || j->inflight) && !j->fetch_failed) {
		while (next < todo->n && j->inflight < pipeline && !*j->f->stopping) {
			struct uidset chunk = { todo->v + next, next + batch < todo->n ? batch : todo->n - next, 0 };
			next += chunk.n;
			char *set = uidset_format(&chunk);
			if (!set) {
				rc = -ENOMEM;
				goto out;
			}
			const char *items = body_items(j);
			snprintf(cmd, sizeof(cmd), "UID FETCH %s (%s)", set, items);
			/* Long sets go out in one line; cmd is a fallback only for short ones. */
			if (strlen(set) + 80 > sizeof(cmd)) {
				char *big = NULL;
				if (asprintf(&big, "UID FETCH %s (%s)", set, items) < 0) {
					free(set);
					rc = -ENOMEM;
					goto out;
				}
				j->fetch_tags[j->inflight++] = session_send(j->s, big);
				free(big);
			} else {
				j->fetch_tags[j->inflight++] = session_send(j->s, cmd);
			}
			free(set);
		}
		if (*j->f->stopping && j->inflight == 0)
			break;
		/* Run until one FETCH completes; the handlers emit the messages meanwhile. */
		j->fetch_completed = 0;
		if (session_run_until(j->s, &j->fetch_completed) < 0) {
			rc = -EIO;
			goto out;
		}
	}
	if (j->oversize.n && !j->fetch_failed && !*j->f->stopping) {
		char *set = uidset_format(&j->oversize), *hdr = NULL;
		if (!set || asprintf(&hdr, "UID FETCH %s (" HEADER_ITEMS ")", set) < 0) {
			free(set);
			rc = -ENOMEM;
			goto out;
		}
		free(set);
		log_warn("account=%s folder=\"%s\" count=%zu msg=\"messages over MAILPIPE_MAX_MESSAGE_BYTES: "
			 "storing their header only\"", j->account, j->folder, j->oversize.n);
		rc = job_command(j, hdr);
		free(hdr);
		if (rc == -EIO)
			goto out;
		if (rc == -EREMOTEIO) {
			j->fetch_failed = 1;
			snprintf(j->fetch_error, sizeof(j->fetch_error), "UID FETCH of headers failed: %s", j->wait_text);
		}
	}
	job_collect(j);
	rc = 0;
	if (!j->redis_failed && !j->fetch_failed && !*j->f->stopping) {
		rc = recover_missing(j, todo);
		if (rc == -EIO || rc == -ENOMEM)
			goto out;
		rc = 0;
	}
	if (j->redis_failed) {
		snprintf(j->error, sizeof(j->error), "redis write failed for account '%s' folder '%s'",
			 j->account, j->folder);
		rc = -EIO;
	} else if (j->fetch_failed) {
		snprintf(j->error, sizeof(j->error), "account '%s' folder '%s': %s", j->account,
			 j->folder, j->fetch_error);
		rc = -EREMOTEIO;
	} else if (*j->f->stopping) {
		rc = -EINTR;
	}
out:
	/* XADDs of messages that arrived before a failure are still unanswered in the context:
	 * read their replies now (the messages are safe in Redis and need no second fetch), or
	 * the next command on the context would take one of them for its own reply. */
	job_collect(j);
	return rc;
}

/* EXAMINE (read-only, so nothing is marked \Seen), with CONDSTORE where the job uses it. With
 * QRESYNC and a folder stored before, the same EXAMINE hands over every flag change and
 * expunge since the stored modseq (RFC 7162 3.2.5): the mirror then needs no command of its
 * own. */
static int examine(struct job *j, const char *quoted)
{
	char cmd[1200];
	struct mirror_state *m = &j->mirror;
	int resync = j->qresync && j->exp_uidvalidity && j->last_uid && m->stored_modseq;
	if (resync) {
		/* Its answer is not waited for: servers answer in order, EXAMINE's comes after. */
		session_send(j->s, "ENABLE QRESYNC");
		snprintf(cmd, sizeof(cmd), "EXAMINE %s (QRESYNC (%llu %llu 1:%llu))", quoted,
			 (unsigned long long)j->exp_uidvalidity, (unsigned long long)m->stored_modseq,
			 (unsigned long long)j->last_uid);
	} else {
		snprintf(cmd, sizeof(cmd), "EXAMINE %s%s", quoted, j->condstore ? " (CONDSTORE)" : "");
	}
	m->collecting = resync;
	int rc = job_command(j, cmd);
	m->collecting = 0;
	/* Only an answer for the UIDVALIDITY we asked about counts (else the server says
	 * nothing of the old UIDs, and they all go with the reset). */
	m->qresync = resync && rc == 0 && j->uidvalidity == j->exp_uidvalidity;
	if (rc == -EREMOTEIO)
		snprintf(j->error, sizeof(j->error), "EXAMINE refused for account '%s' folder '%s': %s",
			 j->account, j->folder, j->wait_text);
	return rc;
}

/* A UID SEARCH whose answers go into j->search. */
static int search(struct job *j, const char *cmd)
{
	int rc = job_command(j, cmd);
	if (rc == -EREMOTEIO)
		snprintf(j->error, sizeof(j->error), "SEARCH refused for account '%s' folder '%s': %s",
			 j->account, j->folder, j->wait_text);
	return rc;
}

static int recheck_status(struct job *j, const char *caps);

static int do_sync(struct job *j)
{
	char cmd[1200], quoted[1100];
	int rc;

	if (session_quote(quoted, sizeof(quoted), j->wire_name) < 0) {
		snprintf(j->error, sizeof(j->error), "folder name of '%s' cannot be quoted", j->folder);
		return -EREMOTEIO;
	}
	j->uidvalidity = j->uidnext = j->exists = j->highest_modseq = 0;
	json_t *acc = json_object_get(j->json, "account");
	const char *caps = session_capabilities(j->s);
	const struct quirks *q = quirks_for(jstr(acc, "provider"));
	j->condstore = quirks_use_condstore(q, caps, json_is_true(json_object_get(acc, "no_condstore")));
	j->qresync = quirks_use_qresync(q, caps, j->condstore,
					json_is_true(json_object_get(acc, "no_qresync")));
	struct mirror_state *m = &j->mirror;
	if (m->updates)
		json_array_clear(m->updates);
	m->present.n = 0;
	m->gone.n = 0;
	m->qresync = 0;
	m->full_scan = m->flag_scanned = 0;
	m->vanished = m->flag_updates = 0;
	objectid_begin(j);
	j->mailbox_id[0] = 0;
	/* One STATUS tells whether anything changed: a folder that did not costs no SELECT. */
	if ((rc = mirror_status(j)) < 0)
		return rc;
	if (mirror_unchanged(j)) {
		j->uidvalidity = m->uidvalidity;
		j->uidnext = m->uidnext;
		j->exists = m->messages;
		j->highest_modseq = m->modseq ? m->modseq : m->stored_modseq;
		return 0;
	}
	if ((rc = examine(j, quoted)) < 0)
		return rc;
	/* A kept connection's view of a folder can lag behind the server: after a UIDVALIDITY
	 * reset Dovecot answered STATUS with the new UIDVALIDITY and EXAMINE, on the same
	 * long-lived connection, with the old one, and the folder's old UIDs would have stood.
	 * Which one is true, a fresh login tells; on a fresh connection EXAMINE is believed. */
	if (m->have_status && m->uidvalidity != j->uidvalidity && j->conn_reused) {
		log_info("account=%s folder=\"%s\" msg=\"STATUS said UIDVALIDITY %llu, EXAMINE %llu on a "
			 "kept connection; logging in again\"", j->account, j->folder,
			 (unsigned long long)m->uidvalidity, (unsigned long long)j->uidvalidity);
		j->view_stale = 1;
		session_discard(j->s, "STATUS and EXAMINE disagreed on UIDVALIDITY");
		return -EIO;
	}
	if (j->exp_uidvalidity && j->uidvalidity != j->exp_uidvalidity) {
		/* Invariant 4: old UIDs mean nothing now; the writer drops the old locations when
		 * it applies this job's cursor, which carries the new uidvalidity. */
		log_warn("account=%s folder=\"%s\" msg=\"UIDVALIDITY changed %llu -> %llu, resyncing\"",
			 j->account, j->folder, (unsigned long long)j->exp_uidvalidity,
			 (unsigned long long)j->uidvalidity);
		j->last_uid = 0;
		j->fetched.n = 0;
		j->stored.n = 0;
		j->linked.n = 0;
	}
	j->missing.n = 0;
	j->search.n = 0;
	if (j->exists > 0) {
		if (j->last_uid == 0 && *j->window_start)
			snprintf(cmd, sizeof(cmd), "UID SEARCH SINCE %s", j->window_start);
		else
			snprintf(cmd, sizeof(cmd), "UID SEARCH UID %llu:*",
				 (unsigned long long)j->last_uid + 1);
		if ((rc = search(j, cmd)) < 0)
			return rc;
	}
	uidset_normalize(&j->search);
	uidset_normalize(&j->fetched);
	j->window_used = j->last_uid == 0 && *j->window_start;
	if (j->window_used)
		j->window_low = j->search.n ? j->search.v[0] : (j->uidnext ? j->uidnext : 1);
	if ((rc = mirror_old_uids(j)) < 0)
		return rc;

	/* The UIDs still to fetch: above the cursor ("n:*" always returns the last message) and
	 * not fetched by an earlier attempt of this job. */
	struct uidset todo;
	uidset_init(&todo);
	for (size_t i = 0; i < j->search.n; i++)
		if (j->search.v[i] > j->last_uid && !uidset_contains(&j->fetched, j->search.v[i]) &&
		    !uidset_contains(&j->stored, j->search.v[i]))
			uidset_add(&todo, j->search.v[i]);

	/* Moved, copied or renumbered messages already stored are linked, not downloaded. */
	rc = objectid_link(j, &todo);
	if (rc == 0)
		rc = fetch_todo(j, &todo, j->last_uid == 0);
	uidset_release(&todo);
	if (rc == 0)
		rc = recheck_status(j, caps);
	return rc;
}

/* The folder's counts come from STATUS, asked before EXAMINE. When EXAMINE then saw another
 * folder (mail came in between, or the server answered STATUS from a view it had not yet
 * brought up to date: Dovecot, on a long-lived connection, right after a UIDVALIDITY change
 * says MESSAGES 0), the counts are asked again, with the folder no longer selected; if they
 * still contradict EXAMINE, the writer counts our own rows instead. */
static int recheck_status(struct job *j, const char *caps)
{
	struct mirror_state *m = &j->mirror;
	if (!m->have_status || (m->uidvalidity == j->uidvalidity && m->uidnext == j->uidnext &&
				m->messages == j->exists))
		return 0;
	log_info("account=%s folder=\"%s\" msg=\"STATUS (uidvalidity %llu, %llu messages) disagreed "
		 "with EXAMINE (%llu, %llu); asking again\"", j->account, j->folder,
		 (unsigned long long)m->uidvalidity, (unsigned long long)m->messages,
		 (unsigned long long)j->uidvalidity, (unsigned long long)j->exists);
	session_send(j->s, quirks_cap(caps, "UNSELECT") ? "UNSELECT" : "CLOSE");
	int rc = mirror_status(j);
	if (rc == 0 && m->have_status && m->uidvalidity != j->uidvalidity)
		m->have_status = 0;
	return rc;
}

/* A backfill job: the newest `chunk` UIDs below `below` in a folder whose first sync was
 * limited to a window, fetched newest first. Its record tells the writer where the next chunk
 * starts once these are committed. */
static int do_backfill(struct job *j)
{
	char cmd[1200], quoted[1100];
	uint64_t below = (uint64_t)jint(j->json, "below");
	size_t chunk = (size_t)jint(j->json, "chunk");
	int rc;
	if (session_quote(quoted, sizeof(quoted), j->wire_name) < 0) {
		snprintf(j->error, sizeof(j->error), "folder name of '%s' cannot be quoted", j->folder);
		return -EREMOTEIO;
	}
	j->condstore = 0;
	objectid_begin(j);
	if ((rc = examine(j, quoted)) < 0)
		return rc;
	if (j->uidvalidity != j->exp_uidvalidity) {
		/* The folder's own sync resets it and sets a new backfill point. */
		j->backfill_stale = 1;
		return 0;
	}
	j->search.n = 0;
	if (below > 1) {
		snprintf(cmd, sizeof(cmd), "UID SEARCH UID 1:%llu", (unsigned long long)below - 1);
		if ((rc = search(j, cmd)) < 0)
			return rc;
	}
	uidset_normalize(&j->search);
	uidset_normalize(&j->fetched);
	size_t first = j->search.n > chunk ? j->search.n - chunk : 0;
	j->backfill_next = first ? j->search.v[first] : 0;
	struct uidset todo;
	uidset_init(&todo);
	for (size_t i = first; i < j->search.n; i++)
		if (j->search.v[i] < below && !uidset_contains(&j->fetched, j->search.v[i]))
			uidset_add(&todo, j->search.v[i]);
	rc = fetch_todo(j, &todo, 1);
	uidset_release(&todo);
	/* A UID the server would not deliver stays below the backfill point: asked again. */
	if (rc == 0 && j->missing.n)
		j->backfill_next = j->missing.v[j->missing.n - 1] + 1;
	return rc;
}

/* What this sync saw of its folder, for the account's IDLE watch when the job ran on its
 * connection: the watch asks for another sync only if the folder changed since. */
static void job_look(struct job *j, struct idle_seen *seen)
{
	if (strcmp(seen->wire, j->wire_name) != 0)
		return;
	if (j->uidnext) { /* EXAMINE */
		seen->uidvalidity = j->uidvalidity;
		seen->uidnext = j->uidnext;
		seen->exists = j->exists;
		seen->modseq = j->highest_modseq;
	} else if (j->mirror.have_status) { /* STATUS showed nothing to do */
		seen->uidvalidity = j->mirror.uidvalidity;
		seen->uidnext = j->mirror.uidnext;
		seen->exists = j->mirror.messages;
		seen->modseq = j->mirror.modseq;
	}
}

enum fetch_result fetch_run_job(struct fetcher *f, json_t *json)
{
	struct job j = { .f = f, .json = json };
	json_t *acc = json_object_get(json, "account");
	enum fetch_result result = FETCH_RETRY;
	char *secret = NULL;
	int locked = 0, rc = -EIO, auth_failed = 0;

	j.type = jstr(json, "type");
	j.account = jstr(acc, "name");
	j.run_id = jint(json, "run_id");
	j.account_id = jint(json, "account_id");
	j.folder_id = jint(json, "folder_id");
	j.folder = jstr(json, "folder");
	j.wire_name = jstr(json, "wire_name");
	j.window_start = jstr(json, "window_start");
	j.exp_uidvalidity = (uint64_t)jint(json, "uidvalidity");
	j.last_uid = (uint64_t)jint(json, "last_uid");
	uidset_init(&j.search);
	uidset_init(&j.fetched);
	uidset_init(&j.appended);
	uidset_init(&j.oversize);
	uidset_init(&j.stored);
	uidset_init(&j.missing);
	uidset_init(&j.linked);
	mirror_init(&j);
	/* Messages above the cursor that are stored already (a folder whose cursor waits below a
	 * missing UID, or a run cut short) are not downloaded again. */
	if (uidset_parse(&j.stored, jstr(json, "stored")) < 0)
		j.stored.n = 0;
	int is_backfill = strcmp(j.type, "backfill_folder") == 0;
	int is_sync = strcmp(j.type, "sync_folder") == 0 || is_backfill;
	/* A backfill has a lock of its own: it never makes a poll or a push of the folder wait
	 * (the two touch different UIDs; see do_backfill). */
	snprintf(j.lock_key, sizeof(j.lock_key), "%s%s%lld", f->cfg->key_lock_prefix,
		 is_backfill ? "bf:" : "", j.folder_id);
	if (!is_sync && strcmp(j.type, "list_folders") != 0) {
		log_error("job=%s msg=\"unknown job type '%s', dropped\"", jstr(json, "job_id"), j.type);
		return FETCH_DONE;
	}
	if (is_sync) {
		if (job_lock_folder(&j) < 0)
			return FETCH_BUSY;
		locked = 1;
	}
	secret = fetch_resolve_secret(f->cfg, acc, j.error, sizeof(j.error));
	if (!secret) {
		char why[sizeof(j.error)];
		memcpy(why, j.error, sizeof(why));
		snprintf(j.error, sizeof(j.error), "account '%s': %.400s", j.account, why);
		auth_failed = 1;
		goto report;
	}
	struct session_opts o = {
		.account = j.account,
		.folder = j.folder,
		.host = jstr(acc, "host"),
		.port = (long)jint(acc, "port"),
		.tls = jstr(acc, "tls"),
		.username = jstr(acc, "username"),
		.auth = jstr(acc, "auth"),
		.secret = secret,
		.ca_file = json_string_value(json_object_get(acc, "ca_file")),
		.tls_verify = json_is_false(json_object_get(acc, "tls_verify")) ? 0 : 1,
		.timeout_s = f->cfg->fetch_timeout_s,
		.max_literal = (size_t)f->cfg->max_literal,
		.on_wait = on_session_wait,
		.stopping = f->stopping,
		.wait_data = &j,
	};
	/* A broken connection, and a refusal whose code says the server is busy ([THROTTLED],
	 * [UNAVAILABLE], [LIMIT], ...), are retried inside the job with jittered backoff that
	 * honours the server's own hint; what was fetched before is kept, so a retry continues
	 * rather than restarts. A hint longer than we wait inline ends the job and pushes the
	 * account's next sync past it. */
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)j.folder_id;
	struct conn_use cu = { .account_id = j.account_id, .wire = j.wire_name, .host = o.host };
	cu.limit = budget_account_limit(jstr(acc, "provider"), jint(acc, "max_connections"));
	conn_key(cu.key, sizeof(cu.key), o.host, o.port, o.username, o.auth);
	int stale_retried = 0, view_retried = 0;
	for (long attempt = 0; attempt <= f->cfg->fetch_retries && !*f->stopping; attempt++) {
		if (attempt) {
			metrics_add(MX_IMAP_RECONNECTS_JOB, 1);
			metrics_add(MX_IMAP_THROTTLED, j.wait_transient != 0);
			int64_t hint = retry_hint_ms(j.error);
			if (hint > f->cfg->retry_max_ms) {
				j.retry_after_ms = hint;
				break;
			}
			int64_t delay = retry_delay_ms((unsigned)attempt, f->cfg->retry_base_ms,
						       f->cfg->retry_max_ms, hint, (uint32_t)rand_r(&seed));
			log_warn("account=%s folder=\"%s\" attempt=%ld delay_ms=%lld msg=\"%s; retrying\"",
				 j.account, j.folder, attempt, (long long)delay, j.error);
			for (long long t = stage_now_ms() + delay; stage_now_ms() < t && !*f->stopping;) {
				usleep(50 * 1000);
				job_refresh_claims(&j, 0);
			}
			if (*f->stopping)
				break;
		}
		/* Redis went away mid-job (a restart): reconnect before trying again, or every
		 * attempt would fail on the dead connection. XADDs whose replies were lost are not
		 * counted as fetched: those messages come again, and the writer keeps one copy. */
		if ((j.redis_failed || f->rc->err) && f->reconnect) {
			if (f->reconnect(f) < 0)
				break;
			j.redis_failed = 0;
			j.appended.n = 0;
			j.unchecked_bytes = j.unchecked_entries = 0;
			if (is_sync && job_lock_folder(&j) < 0) {
				rc = -EBUSY;
				break;
			}
			job_refresh_claims(&j, 1);
		}
		j.error[0] = 0;
		j.wait_transient = 0;
		j.s = f->conns ? conns_open(f->conns, &cu, &o, !is_backfill, j.error, sizeof(j.error),
					    &auth_failed)
			       : session_open(&o, j.error, sizeof(j.error), &auth_failed);
		if (!j.s) {
			if (auth_failed) {
				fetch_forget_secret(acc);
				break;
			}
			if (cu.over_budget) /* other jobs or watches have the account's connections */
				break;
			rc = -EIO;
			continue;
		}
		struct session_handler h = { &j, on_untagged, on_tagged };
		session_set_handler(j.s, &h);
		j.conn_reused = f->conns && cu.reused;
		j.view_stale = 0;
		rc = is_backfill ? do_backfill(&j) : is_sync ? do_sync(&j) : do_list(&j);
		if (rc == -EIO && !j.error[0])
			snprintf(j.error, sizeof(j.error), "%s", session_error(j.s));
		if (rc == 0 && is_sync)
			job_look(&j, &cu.seen);
		/* A kept connection the server dropped meanwhile (its autologout, a restart)
		 * fails before it answers anything: log in again at once; that is not the server
		 * failing this job. */
		int stale = rc == -EIO && cu.reused && session_responses(j.s) == 0;
		if (f->conns)
			conns_release(f->conns, &cu, j.s);
		else
			session_close(j.s);
		j.s = NULL;
		if (stale && !stale_retried) {
			stale_retried = 1;
			metrics_add(MX_IMAP_RECONNECTS_KEPT, 1);
			log_info("account=%s msg=\"kept connection gone (%s); logging in again\"", j.account,
				 j.error);
			attempt--;
			continue;
		}
		if (j.view_stale && !view_retried) { /* not the server failing this job either */
			view_retried = 1;
			metrics_add(MX_IMAP_RECONNECTS_KEPT, 1);
			attempt--;
			continue;
		}
		if (rc != -EIO && !(rc == -EREMOTEIO && j.wait_transient))
			break;
	}
	/* Still refused after every attempt: the server's hint, if any, decides the next try. */
	if (rc < 0 && !auth_failed && !j.retry_after_ms) {
		int64_t hint = retry_hint_ms(j.error);
		if (hint > 0)
			j.retry_after_ms = hint;
	}
	if (cu.over_budget) { /* queued again behind the others, like a busy folder */
		result = FETCH_BUSY;
		goto out;
	}
	if (rc == -EBUSY) { /* after a Redis restart another fetcher took the folder over */
		result = FETCH_BUSY;
		locked = 0;
		goto out;
	}
	if (rc == -EINTR || (*f->stopping && rc < 0 && !auth_failed)) {
		result = FETCH_RETRY; /* shutting down: the job stays pending for a restart */
		goto out;
	}
report:
	if (rc == 0)
		j.error[0] = 0;
	else
		log_error("account=%s folder=\"%s\" msg=\"%s\"", j.account, j.folder, j.error);
	rc = is_backfill ? emit_backfill(&j, j.error[0] ? j.error : NULL)
	     : is_sync	 ? emit_cursor(&j, j.error[0] ? j.error : NULL)
			 : emit_folders(&j, j.error[0] ? j.error : NULL);
	result = rc < 0 ? FETCH_RETRY : FETCH_DONE;
	if (is_sync && !j.error[0])
		log_info("account=%s folder=\"%s\" fetched=%zu linked=%zu uidvalidity=%llu msg=\"folder "
			 "fetched\"", j.account, j.folder, j.fetched.n, j.linked.n,
			 (unsigned long long)j.uidvalidity);
out:
	if (locked)
		job_unlock_folder(&j);
	if (secret) {
		memset(secret, 0, strlen(secret));
		free(secret);
	}
	json_decref(j.folders);
	uidset_release(&j.search);
	uidset_release(&j.fetched);
	uidset_release(&j.appended);
	uidset_release(&j.oversize);
	uidset_release(&j.stored);
	uidset_release(&j.missing);
	mirror_release(&j);
	objectid_release(&j);
	return result;
}

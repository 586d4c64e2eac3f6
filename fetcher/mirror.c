/* The mirror of a folder's messages already stored: the server's counts (STATUS), flag changes
 * (CONDSTORE's CHANGEDSINCE, else a scan of every old UID's flags when counts disagree or the
 * account's scan interval has passed) and expunges (a UID SEARCH of the old range when the
 * counts say some went, or the scan's UIDs). Emits `flags` and `vanished` records that the
 * writer applies (writer/mirror.c). Owns no connection and no new messages (fetch.c). */
#include "job.h"
#include "log.h"
#include "quirks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Flag updates travel in records of at most this many UIDs, so a scan of a 100,000-message
 * folder never builds one huge stream entry. */
#define MIRROR_CHUNK 5000

static uint64_t ju64(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

void mirror_init(struct job *j)
{
	struct mirror_state *m = &j->mirror;
	memset(m, 0, sizeof(*m));
	m->stored_messages = ju64(j->json, "message_count");
	m->stored_unseen = ju64(j->json, "unread_count");
	m->stored_uidnext = ju64(j->json, "uidnext");
	m->stored_modseq = ju64(j->json, "highest_modseq");
	m->stored_count = ju64(j->json, "stored_count");
	m->flags_due = json_is_true(json_object_get(j->json, "flags_due"));
	uidset_init(&m->present);
	uidset_init(&m->gone);
}

void mirror_release(struct job *j)
{
	json_decref(j->mirror.updates);
	j->mirror.updates = NULL;
	uidset_release(&j->mirror.present);
	uidset_release(&j->mirror.gone);
}

void mirror_on_vanished(struct job *j, const struct imap_response *r)
{
	/* "* VANISHED (EARLIER) 41,43:116": the set is the last argument. Only old UIDs
	 * matter here; a new one that went mid-job is found by the next sync's answer. */
	if (!r->nargs || r->args[r->nargs - 1].type != IMAP_V_ATOM)
		return;
	const struct imap_value *v = &r->args[r->nargs - 1];
	char *set = strndup(v->s, v->len);
	struct uidset s;
	uidset_init(&s);
	if (set && uidset_parse(&s, set) == 0)
		for (size_t i = 0; i < s.n; i++)
			if (s.v[i] <= j->last_uid)
				uidset_add(&j->mirror.gone, s.v[i]);
	uidset_release(&s);
	free(set);
}


static int has_status(const struct imap_value *list, const char *key, uint64_t *out)
{
	const struct imap_value *v = imap_list_get(list, key);
	return v && imap_value_u64(v, out) == 0;
}

/* A list job's STATUS answers go with their folder in the `folders` record: the writer then
 * queues jobs only for folders that changed. */
static void list_status(struct job *j, const struct imap_response *r)
{
	const struct imap_value *name = &r->args[0], *l = &r->args[1];
	if (!name->s)
		return;
	size_t i;
	json_t *fo;
	json_array_foreach(j->folders, i, fo) {
		const char *wire = json_string_value(json_object_get(fo, "wire_name"));
		if (!wire || strlen(wire) != name->len || memcmp(wire, name->s, name->len))
			continue;
		json_t *st = json_object();
		static const char *const keys[] = { "MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY",
						    "HIGHESTMODSEQ" };
		static const char *const names[] = { "messages", "unseen", "uidnext", "uidvalidity",
						     "highestmodseq" };
		for (size_t k = 0; k < 5; k++) {
			uint64_t v;
			if (has_status(l, keys[k], &v))
				json_object_set_new(st, names[k], json_integer((json_int_t)v));
		}
		json_object_set_new(fo, "status", st);
		return;
	}
}

void mirror_on_status(struct job *j, const struct imap_response *r)
{
	struct mirror_state *m = &j->mirror;
	if (r->nargs < 2 || r->args[1].type != IMAP_V_LIST)
		return;
	if (j->folders) {
		list_status(j, r);
		return;
	}
	const struct imap_value *l = &r->args[1];
	int ok = has_status(l, "MESSAGES", &m->messages) && has_status(l, "UNSEEN", &m->unseen) &&
		 has_status(l, "UIDNEXT", &m->uidnext) && has_status(l, "UIDVALIDITY", &m->uidvalidity);
	if (!has_status(l, "HIGHESTMODSEQ", &m->modseq))
		m->modseq = 0;
	m->have_status = ok;
}

int mirror_status(struct job *j)
{
	char quoted[1100], cmd[1300];
	if (session_quote(quoted, sizeof(quoted), j->wire_name) < 0)
		return 0;
	snprintf(cmd, sizeof(cmd), "STATUS %s (MESSAGES UNSEEN UIDNEXT UIDVALIDITY%s)", quoted,
		 j->condstore ? " HIGHESTMODSEQ" : "");
	j->mirror.have_status = 0;
	int rc = job_command(j, cmd);
	if (rc == -EREMOTEIO) { /* some servers refuse STATUS now and then: sync without it */
		j->mirror.have_status = 0;
		return 0;
	}
	return rc;
}

int mirror_unchanged(const struct job *j)
{
	const struct mirror_state *m = &j->mirror;
	if (!m->have_status || !j->exp_uidvalidity || j->stored.n)
		return 0;
	if (m->uidvalidity != j->exp_uidvalidity || m->uidnext != m->stored_uidnext ||
	    j->last_uid + 1 < m->uidnext || m->messages != m->stored_messages ||
	    m->unseen != m->stored_unseen)
		return 0;
	/* Flags may change without any count changing: CONDSTORE's modseq says so; without it
	 * only the periodic scan can tell. */
	if (j->condstore)
		return m->modseq && m->modseq == m->stored_modseq;
	return !m->flags_due;
}

static int emit_updates(struct job *j)
{
	struct mirror_state *m = &j->mirror;
	if (!m->updates || !json_array_size(m->updates))
		return 0;
	json_t *rec = job_record(j);
	json_object_set_new(rec, "folder_id", json_integer(j->folder_id));
	json_object_set_new(rec, "uidvalidity", json_integer((json_int_t)j->uidvalidity));
	json_object_set(rec, "updates", m->updates);
	int rc = job_emit(j, "flags", rec);
	json_decref(rec);
	m->flag_updates += json_array_size(m->updates);
	json_array_clear(m->updates);
	return rc < 0 ? -EIO : 0;
}

void mirror_on_fetch(struct job *j, uint32_t uid, const struct imap_value *fetch)
{
	struct mirror_state *m = &j->mirror;
	const struct imap_value *flags = imap_list_get(fetch, "FLAGS");
	const struct imap_value *modseq = imap_list_get(fetch, "MODSEQ");
	uint64_t ms = 0;
	if (!m->collecting || !flags || flags->type != IMAP_V_LIST || uid > j->last_uid)
		return;
	if (!m->updates)
		m->updates = json_array();
	json_t *fl = json_array();
	for (size_t i = 0; i < flags->n; i++)
		if (flags->items[i].s && !imap_value_is(&flags->items[i], "\\Recent"))
			json_array_append_new(fl, json_stringn(flags->items[i].s, flags->items[i].len));
	json_t *u = json_array();
	json_array_append_new(u, json_integer(uid));
	json_array_append_new(u, fl);
	if (modseq && modseq->type == IMAP_V_LIST && modseq->n == 1 &&
	    imap_value_u64(&modseq->items[0], &ms) == 0)
		json_array_append_new(u, json_integer((json_int_t)ms));
	else
		json_array_append_new(u, json_null());
	json_array_append_new(m->updates, u);
	if (m->full_scan)
		uidset_add(&m->present, uid);
	if (json_array_size(m->updates) >= MIRROR_CHUNK && emit_updates(j) < 0)
		j->redis_failed = 1;
}

/* A `vanished` record: the old UIDs the server still has (key "present", from a scan or a
 * SEARCH), or those QRESYNC reported gone ("removed"). */
static int emit_vanished(struct job *j, const char *key, struct uidset *set)
{
	uidset_normalize(set);
	char *uids = uidset_format(set);
	if (!uids)
		return -ENOMEM;
	json_t *rec = job_record(j);
	json_object_set_new(rec, "folder_id", json_integer(j->folder_id));
	json_object_set_new(rec, "uidvalidity", json_integer((json_int_t)j->uidvalidity));
	json_object_set_new(rec, "upto", json_integer((json_int_t)j->last_uid));
	json_object_set_new(rec, key, json_string(uids));
	free(uids);
	int rc = job_emit(j, "vanished", rec);
	json_decref(rec);
	return rc < 0 ? -EIO : 0;
}

int mirror_old_uids(struct job *j)
{
	struct mirror_state *m = &j->mirror;
	char cmd[160];
	int rc = 0;
	if (!j->last_uid || j->uidvalidity != j->exp_uidvalidity)
		return 0; /* a first sync, or a UIDVALIDITY reset: nothing old to mirror */
	size_t above = 0;
	for (size_t i = 0; i < j->search.n; i++)
		above += j->search.v[i] > j->last_uid;
	uint64_t old_on_server = j->exists > above ? j->exists - above : 0;
	int counts_differ = old_on_server != m->stored_count ||
			    (m->have_status && m->unseen != m->stored_unseen);

	if (m->qresync) {
		/* EXAMINE's answer had it all: FETCH for each change, VANISHED for expunges. */
		if ((rc = emit_updates(j)) < 0)
			return rc;
		if (m->gone.n) {
			if ((rc = emit_vanished(j, "removed", &m->gone)) < 0)
				return rc;
			m->vanished = 1;
		}
		if (m->flag_updates || m->vanished)
			log_info("account=%s folder=\"%s\" flag_updates=%zu vanished=%zu msg=\"mirrored old "
				 "messages (QRESYNC)\"", j->account, j->folder, m->flag_updates, m->gone.n);
		return 0;
	}
	m->collecting = 1;
	if (j->condstore && m->stored_modseq) {
		if (j->highest_modseq != m->stored_modseq) {
			snprintf(cmd, sizeof(cmd), "UID FETCH 1:%llu (UID FLAGS) (CHANGEDSINCE %llu)",
				 (unsigned long long)j->last_uid, (unsigned long long)m->stored_modseq);
			rc = job_command(j, cmd);
		}
	} else if (m->flags_due || counts_differ) {
		m->full_scan = 1;
		snprintf(cmd, sizeof(cmd), "UID FETCH 1:%llu (UID FLAGS)", (unsigned long long)j->last_uid);
		rc = job_command(j, cmd);
		m->flag_scanned = rc == 0;
	}
	m->collecting = 0;
	if (rc < 0)
		goto refused;
	if (!m->full_scan && old_on_server != m->stored_count) {
		/* Some old message went (or one stored is not yet seen): which are left? */
		snprintf(cmd, sizeof(cmd), "UID SEARCH UID 1:%llu", (unsigned long long)j->last_uid);
		j->search_out = &m->present;
		rc = job_command(j, cmd);
		j->search_out = NULL;
		if (rc < 0)
			goto refused;
	}
	if ((rc = emit_updates(j)) < 0)
		return rc;
	if (m->full_scan || old_on_server != m->stored_count) {
		if ((rc = emit_vanished(j, "present", &m->present)) < 0)
			return rc;
		m->vanished = 1;
	}
	if (m->flag_updates || m->vanished)
		log_info("account=%s folder=\"%s\" flag_updates=%zu present=%zu msg=\"mirrored old messages\"",
			 j->account, j->folder, m->flag_updates, m->present.n);
	return 0;
refused:
	if (rc == -EREMOTEIO)
		snprintf(j->error, sizeof(j->error), "flag and expunge check refused for account '%s' "
			 "folder '%s': %s", j->account, j->folder, j->wait_text);
	return rc;
}

void mirror_cursor_fields(struct job *j, json_t *rec)
{
	const struct mirror_state *m = &j->mirror;
	json_object_set_new(rec, "server_messages",
			    json_integer((json_int_t)(m->have_status ? m->messages : j->exists)));
	json_object_set_new(rec, "server_unseen",
			    m->have_status ? json_integer((json_int_t)m->unseen) : json_null());
	json_object_set_new(rec, "flag_scanned", json_boolean(m->flag_scanned));
}

int mirror_list(struct job *j)
{
	const char *caps = session_capabilities(j->s);
	json_t *acc = json_object_get(j->json, "account");
	const char *prov = json_string_value(json_object_get(acc, "provider"));
	j->condstore = quirks_use_condstore(quirks_for(prov), caps,
					    json_is_true(json_object_get(acc, "no_condstore")));
	const char *items = j->condstore ? "MESSAGES UNSEEN UIDNEXT UIDVALIDITY HIGHESTMODSEQ"
					 : "MESSAGES UNSEEN UIDNEXT UIDVALIDITY";
	char cmd[200];
	int rc;
	/* Every folder's STATUS with the list: in one command where LIST-STATUS (RFC 5819) is
	 * offered, else one STATUS per folder, all sent at once and closed by a NOOP. */
	int list_status_cmd = quirks_cap(caps, "LIST-STATUS");
	if (list_status_cmd) {
		snprintf(cmd, sizeof(cmd), "LIST \"\" \"*\" RETURN (STATUS (%s))", items);
		rc = job_command(j, cmd);
	} else {
		rc = job_command(j, "LIST \"\" \"*\"");
	}
	if (rc == -EREMOTEIO)
		snprintf(j->error, sizeof(j->error), "LIST refused for account '%s': %s", j->account,
			 j->wait_text);
	if (rc < 0 || list_status_cmd)
		return rc;
	size_t i;
	json_t *fo;
	json_array_foreach(j->folders, i, fo) {
		char quoted[1100], line[1300];
		const char *wire = json_string_value(json_object_get(fo, "wire_name"));
		if (!json_is_true(json_object_get(fo, "selectable")) || !wire ||
		    session_quote(quoted, sizeof(quoted), wire) < 0)
			continue;
		snprintf(line, sizeof(line), "STATUS %s (%s)", quoted, items);
		session_send(j->s, line);
	}
	/* A folder whose STATUS is refused simply has none: it gets a job. */
	return job_command(j, "NOOP");
}

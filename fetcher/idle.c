/* IDLE watches: see idle.h. One thread, one libuv loop, any number of connections; each
 * connection is a small state machine (enum watch_state, set_state logs every transition).
 * curl does the connection, TLS and login (blocking, bounded by MAILPIPE_FETCH_TIMEOUT_S);
 * after that the socket is watched with uv_poll and spoken to with curl_easy_send/recv. */
#include "idle.h"
#include "budget.h"
#include "conn.h"
#include "fetch.h"
#include "imap_parser.h"
#include "log.h"
#include "metrics.h"
#include "quirks.h"
#include "retry.h"
#include "rstream.h"
#include "session.h"
#include "stage.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* Leases outlive a few missed renewals; a dead fetcher's accounts pass on after this. */
#define IDLE_LEASE_MS 15000
#define IDLE_REFRESH_MS 2000
/* Events arriving together (EXISTS, then RECENT, then FETCH) make one request. */
#define IDLE_DEBOUNCE_MS 20
/* Logins block this thread (up to MAILPIPE_FETCH_TIMEOUT_S each): a bounded number per
 * refresh keeps the leases of the watches already open renewed in time. */
#define IDLE_OPENS_PER_REFRESH 32

enum watch_state {
	W_SELECT,	/* EXAMINE sent */
	W_IDLE_START,	/* IDLE sent, waiting for "+" */
	W_IDLING,	/* the server may speak at any time */
	W_DONE,		/* DONE sent, waiting for IDLE's completion */
	W_NOOP,		/* NOOP sent: the connection proves it is alive before the next IDLE */
	W_LENDING,	/* DONE sent: the connection goes to a job of this process once IDLE ends */
	W_LENT,		/* a job has the connection; it comes back through idle_give */
	W_FAILED,
};

static const char *const watch_state_names[] = {
	"select", "idle_start", "idling", "done", "noop", "lending", "lent", "failed",
};

/* A call of the job thread (idle_borrow, idle_give), carried out on the watch thread. */
struct handoff {
	enum { H_BORROW, H_GIVE } kind;
	long long account_id;
	CURL *curl;		/* borrow: out; give: in (NULL = the lent connection died) */
	char caps[4096];
	struct idle_seen seen;	/* borrow: out (the watch's own look); give: in */
	int taken;		/* give: the watch took the connection */
	int done;
	struct handoff *next;	/* queued behind another lane's */
};

struct watch {
	struct idler *id;
	struct watch *next;
	long long account_id, folder_id;	/* one watch per folder watched */
	char account[128], wire[512], folder[512];
	CURL *curl;
	uv_poll_t poll;
	uv_timer_t timer;	/* an answer's deadline, or the next renewal while idling */
	uv_timer_t debounce;
	int open_handles;
	struct imap_parser *parser;
	enum watch_state state;
	unsigned next_tag, wait_tag;
	char caps[4096];
	unsigned seen;		/* the refresh generation that last listed this account */
	struct idle_seen look;	/* the folder as the last EXAMINE (or the last job) saw it */
	struct idle_seen before; /* ... as known before the EXAMINE now running (0s = unknown) */
	struct handoff *handoff; /* a job waits for this watch's connection */
};

struct backoff {
	long long folder_id;
	long long until_ms;
	unsigned fails;
};

struct idler {
	const struct mp_config *cfg;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t stop;
	uv_timer_t refresh;
	redisContext *rc;
	struct watch *watches;
	struct backoff *backoff;
	size_t nbackoff;
	unsigned generation;
	unsigned seed;
	json_t *targets;	/* the last list read, for connections offered by jobs */
	uv_async_t wake;	/* a handoff is waiting */
	uv_mutex_t mu;
	uv_cond_t cv;
	struct handoff *pending;
	int stopped;
	/* The watch thread is logging in (blocking, up to MAILPIPE_FETCH_TIMEOUT_S each): a job
	 * does not wait for it to lend a connection, it opens its own. */
	atomic_int opening;
	struct budget *budget;	/* connection leases (NULL: none) */
	idle_source_fn source;	/* parked connections of the job thread (under mu) */
	void *source_data;
};

static void set_state(struct watch *w, enum watch_state st)
{
	log_debug("account=%s msg=\"idle %s -> %s\"", w->account, watch_state_names[w->state],
		  watch_state_names[st]);
	w->state = st;
}

static struct backoff *backoff_of(struct idler *id, long long folder_id)
{
	for (size_t i = 0; i < id->nbackoff; i++)
		if (id->backoff[i].folder_id == folder_id)
			return &id->backoff[i];
	struct backoff *b = realloc(id->backoff, (id->nbackoff + 1) * sizeof(*b));
	if (!b)
		return NULL;
	id->backoff = b;
	b = &id->backoff[id->nbackoff++];
	memset(b, 0, sizeof(*b));
	b->folder_id = folder_id;
	return b;
}

/* A watch that failed is opened again later, jittered, longer each time it fails again. */
static void backoff_fail(struct idler *id, long long folder_id, int64_t at_least_ms)
{
	struct backoff *b = backoff_of(id, folder_id);
	if (!b)
		return;
	b->fails++;
	int64_t d = retry_delay_ms(b->fails, 1000, 300000, at_least_ms, (uint32_t)rand_r(&id->seed));
	b->until_ms = stage_now_ms() + d;
}

/* {mp}:idle:lease:<account>:<folder>: one fetcher watches a folder. */
static void lease_key(struct idler *id, long long account_id, long long folder_id, char *buf,
		      size_t size)
{
	snprintf(buf, size, "%s%lld:%lld", id->cfg->key_idle_lease_prefix, account_id, folder_id);
}

static void lease_release(struct idler *id, long long account_id, long long folder_id)
{
	char key[160];
	if (!id->rc || id->rc->err)
		return;
	lease_key(id, account_id, folder_id, key, sizeof(key));
	redisReply *r = redisCommand(id->rc, "EVAL %s 1 %s %s",
				     "if redis.call('get', KEYS[1]) == ARGV[1] then "
				     "return redis.call('del', KEYS[1]) else return 0 end",
				     key, id->cfg->consumer);
	freeReplyObject(r);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct watch *w = h->data;
	if (--w->open_handles > 0)
		return;
	if (w->curl) {
		budget_closed(w->id->budget, w->curl);
		curl_easy_cleanup(w->curl);
		metrics_add(MX_IMAP_CONNECTIONS_IDLE, -1);
	}
	imap_parser_free(w->parser);
	free(w);
}

static void handoff_done(struct idler *id, struct handoff *h)
{
	uv_mutex_lock(&id->mu);
	h->done = 1;
	uv_cond_broadcast(&id->cv);
	uv_mutex_unlock(&id->mu);
}

/* Unlinks and frees the watch (once its handles are closed). bye: say DONE and LOGOUT. */
static void watch_close(struct watch *w, int bye)
{
	struct idler *id = w->id;
	for (struct watch **p = &id->watches; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	if (w->handoff) { /* the job waiting for this connection opens its own */
		handoff_done(id, w->handoff);
		w->handoff = NULL;
	}
	if (bye && w->curl && w->state != W_FAILED && w->state != W_LENT) {
		size_t sent;
		const char *words = w->state == W_IDLING ? "DONE\r\nZ LOGOUT\r\n" : "Z LOGOUT\r\n";
		curl_easy_send(w->curl, words, strlen(words), &sent);
	}
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, on_handle_closed);
	uv_close((uv_handle_t *)&w->timer, on_handle_closed);
	uv_close((uv_handle_t *)&w->debounce, on_handle_closed);
}

static void watch_fail(struct watch *w, const char *why)
{
	log_warn("account=%s msg=\"IDLE watch ended: %s; reopening later\"", w->account, why);
	set_state(w, W_FAILED);
	metrics_add(MX_IMAP_RECONNECTS_IDLE, 1);
	lease_release(w->id, w->account_id, w->folder_id);
	backoff_fail(w->id, w->folder_id, retry_hint_ms(why));
	watch_close(w, 0);
}

static void on_deadline(uv_timer_t *t);

static int watch_send(struct watch *w, const char *cmd, enum watch_state next, int tagged)
{
	char line[700];
	int n = tagged ? snprintf(line, sizeof(line), "W%u %s\r\n", ++w->next_tag, cmd)
		       : snprintf(line, sizeof(line), "%s\r\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	if (tagged)
		w->wait_tag = w->next_tag;
	/* Commands are a few bytes on an otherwise quiet socket: the kernel takes them whole. */
	size_t off = 0;
	for (int spins = 0; off < (size_t)n && spins < 1000; spins++) {
		size_t sent = 0;
		CURLcode rc = curl_easy_send(w->curl, line + off, (size_t)n - off, &sent);
		if (rc != CURLE_OK && rc != CURLE_AGAIN)
			return -EIO;
		off += sent;
	}
	if (off < (size_t)n)
		return -EIO;
	set_state(w, next);
	uv_timer_start(&w->timer, on_deadline, (uint64_t)w->id->cfg->fetch_timeout_s * 1000, 0);
	return 0;
}

static void on_renew(uv_timer_t *t)
{
	struct watch *w = t->data;
	/* Servers end an IDLE after 30 minutes: end it ourselves before, and let a NOOP prove the
	 * connection is alive (a NAT may have dropped it silently). */
	if (watch_send(w, "DONE", W_DONE, 0) < 0)
		watch_fail(w, "send failed");
}

static void on_deadline(uv_timer_t *t)
{
	struct watch *w = t->data;
	char why[80];
	snprintf(why, sizeof(why), "no answer in %s for %lds", watch_state_names[w->state],
		 w->id->cfg->fetch_timeout_s);
	watch_fail(w, why);
}

/* Asks the scheduler for a sync of the watched folder. */
static void request_sync(struct watch *w, const char *reason)
{
	struct idler *id = w->id;
	char acc[24], rid[96];
	snprintf(acc, sizeof(acc), "%lld", w->account_id);
	snprintf(rid, sizeof(rid), "idle-%s-%lld", acc, stage_now_ms());
	json_t *names = json_pack("[s]", w->folder);
	char *folders = names ? json_dumps(names, JSON_COMPACT) : NULL;
	json_decref(names);
	redisReply *r = redisCommand(id->rc, "XADD %s MAXLEN ~ 10000 * account_id %s folders %s "
					     "request_id %s reason %s",
				     id->cfg->key_requests, acc, folders ? folders : "[\"INBOX\"]", rid, reason);
	free(folders);
	if (!r || r->type == REDIS_REPLY_ERROR)
		log_warn("account=%s msg=\"sync request not queued: %s\"", w->account,
			 r ? r->str : id->rc->errstr);
	else
		log_debug("account=%s reason=%s msg=\"sync requested\"", w->account, reason);
	freeReplyObject(r);
}

static void on_debounce(uv_timer_t *t)
{
	request_sync(t->data, "idle");
}

/* Whether the folder differs from what was known before this EXAMINE; unknown = changed. */
static int look_changed(const struct idle_seen *before, const struct idle_seen *now)
{
	if (!before->uidnext)
		return 1;
	return before->uidvalidity != now->uidvalidity || before->uidnext != now->uidnext ||
	       before->exists != now->exists ||
	       (before->modseq && now->modseq && before->modseq != now->modseq);
}

/* IDLE ended for a job of this process: the connection goes to it, the lease stays ours. */
static void lend(struct watch *w)
{
	struct handoff *h = w->handoff;
	w->handoff = NULL;
	uv_poll_stop(&w->poll);
	uv_timer_stop(&w->timer);
	set_state(w, W_LENT);
	if (!h)
		return;
	h->curl = w->curl;
	w->curl = NULL;
	metrics_add(MX_IMAP_CONNECTIONS_IDLE, -1);
	snprintf(h->caps, sizeof(h->caps), "%s", w->caps);
	h->seen = w->look;
	snprintf(h->seen.wire, sizeof(h->seen.wire), "%s", w->wire);
	handoff_done(w->id, h);
}

static void on_response(struct watch *w, const struct imap_response *r)
{
	if (r->kind == IMAP_RESP_CONTINUE) {
		if (w->state == W_IDLE_START && w->handoff) { /* a job waited for the IDLE */
			if (watch_send(w, "DONE", W_LENDING, 0) < 0)
				watch_fail(w, "send failed");
		} else if (w->state == W_IDLE_START) {
			set_state(w, W_IDLING);
			uv_timer_start(&w->timer, on_renew, (uint64_t)w->id->cfg->idle_renew_s * 1000, 0);
		}
		return;
	}
	if (r->kind == IMAP_RESP_UNTAGGED) {
		if (r->status == IMAP_ST_BYE) {
			char why[300];
			snprintf(why, sizeof(why), "server said BYE: %s%s%s%s", r->code ? "[" : "",
				 r->code ? r->code : "", r->code ? "] " : "", r->text ? r->text : "");
			watch_fail(w, why);
			return;
		}
		uint64_t v;
		if (w->state == W_SELECT) {
			if (r->status == IMAP_ST_OK && r->code) {
				if (imap_response_code_u64(r, "UIDVALIDITY", &v) == 0)
					w->look.uidvalidity = v;
				else if (imap_response_code_u64(r, "UIDNEXT", &v) == 0)
					w->look.uidnext = v;
				else if (imap_response_code_u64(r, "HIGHESTMODSEQ", &v) == 0)
					w->look.modseq = v;
			} else if (r->name && r->has_number && !strcasecmp(r->name, "EXISTS")) {
				w->look.exists = r->number;
			}
		}
		/* New mail, expunges and flag changes all mean the folder differs from the
		 * database; EXAMINE's own EXISTS does not. */
		if (w->state != W_SELECT && r->name &&
		    (!strcasecmp(r->name, "EXISTS") || !strcasecmp(r->name, "EXPUNGE") ||
		     !strcasecmp(r->name, "FETCH") || !strcasecmp(r->name, "VANISHED")))
			uv_timer_start(&w->debounce, on_debounce, IDLE_DEBOUNCE_MS, 0);
		return;
	}
	if (r->kind != IMAP_RESP_TAGGED || r->tag[0] != 'W' ||
	    strtoul(r->tag + 1, NULL, 10) != w->wait_tag)
		return;
	if (r->status != IMAP_ST_OK) {
		char why[300];
		snprintf(why, sizeof(why), "%s refused: %s%s%s%s", watch_state_names[w->state],
			 r->code ? "[" : "", r->code ? r->code : "", r->code ? "] " : "",
			 r->text ? r->text : "");
		watch_fail(w, why);
		return;
	}
	int rc = 0;
	switch (w->state) {
	case W_SELECT:
		/* Mail that came while nobody watched (or since the last job looked) is found by
		 * one sync now. */
		if (look_changed(&w->before, &w->look))
			request_sync(w, w->before.uidnext ? "changed_while_lent" : "watch_start");
		if (w->handoff) { /* a job waited for this EXAMINE: no IDLE in between */
			lend(w);
			return;
		}
		rc = watch_send(w, "IDLE", W_IDLE_START, 1);
		break;
	case W_LENDING:
		lend(w);
		return;
	case W_DONE:
		if (w->handoff) {
			lend(w);
			return;
		}
		rc = watch_send(w, "NOOP", W_NOOP, 1);
		break;
	case W_NOOP:
		if (w->handoff) {
			lend(w);
			return;
		}
		rc = watch_send(w, "IDLE", W_IDLE_START, 1);
		break;
	default:
		break;
	}
	if (rc < 0)
		watch_fail(w, "send failed");
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct watch *w = h->data;
	char buf[16384];
	(void)events;
	if (status < 0) {
		watch_fail(w, uv_strerror(status));
		return;
	}
	/* Drain: decrypted bytes may wait inside OpenSSL without making the socket readable. */
	for (;;) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(w->curl, buf, sizeof(buf), &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK || n == 0) {
			watch_fail(w, rc != CURLE_OK ? curl_easy_strerror(rc) : "server closed the connection");
			return;
		}
		if (imap_parser_feed(w->parser, buf, n) < 0) {
			watch_fail(w, "out of memory");
			return;
		}
		struct imap_response *r;
		int prc;
		while ((prc = imap_parser_next(w->parser, &r)) == 1) {
			on_response(w, r);
			if (w->state == W_FAILED || w->state == W_LENT)
				return;
		}
		if (prc < 0) {
			watch_fail(w, imap_parser_error(w->parser));
			return;
		}
	}
}

static size_t on_header(char *buf, size_t size, size_t n, void *data)
{
	quirks_caps_from_line(data, 4096, buf, size * n);
	return size * n;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* A watch over a logged-in connection (taken): EXAMINE, then IDLE on the loop. before is
 * what was known of the folder (NULL = nothing: the first EXAMINE asks for a sync). */
static struct watch *watch_begin(struct idler *id, json_t *t, CURL *curl, const char *caps,
				 const struct idle_seen *before)
{
	char quoted[520], cmd[600];
	struct watch *w = calloc(1, sizeof(*w));
	struct imap_limits lim;
	imap_limits_default(&lim);
	lim.max_literal = 1 << 20; /* nothing big is expected on a watch */
	lim.max_response = 2 << 20;
	if (w)
		w->parser = imap_parser_new(&lim);
	if (!w || !w->parser) {
		free(w);
		budget_closed(id->budget, curl);
		curl_easy_cleanup(curl);
		return NULL;
	}
	w->id = id;
	w->curl = curl;
	w->account_id = json_integer_value(json_object_get(t, "account_id"));
	w->folder_id = json_integer_value(json_object_get(t, "folder_id"));
	snprintf(w->account, sizeof(w->account), "%s", jstr(t, "name"));
	snprintf(w->wire, sizeof(w->wire), "%s", jstr(t, "wire_name"));
	snprintf(w->folder, sizeof(w->folder), "%s", *jstr(t, "folder") ? jstr(t, "folder") : "INBOX");
	snprintf(w->caps, sizeof(w->caps), "%s", caps);
	if (before)
		w->before = *before;
	long sock = -1;
	curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &sock);
	uv_poll_init_socket(&id->loop, &w->poll, (uv_os_sock_t)sock);
	uv_timer_init(&id->loop, &w->timer);
	uv_timer_init(&id->loop, &w->debounce);
	w->poll.data = w->timer.data = w->debounce.data = w;
	w->open_handles = 3;
	metrics_add(MX_IMAP_CONNECTIONS_IDLE, 1);
	w->next = id->watches;
	id->watches = w;
	if (session_quote(quoted, sizeof(quoted), w->wire) < 0)
		snprintf(quoted, sizeof(quoted), "INBOX");
	snprintf(cmd, sizeof(cmd), "EXAMINE %s", quoted);
	w->state = W_SELECT;
	if (watch_send(w, cmd, W_SELECT, 1) < 0) {
		watch_fail(w, "send failed");
		return NULL;
	}
	uv_poll_start(&w->poll, UV_READABLE, on_poll);
	return w;
}

void idle_set_source(struct idler *id, idle_source_fn fn, void *data)
{
	if (!id)
		return;
	uv_mutex_lock(&id->mu);
	id->source = fn;
	id->source_data = data;
	uv_mutex_unlock(&id->mu);
}

/* The account's connection parked by a job of this process, if there is one. */
static CURL *take_parked(struct idler *id, json_t *t, char *caps, size_t capslen)
{
	char key[600];
	uv_mutex_lock(&id->mu);
	idle_source_fn fn = id->source;
	void *data = id->source_data;
	uv_mutex_unlock(&id->mu);
	if (!fn)
		return NULL;
	conn_key(key, sizeof(key), jstr(t, "host"), (long)json_integer_value(json_object_get(t, "port")),
		 jstr(t, "username"), jstr(t, "auth"));
	return fn(data, json_integer_value(json_object_get(t, "account_id")), key, caps, capslen);
}

/* Connects and logs in (or takes the connection a job left), then begins the watch. NULL
 * when it cannot. */
static struct watch *watch_open(struct idler *id, json_t *t)
{
	char err[600], url[400], caps[4096] = "";
	long long folder_id = json_integer_value(json_object_get(t, "folder_id"));
	const char *account = jstr(t, "name");
	CURL *parked = take_parked(id, t, caps, sizeof(caps));
	if (parked) {
		struct watch *w = watch_begin(id, t, parked, caps, NULL);
		if (w)
			log_info("account=%s msg=\"IDLE watch opened on the connection of the last job\"", account);
		return w;
	}
	long ticket = budget_take(id->budget, json_integer_value(json_object_get(t, "account_id")),
				  jstr(t, "host"),
				  budget_account_limit(jstr(t, "provider"),
						       json_integer_value(json_object_get(t, "max_connections"))));
	if (ticket == 0) {
		backoff_fail(id, folder_id, 5000); /* the account's connections are all in use */
		return NULL;
	}
	char *secret = fetch_resolve_secret(id->cfg, t, err, sizeof(err));
	CURL *c = curl_easy_init();
	if (!secret || !c) {
		log_warn("account=%s msg=\"IDLE watch not opened: %s\"", account, secret ? "out of memory" : err);
		goto fail;
	}
	const char *tls = jstr(t, "tls");
	snprintf(url, sizeof(url), "%s://%s:%lld/", strcmp(tls, "implicit") ? "imap" : "imaps",
		 jstr(t, "host"), (long long)json_integer_value(json_object_get(t, "port")));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, id->cfg->fetch_timeout_s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, caps);
	/* A peer that vanished without a word is found by TCP keepalive between renewals. */
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 30L);
	if (!strcmp(tls, "starttls"))
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	const char *ca = jstr(t, "ca_file");
	if (*ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	long verify = json_is_false(json_object_get(t, "tls_verify")) ? 0L : 1L;
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	curl_easy_setopt(c, CURLOPT_USERNAME, jstr(t, "username"));
	if (!strcmp(jstr(t, "auth"), "xoauth2")) {
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, secret);
	} else {
		curl_easy_setopt(c, CURLOPT_PASSWORD, secret);
	}
	CURLcode rc = curl_easy_perform(c);
	memset(secret, 0, strlen(secret));
	free(secret);
	secret = NULL;
	if (rc != CURLE_OK) {
		log_warn("account=%s msg=\"IDLE watch not opened: %s\"", account, curl_easy_strerror(rc));
		goto fail;
	}
	if (!quirks_cap(caps, "IDLE")) {
		/* The account's poll interval is all there is; look again in a while. */
		log_info("account=%s msg=\"server does not offer IDLE; polling only\"", account);
		backoff_fail(id, folder_id, 3600 * 1000);
		goto fail;
	}
	session_curl_logged_in(c);
	budget_bind(id->budget, ticket, c);
	struct watch *w = watch_begin(id, t, c, caps, NULL);
	if (w)
		log_info("account=%s msg=\"IDLE watch opened\"", account);
	return w;
fail:
	if (secret) {
		memset(secret, 0, strlen(secret));
		free(secret);
	}
	budget_cancel(id->budget, ticket);
	curl_easy_cleanup(c);
	return NULL;
}

static int lease_take(struct idler *id, long long account_id, long long folder_id)
{
	char key[160];
	lease_key(id, account_id, folder_id, key, sizeof(key));
	/* A lease with our own name is from this consumer's previous life (a restart keeps the
	 * name): it is ours to take at once. */
	redisReply *r = redisCommand(id->rc, "EVAL %s 1 %s %s %d",
				     "local v = redis.call('get', KEYS[1]) "
				     "if v == false or v == ARGV[1] then "
				     "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0",
				     key, id->cfg->consumer, IDLE_LEASE_MS);
	int ok = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return ok;
}

static int lease_renew(struct idler *id, long long account_id, long long folder_id)
{
	char key[160];
	lease_key(id, account_id, folder_id, key, sizeof(key));
	redisReply *r = redisCommand(id->rc, "EVAL %s 1 %s %s %d",
				     "if redis.call('get', KEYS[1]) == ARGV[1] then "
				     "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end",
				     key, id->cfg->consumer, IDLE_LEASE_MS);
	int ok = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return ok;
}

/* Every IDLE_REFRESH_MS: reads the targets, keeps the leases of our watches fresh, opens
 * watches for targets nobody holds, and closes those no longer listed or no longer ours. */
static void on_refresh(uv_timer_t *t)
{
	struct idler *id = t->data;
	if (!id->rc || id->rc->err) {
		redisFree(id->rc);
		id->rc = redis_connect_url(id->cfg->redis_url);
		if (!id->rc)
			return;
	}
	budget_tick(id->budget);
	redisReply *r = redisCommand(id->rc, "GET %s", id->cfg->key_idle_targets);
	json_t *targets = r && r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
	freeReplyObject(r);
	if (!json_is_array(targets)) {
		json_decref(targets);
		return;
	}
	unsigned gen = ++id->generation;
	long long now = stage_now_ms();
	int opens = 0;
	size_t i;
	json_t *tg;
	json_decref(id->targets);
	id->targets = json_incref(targets);
	json_array_foreach(targets, i, tg) {
		long long acc = json_integer_value(json_object_get(tg, "account_id"));
		long long fid = json_integer_value(json_object_get(tg, "folder_id"));
		struct watch *w = id->watches;
		while (w && w->folder_id != fid)
			w = w->next;
		if (w) {
			w->seen = gen;
			if (!lease_renew(id, acc, fid)) {
				log_info("account=%s msg=\"IDLE lease lost, closing the watch\"", w->account);
				watch_close(w, 1);
			}
			continue;
		}
		struct backoff *b = backoff_of(id, fid);
		if ((b && b->until_ms > now) || opens >= IDLE_OPENS_PER_REFRESH)
			continue;
		if (!lease_take(id, acc, fid))
			continue; /* another fetcher watches it */
		opens++;
		atomic_store(&id->opening, 1);
		w = watch_open(id, tg);
		atomic_store(&id->opening, 0);
		if (w) {
			w->seen = gen;
			if (b)
				b->fails = 0;
		} else {
			lease_release(id, acc, fid);
			if (b && b->until_ms <= now)
				backoff_fail(id, fid, 0);
		}
	}
	json_decref(targets);
	for (struct watch *w = id->watches, *next; w; w = next) {
		next = w->next;
		if (w->seen != gen) {
			log_info("account=%s folder=\"%s\" msg=\"no longer watched (removed or --no-idle)\"",
				 w->account, w->folder);
			lease_release(id, w->account_id, w->folder_id);
			watch_close(w, 1);
		}
	}
}

static struct watch *watch_of_folder(struct idler *id, long long folder_id)
{
	struct watch *w = id->watches;
	while (w && w->folder_id != folder_id)
		w = w->next;
	return w;
}

/* The account's watch in state st (any state: W_FAILED), preferring the one on wire. */
static struct watch *watch_of(struct idler *id, long long account_id, enum watch_state st,
			      const char *wire)
{
	struct watch *found = NULL;
	for (struct watch *w = id->watches; w; w = w->next)
		if (w->account_id == account_id && (st == W_FAILED || w->state == st)) {
			if (!wire || !strcmp(w->wire, wire))
				return w;
			found = found ? found : w;
		}
	return found;
}

/* A target of the account: the folder folder_id, or (0) one that no watch has yet. */
static json_t *target_of(struct idler *id, long long account_id, long long folder_id)
{
	size_t i;
	json_t *tg;
	json_array_foreach(id->targets, i, tg) {
		long long fid = json_integer_value(json_object_get(tg, "folder_id"));
		if (json_integer_value(json_object_get(tg, "account_id")) != account_id)
			continue;
		if (folder_id ? fid == folder_id : !watch_of_folder(id, fid))
			return tg;
	}
	return NULL;
}

/* A job wants one of the account's connections: an idling watch (the one on the job's
 * folder, if there is one) ends its IDLE and lends it (lend(), once the server confirms);
 * no idling watch leaves the job to its own connection. */
/* A watch of the account busy with a short command of its own (the EXAMINE after a job gave
 * it back, the IDLE after it, a renewal's DONE and NOOP), preferring the one on wire. */
static struct watch *busy_watch_of(struct idler *id, long long account_id, const char *wire)
{
	struct watch *found = NULL;
	for (struct watch *w = id->watches; w; w = w->next)
		if (w->account_id == account_id && !w->handoff &&
		    (w->state == W_SELECT || w->state == W_IDLE_START || w->state == W_DONE ||
		     w->state == W_NOOP)) {
			if (!strcmp(w->wire, wire))
				return w;
			found = found ? found : w;
		}
	return found;
}

/* An idling watch is lent at once (DONE); a busy one when its command ends: the lane that
 * waited for the account's last job comes while the watch re-EXAMINEs the connection that
 * job gave back, and on a distant server logged in anew rather than wait one round trip. */
static void borrow(struct idler *id, struct handoff *h)
{
	struct watch *w = watch_of(id, h->account_id, W_IDLING, h->seen.wire);
	if (!w)
		w = busy_watch_of(id, h->account_id, h->seen.wire);
	if (!w || w->handoff) {
		handoff_done(id, h);
		return;
	}
	w->handoff = h;
	if (w->state == W_IDLING && watch_send(w, "DONE", W_LENDING, 0) < 0)
		watch_fail(w, "send failed");
}

/* A job is done with a connection of the account: the lent one comes back (or a new one,
 * if the lent one died and the job logged in again), or a job's connection becomes the
 * watch of a target nobody watches yet, saving a login. */
static void give(struct idler *id, struct handoff *h)
{
	struct watch *w = watch_of(id, h->account_id, W_LENT, NULL);
	int lent = w != NULL;
	long long fid = lent ? w->folder_id : 0;
	json_t *tg = target_of(id, h->account_id, fid);
	if (lent)
		watch_close(w, 0); /* a new watch takes over, with the lease */
	if (!tg || !h->curl ||
	    (!lent && !lease_take(id, h->account_id, json_integer_value(json_object_get(tg, "folder_id"))))) {
		if (lent)
			lease_release(id, h->account_id, fid);
		handoff_done(id, h); /* the caller keeps (or closes) its connection */
		return;
	}
	fid = json_integer_value(json_object_get(tg, "folder_id"));
	h->taken = 1;
	/* What the job saw counts only if it looked at the folder this watch watches. */
	int looked = strcmp(h->seen.wire, jstr(tg, "wire_name")) == 0;
	w = watch_begin(id, tg, h->curl, h->caps, looked ? &h->seen : NULL);
	if (w)
		w->seen = id->generation;
	else
		lease_release(id, h->account_id, fid);
	handoff_done(id, h);
}

static void on_wake(uv_async_t *a)
{
	struct idler *id = a->data;
	uv_mutex_lock(&id->mu);
	struct handoff *h = id->pending;
	id->pending = NULL;
	uv_mutex_unlock(&id->mu);
	while (h) { /* the fetcher's lanes may each have one waiting */
		struct handoff *next = h->next;
		if (id->stopped)
			handoff_done(id, h);
		else if (h->kind == H_BORROW)
			borrow(id, h);
		else
			give(id, h);
		h = next;
	}
}

/* Runs h on the watch thread and waits for it. The watch thread always answers: its own
 * deadlines end every state that waits on a server. */
static void handoff_run(struct idler *id, struct handoff *h)
{
	uv_mutex_lock(&id->mu);
	struct handoff **tail = &id->pending;
	while (*tail)
		tail = &(*tail)->next;
	*tail = h;
	uv_mutex_unlock(&id->mu);
	uv_async_send(&id->wake);
	uv_mutex_lock(&id->mu);
	while (!h->done)
		uv_cond_wait(&id->cv, &id->mu);
	uv_mutex_unlock(&id->mu);
}

CURL *idle_borrow(struct idler *id, long long account_id, const char *wire, char *caps,
		  size_t capslen, struct idle_seen *seen)
{
	if (!id || atomic_load(&id->opening))
		return NULL;
	struct handoff h = { .kind = H_BORROW, .account_id = account_id };
	snprintf(h.seen.wire, sizeof(h.seen.wire), "%s", wire ? wire : "");
	handoff_run(id, &h);
	if (h.curl) {
		snprintf(caps, capslen, "%s", h.caps);
		*seen = h.seen;
		log_debug("account_id=%lld msg=\"IDLE connection lent to a job\"", account_id);
	}
	return h.curl;
}

int idle_give(struct idler *id, long long account_id, CURL *curl, const char *caps,
	      const struct idle_seen *seen)
{
	if (!id)
		return 0;
	struct handoff h = { .kind = H_GIVE, .account_id = account_id, .curl = curl };
	snprintf(h.caps, sizeof(h.caps), "%s", caps ? caps : "");
	if (seen)
		h.seen = *seen;
	handoff_run(id, &h);
	return h.taken;
}

static void on_stop(uv_async_t *a)
{
	struct idler *id = a->data;
	id->stopped = 1;
	while (id->watches) {
		lease_release(id, id->watches->account_id, id->watches->folder_id);
		watch_close(id->watches, 1);
	}
	uv_close((uv_handle_t *)&id->refresh, NULL);
	uv_close((uv_handle_t *)&id->stop, NULL);
	uv_close((uv_handle_t *)&id->wake, NULL);
}

static void idle_main(void *arg)
{
	struct idler *id = arg;
	uv_run(&id->loop, UV_RUN_DEFAULT);
}

struct idler *idle_start(const struct mp_config *cfg, struct budget *budget)
{
	struct idler *id = calloc(1, sizeof(*id));
	if (!id)
		return NULL;
	id->cfg = cfg;
	id->budget = budget;
	id->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)id;
	uv_loop_init(&id->loop);
	uv_async_init(&id->loop, &id->stop, on_stop);
	uv_async_init(&id->loop, &id->wake, on_wake);
	uv_mutex_init(&id->mu);
	uv_cond_init(&id->cv);
	id->wake.data = id;
	uv_timer_init(&id->loop, &id->refresh);
	id->stop.data = id->refresh.data = id;
	uv_timer_start(&id->refresh, on_refresh, 100, IDLE_REFRESH_MS);
	if (uv_thread_create(&id->thread, idle_main, id) != 0) {
		log_error("msg=\"IDLE watch thread not started\"");
		uv_close((uv_handle_t *)&id->refresh, NULL);
		uv_close((uv_handle_t *)&id->stop, NULL);
		uv_close((uv_handle_t *)&id->wake, NULL);
		uv_run(&id->loop, UV_RUN_DEFAULT);
		uv_mutex_destroy(&id->mu);
		uv_cond_destroy(&id->cv);
		uv_loop_close(&id->loop);
		free(id);
		return NULL;
	}
	return id;
}

void idle_stop(struct idler *id)
{
	if (!id)
		return;
	uv_async_send(&id->stop);
	uv_thread_join(&id->thread);
	uv_loop_close(&id->loop);
	uv_mutex_destroy(&id->mu);
	uv_cond_destroy(&id->cv);
	json_decref(id->targets);
	redisFree(id->rc);
	free(id->backoff);
	free(id);
}

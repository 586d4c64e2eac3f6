/* IDLE watches: see idle.h. One thread, one libuv loop, any number of connections; each
 * connection is a small state machine (enum watch_state, set_state logs every transition).
 * curl does the connection, TLS and login (blocking, bounded by MAILPIPE_FETCH_TIMEOUT_S);
 * after that the socket is watched with uv_poll and spoken to with curl_easy_send/recv. */
#include "idle.h"
#include "fetch.h"
#include "imap_parser.h"
#include "log.h"
#include "quirks.h"
#include "retry.h"
#include "rstream.h"
#include "session.h"
#include "stage.h"

#include <curl/curl.h>
#include <errno.h>
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
	W_FAILED,
};

static const char *const watch_state_names[] = {
	"select", "idle_start", "idling", "done", "noop", "failed",
};

struct watch {
	struct idler *id;
	struct watch *next;
	long long account_id;
	char account[128], wire[512];
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
};

struct backoff {
	long long account_id;
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
};

static void set_state(struct watch *w, enum watch_state st)
{
	log_debug("account=%s msg=\"idle %s -> %s\"", w->account, watch_state_names[w->state],
		  watch_state_names[st]);
	w->state = st;
}

static struct backoff *backoff_of(struct idler *id, long long account_id)
{
	for (size_t i = 0; i < id->nbackoff; i++)
		if (id->backoff[i].account_id == account_id)
			return &id->backoff[i];
	struct backoff *b = realloc(id->backoff, (id->nbackoff + 1) * sizeof(*b));
	if (!b)
		return NULL;
	id->backoff = b;
	b = &id->backoff[id->nbackoff++];
	memset(b, 0, sizeof(*b));
	b->account_id = account_id;
	return b;
}

/* A watch that failed is opened again later, jittered, longer each time it fails again. */
static void backoff_fail(struct idler *id, long long account_id, int64_t at_least_ms)
{
	struct backoff *b = backoff_of(id, account_id);
	if (!b)
		return;
	b->fails++;
	int64_t d = retry_delay_ms(b->fails, 1000, 300000, at_least_ms, (uint32_t)rand_r(&id->seed));
	b->until_ms = stage_now_ms() + d;
}

static void lease_key(struct idler *id, long long account_id, char *buf, size_t size)
{
	snprintf(buf, size, "%s%lld", id->cfg->key_idle_lease_prefix, account_id);
}

static void lease_release(struct idler *id, long long account_id)
{
	char key[160];
	if (!id->rc || id->rc->err)
		return;
	lease_key(id, account_id, key, sizeof(key));
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
	metrics_add(MX_IMAP_CONNECTIONS_IDLE, -1);
	curl_easy_cleanup(w->curl);
	imap_parser_free(w->parser);
	free(w);
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
	if (bye && w->state != W_FAILED) {
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
	lease_release(w->id, w->account_id);
	backoff_fail(w->id, w->account_id, retry_hint_ms(why));
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
	redisReply *r = redisCommand(id->rc, "XADD %s MAXLEN ~ 10000 * account_id %s folders %s "
					     "request_id %s reason %s",
				     id->cfg->key_requests, acc, "[\"INBOX\"]", rid, reason);
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

static void on_response(struct watch *w, const struct imap_response *r)
{
	if (r->kind == IMAP_RESP_CONTINUE) {
		if (w->state == W_IDLE_START) {
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
		/* Mail that came while nobody watched is found by one sync now. */
		request_sync(w, "watch_start");
		rc = watch_send(w, "IDLE", W_IDLE_START, 1);
		break;
	case W_DONE:
		rc = watch_send(w, "NOOP", W_NOOP, 1);
		break;
	case W_NOOP:
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
			if (w->state == W_FAILED)
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
	struct watch *w = data;
	quirks_caps_from_line(w->caps, sizeof(w->caps), buf, size * n);
	return size * n;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* Connects, logs in and selects; the watch then runs on the loop. NULL when it cannot. */
static struct watch *watch_open(struct idler *id, json_t *t)
{
	char err[600], url[400], quoted[520], cmd[600];
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->id = id;
	w->account_id = json_integer_value(json_object_get(t, "account_id"));
	snprintf(w->account, sizeof(w->account), "%s", jstr(t, "name"));
	snprintf(w->wire, sizeof(w->wire), "%s", jstr(t, "wire_name"));
	char *secret = fetch_resolve_secret(jstr(t, "secret_ref"), err, sizeof(err));
	struct imap_limits lim;
	imap_limits_default(&lim);
	lim.max_literal = 1 << 20; /* nothing big is expected on a watch */
	lim.max_response = 2 << 20;
	w->parser = imap_parser_new(&lim);
	w->curl = curl_easy_init();
	if (!secret || !w->parser || !w->curl) {
		log_warn("account=%s msg=\"IDLE watch not opened: %s\"", w->account, secret ? "out of memory" : err);
		goto fail;
	}
	const char *tls = jstr(t, "tls");
	snprintf(url, sizeof(url), "%s://%s:%lld/", strcmp(tls, "implicit") ? "imap" : "imaps",
		 jstr(t, "host"), (long long)json_integer_value(json_object_get(t, "port")));
	CURL *c = w->curl;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, id->cfg->fetch_timeout_s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, w);
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
		log_warn("account=%s msg=\"IDLE watch not opened: %s\"", w->account, curl_easy_strerror(rc));
		goto fail;
	}
	if (!quirks_cap(w->caps, "IDLE")) {
		/* The account's poll interval is all there is; look again in a while. */
		log_info("account=%s msg=\"server does not offer IDLE; polling only\"", w->account);
		backoff_fail(id, w->account_id, 3600 * 1000);
		goto fail;
	}
	long sock = -1;
	curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &sock);
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
	log_info("account=%s msg=\"IDLE watch opened\"", w->account);
	return w;
fail:
	if (secret) {
		memset(secret, 0, strlen(secret));
		free(secret);
	}
	curl_easy_cleanup(w->curl);
	imap_parser_free(w->parser);
	free(w);
	return NULL;
}

static int lease_take(struct idler *id, long long account_id)
{
	char key[160];
	lease_key(id, account_id, key, sizeof(key));
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

static int lease_renew(struct idler *id, long long account_id)
{
	char key[160];
	lease_key(id, account_id, key, sizeof(key));
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
	json_array_foreach(targets, i, tg) {
		long long acc = json_integer_value(json_object_get(tg, "account_id"));
		struct watch *w = id->watches;
		while (w && w->account_id != acc)
			w = w->next;
		if (w) {
			w->seen = gen;
			if (!lease_renew(id, acc)) {
				log_info("account=%s msg=\"IDLE lease lost, closing the watch\"", w->account);
				watch_close(w, 1);
			}
			continue;
		}
		struct backoff *b = backoff_of(id, acc);
		if ((b && b->until_ms > now) || opens >= IDLE_OPENS_PER_REFRESH)
			continue;
		if (!lease_take(id, acc))
			continue; /* another fetcher watches it */
		opens++;
		w = watch_open(id, tg);
		if (w) {
			w->seen = gen;
			if (b)
				b->fails = 0;
		} else {
			lease_release(id, acc);
			if (b && b->until_ms <= now)
				backoff_fail(id, acc, 0);
		}
	}
	json_decref(targets);
	for (struct watch *w = id->watches, *next; w; w = next) {
		next = w->next;
		if (w->seen != gen) {
			log_info("account=%s msg=\"no longer watched (removed or --no-idle)\"", w->account);
			lease_release(id, w->account_id);
			watch_close(w, 1);
		}
	}
}

static void on_stop(uv_async_t *a)
{
	struct idler *id = a->data;
	while (id->watches) {
		lease_release(id, id->watches->account_id);
		watch_close(id->watches, 1);
	}
	uv_close((uv_handle_t *)&id->refresh, NULL);
	uv_close((uv_handle_t *)&id->stop, NULL);
}

static void idle_main(void *arg)
{
	struct idler *id = arg;
	uv_run(&id->loop, UV_RUN_DEFAULT);
}

struct idler *idle_start(const struct mp_config *cfg)
{
	struct idler *id = calloc(1, sizeof(*id));
	if (!id)
		return NULL;
	id->cfg = cfg;
	id->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)id;
	uv_loop_init(&id->loop);
	uv_async_init(&id->loop, &id->stop, on_stop);
	uv_timer_init(&id->loop, &id->refresh);
	id->stop.data = id->refresh.data = id;
	uv_timer_start(&id->refresh, on_refresh, 100, IDLE_REFRESH_MS);
	if (uv_thread_create(&id->thread, idle_main, id) != 0) {
		log_error("msg=\"IDLE watch thread not started\"");
		uv_close((uv_handle_t *)&id->refresh, NULL);
		uv_close((uv_handle_t *)&id->stop, NULL);
		uv_run(&id->loop, UV_RUN_DEFAULT);
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
	redisFree(id->rc);
	free(id->backoff);
	free(id);
}

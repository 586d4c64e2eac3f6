/* IMAP connection over libcurl's CONNECT_ONLY handle. curl does the parts that are easy to get
 * wrong (TLS verification, STARTTLS, SASL); we pipeline UID FETCH ourselves because curl's
 * URL mode is one message per request (LIBRARY-NOTES: 663 msg/s against 6,000+). */
#include "session.h"
#include "log.h"
#include "metrics.h"
#include "quirks.h"
#include "retry.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

struct session {
	CURL *curl;
	curl_socket_t sock;
	uv_loop_t loop;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_timer_t wait_timer;	/* calls on_wait while we wait */
	int poll_started;
	struct imap_parser *parser;
	struct session_handler h;
	unsigned next_tag;
	char *out;		/* bytes queued for the server */
	size_t out_len, out_cap;
	int failed;
	char error[512];
	char curl_error[CURL_ERROR_SIZE];
	char last_server_line[256];
	char caps[4096];
	const char *account;
	const char *folder;
	char where[300];
	long timeout_s;
	void (*on_wait)(void *data);
	void *wait_data;
	long long last_wait_ms;
	volatile sig_atomic_t *stopping;	/* when on_wait last ran during login */
	size_t since_progress;	/* bytes read since the last complete response */
	unsigned pending;	/* commands sent and not yet completed */
	unsigned long responses; /* commands the server completed */
};

/* A server must make progress within timeout_s: a complete response, or this many bytes of
 * one (a big message on a slow link). A trickle of bytes that never completes a response (a
 * slow-loris answer) no longer keeps the connection alive for ever. */
#define SESSION_PROGRESS_BYTES 65536

static void session_fail(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void session_fail(struct session *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	char what[400];
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (*s->folder)
		snprintf(s->error, sizeof(s->error), "%s for account '%s' folder '%s' at %s", what,
			 s->account, s->folder, s->where);
	else
		snprintf(s->error, sizeof(s->error), "%s for account '%s' at %s", what, s->account,
			 s->where);
}

/* curl hands every server line it reads while connecting to the header callback: keep the
 * capabilities and the last line, which carries the server's reason when login fails. */
static size_t on_header(char *buf, size_t size, size_t n, void *data)
{
	struct session *s = data;
	size_t len = size * n, l = len;
	while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
		l--;
	if (l >= sizeof(s->last_server_line))
		l = sizeof(s->last_server_line) - 1;
	memcpy(s->last_server_line, buf, l);
	s->last_server_line[l] = 0;
	/* From the whole line: Dovecot's capability list after login is longer than the copy
	 * kept above, and LIST-STATUS sits near its end. */
	quirks_caps_from_line(s->caps, sizeof(s->caps), buf, len);
	return len;
}

static void update_poll(struct session *s);

static void flush_out(struct session *s)
{
	while (s->out_len > 0) {
		size_t sent = 0;
		CURLcode rc = curl_easy_send(s->curl, s->out, s->out_len, &sent);
		if (rc == CURLE_AGAIN)
			break;
		if (rc != CURLE_OK) {
			session_fail(s, "send failed: %s", curl_easy_strerror(rc));
			return;
		}
		memmove(s->out, s->out + sent, s->out_len - sent);
		s->out_len -= sent;
	}
}

static void progress(struct session *s)
{
	s->since_progress = 0;
	uv_timer_again(&s->timer);
}

static void dispatch(struct session *s)
{
	struct imap_response *r;
	int rc;
	while ((rc = imap_parser_next(s->parser, &r)) == 1) {
		progress(s);
		if (r->kind == IMAP_RESP_TAGGED) {
			unsigned tag = 0;
			if (r->tag[0] == 'M')
				tag = (unsigned)strtoul(r->tag + 1, NULL, 10);
			if (tag && s->pending)
				s->pending--;
			s->responses++;
			if (s->h.on_tagged)
				s->h.on_tagged(s->h.data, tag, r);
		} else if (r->kind == IMAP_RESP_UNTAGGED) {
			if (r->status == IMAP_ST_BYE) {
				session_fail(s, "server closed the connection: %s%s%s%s", r->code ? "[" : "",
					     r->code ? r->code : "", r->code ? "] " : "", r->text);
				return;
			}
			if (s->h.on_untagged)
				s->h.on_untagged(s->h.data, r);
		}
		/* Continuations are not expected: we never send synchronising literals. */
	}
	if (rc < 0)
		session_fail(s, "bad response from server: %s", imap_parser_error(s->parser));
}

static void read_all(struct session *s)
{
	char buf[65536];
	/* Read until CURLE_AGAIN: bytes already decrypted inside OpenSSL do not make the socket
	 * readable again, so one read per event would stall (LIBRARY-NOTES). */
	for (;;) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(s->curl, buf, sizeof(buf), &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK) {
			session_fail(s, "receive failed: %s", curl_easy_strerror(rc));
			return;
		}
		if (n == 0) {
			session_fail(s, "server closed the connection");
			return;
		}
		s->since_progress += n;
		if (s->since_progress >= SESSION_PROGRESS_BYTES)
			progress(s);
		if (imap_parser_feed(s->parser, buf, n) < 0) {
			session_fail(s, "out of memory reading server response");
			return;
		}
		dispatch(s);
		if (s->failed)
			return;
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct session *s = h->data;
	if (status < 0) {
		session_fail(s, "socket error: %s", uv_strerror(status));
		return;
	}
	if (events & UV_WRITABLE)
		flush_out(s);
	if (events & UV_READABLE)
		read_all(s);
	update_poll(s);
}

static void on_timeout(uv_timer_t *t)
{
	struct session *s = t->data;
	if (s->since_progress)
		session_fail(s, "server too slow: %zu bytes in %lds without a complete response",
			     s->since_progress, s->timeout_s);
	else
		session_fail(s, "no answer from server for %lds", s->timeout_s);
}

static void on_wait_timer(uv_timer_t *t)
{
	struct session *s = t->data;
	if (s->on_wait)
		s->on_wait(s->wait_data);
}

/* curl's progress callback runs many times a second while it connects and logs in. */
static int on_login_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			     curl_off_t ulnow)
{
	struct session *s = data;
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	long long now = (long long)time(NULL) * 1000;
	if (s->on_wait && now - s->last_wait_ms >= 1000) {
		s->last_wait_ms = now;
		s->on_wait(s->wait_data);
	}
	return 0;
}

static void update_poll(struct session *s)
{
	if (s->failed) {
		if (s->poll_started)
			uv_poll_stop(&s->poll);
		s->poll_started = 0;
		return;
	}
	int ev = UV_READABLE | (s->out_len ? UV_WRITABLE : 0);
	uv_poll_start(&s->poll, ev, on_poll);
	s->poll_started = 1;
}

/* A session without a connection yet: its parser and the job's bindings. */
static struct session *session_new(const struct session_opts *o)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	session_rebind(s, o);
	s->timeout_s = o->timeout_s;
	s->last_wait_ms = (long long)time(NULL) * 1000;
	snprintf(s->where, sizeof(s->where), "%s:%ld", o->host, o->port);
	struct imap_limits lim;
	imap_limits_default(&lim);
	lim.max_literal = o->max_literal;
	lim.max_response = o->max_literal + (1 << 20);
	/* A SEARCH answer lists every UID on one line: a 1M-message folder is ~8 MB. */
	lim.max_line = 32u << 20;
	s->parser = imap_parser_new(&lim);
	if (!s->parser) {
		free(s);
		return NULL;
	}
	return s;
}

/* The logged-in socket joins the session's own loop, with its timers. */
static int session_start(struct session *s)
{
	long sock = -1;
	curl_easy_getinfo(s->curl, CURLINFO_ACTIVESOCKET, &sock);
	s->sock = (curl_socket_t)sock;
	uv_loop_init(&s->loop);
	uv_poll_init_socket(&s->loop, &s->poll, s->sock);
	s->poll.data = s;
	uv_timer_init(&s->loop, &s->timer);
	s->timer.data = s;
	uv_timer_start(&s->timer, on_timeout, (uint64_t)s->timeout_s * 1000,
		       (uint64_t)s->timeout_s * 1000);
	uv_timer_init(&s->loop, &s->wait_timer);
	s->wait_timer.data = s;
	uv_timer_start(&s->wait_timer, on_wait_timer, 1000, 1000);
	metrics_add(MX_IMAP_CONNECTIONS_JOB, 1);
	return 0;
}

struct session *session_open(const struct session_opts *o, char *err, size_t errlen,
			     int *auth_failed)
{
	char url[400];
	*auth_failed = 0;
	struct session *s = session_new(o);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->curl = curl_easy_init();
	if (!s->curl) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(url, sizeof(url), "%s://%s:%ld/", strcmp(o->tls, "implicit") == 0 ? "imaps" : "imap",
		 o->host, o->port);
	CURL *c = s->curl;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->curl_error);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->timeout_s);
	/* The whole login (TCP, TLS, greeting, SASL) gets the same bound: a server that never
	 * greets, or greets without end, must not hold the job. */
	curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_login_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
	/* The connection may outlive this job (conn.c keeps it for the account's next job or
	 * its IDLE watch): a peer that vanished without a word is found by TCP keepalive. */
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 30L);
	if (strcmp(o->tls, "starttls") == 0) /* else curl would log in in clear text */
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (o->ca_file && *o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->tls_verify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->tls_verify ? 2L : 0L);
	curl_easy_setopt(c, CURLOPT_USERNAME, o->username);
	if (strcmp(o->auth, "xoauth2") == 0) {
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, o->secret);
	} else {
		curl_easy_setopt(c, CURLOPT_PASSWORD, o->secret);
	}
	double t0 = metrics_clock();
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		log_debug("account=%s seconds=%.3f msg=\"connected and logged in\"", s->account,
			  metrics_clock() - t0);
	if (rc != CURLE_OK) {
		const char *why = *s->curl_error ? s->curl_error : curl_easy_strerror(rc);
		/* The server's own words say why (e.g. [AUTHENTICATIONFAILED]); drop the tag. */
		const char *line = s->last_server_line, *sp = strchr(line, ' ');
		const char *words = sp ? sp + 1 : why;
		/* A login refused with [THROTTLED], [UNAVAILABLE], [LIMIT] or "too many
		 * connections" is the server's load, not the credentials: it is retried. */
		int busy = rc == CURLE_LOGIN_DENIED && retry_classify_text(words) == RETRY_TRANSIENT;
		/* Retrying cannot fix refused credentials, an untrusted certificate or a server
		 * without STARTTLS; everything else (refused, reset, timeout) may pass. */
		*auth_failed = (rc == CURLE_LOGIN_DENIED && !busy) ||
			       rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
			       rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_USE_SSL_FAILED ||
			       rc == CURLE_URL_MALFORMAT;
		if (busy) {
			metrics_add(MX_IMAP_THROTTLED, 1);
			snprintf(err, errlen, "login refused for account '%s' at %s: %s", o->account,
				 s->where, words);
		} else if (rc == CURLE_LOGIN_DENIED) {
			metrics_add(MX_IMAP_AUTH_FAILURES, 1);
			snprintf(err, errlen, "auth failed for account '%s' at %s: %s", o->account,
				 s->where, words);
		} else {
			snprintf(err, errlen, "cannot connect for account '%s' at %s: %s", o->account,
				 s->where, why);
		}
		goto fail;
	}
	session_curl_logged_in(c);
	return session_start(s) < 0 ? NULL : s;
fail:
	imap_parser_free(s->parser);
	curl_easy_cleanup(s->curl);
	free(s);
	return NULL;
}

void session_curl_logged_in(CURL *c)
{
	/* curl still reads the server's lines when it is cleaned up (its own LOGOUT) and hands
	 * them to these: the memory they point at may be gone by then, since the connection
	 * now outlives the session or watch that logged it in. */
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, NULL);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 1L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, NULL);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
}

struct session *session_adopt(const struct session_opts *o, CURL *curl, const char *caps)
{
	struct session *s = session_new(o);
	if (!s) {
		curl_easy_cleanup(curl);
		return NULL;
	}
	s->curl = curl;
	snprintf(s->caps, sizeof(s->caps), "%s", caps);
	if (session_start(s) < 0)
		return NULL;
	/* The last job (or the watch) left a folder selected, and STATUS of the selected
	 * folder may answer what this connection last saw rather than what the folder holds
	 * now (RFC 3501 6.3.10; Dovecot does): leave it first. Its answer is not waited for, and
	 * a BAD when nothing was selected is harmless. */
	session_send(s, quirks_cap(caps, "UNSELECT") ? "UNSELECT" : "CLOSE");
	return s;
}

void session_rebind(struct session *s, const struct session_opts *o)
{
	s->account = o->account;
	s->folder = o->folder ? o->folder : "";
	s->on_wait = o->on_wait;
	s->wait_data = o->wait_data;
	s->stopping = o->stopping;
	struct session_handler none = { 0 };
	s->h = none;
}

unsigned long session_responses(const struct session *s)
{
	return s->responses;
}

CURL *session_curl(const struct session *s)
{
	return s->curl;
}

int session_reusable(const struct session *s)
{
	return s && !s->failed && s->pending == 0 && s->out_len == 0;
}

static void on_closed(uv_handle_t *h)
{
	(void)h;
}

/* Frees everything but the connection, which it returns. */
static CURL *session_free(struct session *s)
{
	CURL *curl = s->curl;
	metrics_add(MX_IMAP_CONNECTIONS_JOB, -1);
	uv_close((uv_handle_t *)&s->poll, on_closed);
	uv_close((uv_handle_t *)&s->timer, on_closed);
	uv_close((uv_handle_t *)&s->wait_timer, on_closed);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	uv_loop_close(&s->loop);
	imap_parser_free(s->parser);
	free(s->out);
	free(s);
	return curl;
}

void session_discard(struct session *s, const char *why)
{
	if (s)
		session_fail(s, "%s", why);
}

void session_close(struct session *s)
{
	if (!s)
		return;
	if (!s->failed) {
		int done = 0;
		struct session_handler none = { 0 };
		s->h = none;
		session_send(s, "LOGOUT");
		/* Best effort: a server that does not answer within a second is left behind. */
		uv_timer_start(&s->timer, on_timeout, 1000, 0);
		session_run_until(s, &done);
	}
	curl_easy_cleanup(session_free(s));
}

CURL *session_detach(struct session *s, char *caps, size_t capslen)
{
	if (!s)
		return NULL;
	if (!session_reusable(s)) {
		session_close(s);
		return NULL;
	}
	snprintf(caps, capslen, "%s", s->caps);
	return session_free(s);
}

void session_set_handler(struct session *s, const struct session_handler *h)
{
	s->h = *h;
}

unsigned session_send(struct session *s, const char *command)
{
	unsigned tag = ++s->next_tag;
	size_t need = strlen(command) + 24;
	if (s->out_len + need > s->out_cap) {
		size_t cap = (s->out_len + need) * 2;
		char *p = realloc(s->out, cap);
		if (!p) {
			session_fail(s, "out of memory");
			return tag;
		}
		s->out = p;
		s->out_cap = cap;
	}
	int n = snprintf(s->out + s->out_len, s->out_cap - s->out_len, "M%u %s\r\n", tag, command);
	s->out_len += (size_t)n;
	log_debug("account=%s msg=\"C: M%u %.*s\"", s->account, tag,
		  strncmp(command, "LOGIN", 5) == 0 ? 5 : 200, command);
	return tag;
}

int session_run_until(struct session *s, const int *done)
{
	while (!*done && !s->failed) {
		/* The wait timer wakes the loop every second, so a stop is seen even while a
		 * server says nothing. */
		if (s->stopping && *s->stopping)
			return -EINTR;
		flush_out(s);
		/* Decrypted bytes may already wait inside OpenSSL: drain before sleeping. */
		read_all(s);
		if (*done || s->failed)
			break;
		update_poll(s);
		uv_run(&s->loop, UV_RUN_ONCE);
	}
	return s->failed ? -EIO : 0;
}

void session_touch(struct session *s)
{
	progress(s);
}

const char *session_error(const struct session *s)
{
	return s->error;
}

const char *session_capabilities(const struct session *s)
{
	return s->caps;
}

int session_quote(char *buf, size_t size, const char *str)
{
	size_t k = 0;
	if (size < 3)
		return -E2BIG;
	buf[k++] = '"';
	for (const char *p = str; *p; p++) {
		if (*p == '\r' || *p == '\n')
			return -EINVAL;
		if (k + 4 >= size)
			return -E2BIG;
		if (*p == '"' || *p == '\\')
			buf[k++] = '\\';
		buf[k++] = *p;
	}
	buf[k++] = '"';
	buf[k] = 0;
	return 0;
}

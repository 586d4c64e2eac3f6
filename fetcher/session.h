/* One IMAP connection: libcurl opens it (TCP, TLS with verification, STARTTLS, SASL login),
 * then this module speaks raw IMAP over it with curl_easy_send/recv, the socket watched by a
 * libuv poll handle. Owns tags, the response parser and timeouts; knows no sync logic
 * (fetch.c drives it). */
#ifndef MP_SESSION_H
#define MP_SESSION_H

#include "imap_parser.h"

#include <curl/curl.h>

#include <signal.h>
#include <stddef.h>

struct session_opts {
	const char *account;	/* for messages only */
	const char *folder;	/* for messages only; "" for account-wide jobs */
	const char *host;
	long port;
	const char *tls;	/* "implicit", "starttls" or "none" */
	const char *username;
	const char *auth;	/* "password" or "xoauth2" */
	const char *secret;	/* borrowed; never logged */
	const char *ca_file;	/* NULL = system store */
	int tls_verify;
	long timeout_s;
	size_t max_literal;
	/* Called about once a second while the session waits for the server, login included,
	 * so a long wait does not look like a dead fetcher (claims and locks stay fresh). */
	void (*on_wait)(void *data);
	void *wait_data;
	/* Set by SIGTERM: a wait on the server ends within a second (session_run_until < 0). */
	volatile sig_atomic_t *stopping;
};

struct session;

/* Called for each untagged response, and for each tagged completion with its tag number.
 * The response is borrowed for the duration of the call. */
struct session_handler {
	void *data;
	void (*on_untagged)(void *data, const struct imap_response *r);
	void (*on_tagged)(void *data, unsigned tag, const struct imap_response *r);
};

/* Connects and logs in. NULL on failure with a one-line reason in err naming the account,
 * host:port and the server's or libcurl's words; *permanent set when retrying cannot help
 * (credentials refused, certificate not trusted, STARTTLS not offered). */
struct session *session_open(const struct session_opts *o, char *err, size_t errlen,
			     int *permanent);
/* Sends LOGOUT (best effort), closes and frees. NULL is fine. */
void session_close(struct session *s);
/* Marks the session unfit to keep (its view of the server is out of date): it is closed when
 * released rather than parked for the next job; why becomes its error. */
void session_discard(struct session *s, const char *why);

/* A session over a connection that is already logged in (kept from an earlier job or lent
 * by an IDLE watch; conn.c). Takes curl; NULL when out of memory (curl is then closed). */
struct session *session_adopt(const struct session_opts *o, CURL *curl, const char *caps);
/* Frees the session but keeps its connection, returned logged in, with no command
 * outstanding, for another job; NULL (and the connection closed) when it is not reusable.
 * caps receives the capabilities. NULL is fine. */
CURL *session_detach(struct session *s, char *caps, size_t capslen);
/* After curl logged in: its callbacks no longer point at the memory of whoever opened it. */
void session_curl_logged_in(CURL *c);
/* Commands the server completed (tagged answers) since the session began or was adopted:
 * 0 on a kept connection that failed means the server had dropped it meanwhile. */
unsigned long session_responses(const struct session *s);
/* The connection's curl handle (a key for budget.c; the session keeps owning it). */
CURL *session_curl(const struct session *s);
/* 1 when no command is outstanding and the connection has not failed. */
int session_reusable(const struct session *s);
/* Binds the session to another job: its names for messages, callbacks, stop flag; the
 * handler is cleared. */
void session_rebind(struct session *s, const struct session_opts *o);

void session_set_handler(struct session *s, const struct session_handler *h);

/* Queues "<tag> <command>\r\n" and returns the tag number (>0). command is sent as is: the
 * caller quotes arguments (session_quote). */
unsigned session_send(struct session *s, const char *command);

/* Runs the connection until *done becomes nonzero. 0, or <0 when the connection failed or
 * timed out (session_error tells why; the session is then unusable). */
int session_run_until(struct session *s, const int *done);

/* Restarts the silence timer, after the caller paused reading on purpose (raw budget). */
void session_touch(struct session *s);

/* One line naming what failed, "" if nothing. */
const char *session_error(const struct session *s);

/* Appends an IMAP quoted string of s to buf (size bytes), or returns -E2BIG/-EINVAL when it
 * cannot be quoted (CR/LF) or does not fit. */
int session_quote(char *buf, size_t size, const char *s);

/* Capability string the server announced during login ("" if none seen). */
const char *session_capabilities(const struct session *s);

#endif

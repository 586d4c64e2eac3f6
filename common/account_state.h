/* The account state machine: active, backoff (until next_sync_at), auth_failed, disabled, and
 * the one function that changes accounts.state. Callers report events (a failed or a good run,
 * a new secret, an operator's command); the table of transitions lives in account_state.c. */
#ifndef MP_ACCOUNT_STATE_H
#define MP_ACCOUNT_STATE_H

#include "config.h"

#include <libpq-fe.h>
#include <stdint.h>

enum account_state {
	ACCOUNT_ACTIVE,		/* scheduled every sync_interval_s */
	ACCOUNT_BACKOFF,	/* failed lately: scheduled again at next_sync_at, not before */
	ACCOUNT_AUTH_FAILED,	/* login refused: not scheduled until a new secret, a long wait, resume */
	ACCOUNT_DISABLED,	/* not scheduled, no push, no requests, until resumed */
	ACCOUNT_STATE_COUNT,
};

/* "active", "backoff", ... as stored in accounts.state; NULL outside the enum. */
const char *account_state_name(enum account_state s);
/* The enum of a stored name, or -1. */
int account_state_parse(const char *name);

/* The wait after failures in a row (1 = the first): base_ms doubled per failure, capped at
 * max_ms, with equal jitter (half fixed, half from rnd), never below hint_ms. Pure. */
int64_t account_backoff_ms(unsigned failures, int64_t base_ms, int64_t max_ms, int64_t hint_ms,
			   uint32_t rnd);

/* Is this fetcher error a refused login (or a secret that could not be read)? Those are not
 * retried: "auth failed for account ..." from the session, "account 'x': secret ..." */
int account_error_is_auth(const char *error);

/* A job of the account failed with error (its server's hint retry_after_ms, 0 if none).
 * folder_level is set for a folder job's error: it changes the account's state only when it
 * is a refused login or comes with a hint (a folder the server will not open is that folder's
 * business). Runs inside the caller's transaction. 0 or <0. */
int account_state_on_failure(PGconn *pg, const struct mp_config *cfg, long long account_id,
			     const char *error, long long retry_after_ms, int folder_level);
/* The account's server took a login and answered: back to active, failures forgotten. */
int account_state_on_success(PGconn *pg, long long account_id);

/* The scheduler's half: auth_failed accounts with a secret newer than their failure, or whose
 * MAILPIPE_AUTH_RETRY_S passed, become active and due now. Returns how many, or <0. */
int account_state_wake(PGconn *pg, const struct mp_config *cfg);

/* An operator's command by account name: `resume` (any state -> active, due now, failures
 * forgotten) or `disable`. Returns 1 when the state changed, 0 when it was so already,
 * -ENOENT for no such account, <0 on a database error. *from receives the old state. */
int account_state_command(PGconn *pg, const char *name, enum account_state to, const char *reason,
			  enum account_state *from);

#endif

/* The account state machine. Every change of accounts.state goes through set_state(), which
 * logs it; the events below decide the target. Not the scheduling itself (scheduler/schedule.c
 * reads the states), nor the retries inside a job (fetcher/retry.c). Called by the writer
 * (job outcomes), the scheduler (wake) and the CLI (resume, disable).
 *
 *   from \ event     failed run        refused login   login ok   secret new or   resume   disable
 *                    (or server hint)                             auth wait over
 *   active           backoff           auth_failed     -          -               -        disabled
 *   backoff          backoff (longer)  auth_failed     active     -               active   disabled
 *   auth_failed      -                 auth_failed     active     active          active   disabled
 *   disabled         -                 -               -          -               active   -
 */
#include "account_state.h"
#include "log.h"
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const names[ACCOUNT_STATE_COUNT] = {
	[ACCOUNT_ACTIVE] = "active",
	[ACCOUNT_BACKOFF] = "backoff",
	[ACCOUNT_AUTH_FAILED] = "auth_failed",
	[ACCOUNT_DISABLED] = "disabled",
};

const char *account_state_name(enum account_state s)
{
	return (unsigned)s < ACCOUNT_STATE_COUNT ? names[s] : NULL;
}

int account_state_parse(const char *name)
{
	for (int i = 0; name && i < ACCOUNT_STATE_COUNT; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

int64_t account_backoff_ms(unsigned failures, int64_t base_ms, int64_t max_ms, int64_t hint_ms,
			   uint32_t rnd)
{
	int64_t d = base_ms > 0 ? base_ms : 1;
	for (unsigned i = 1; i < failures && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* Equal jitter: accounts that failed together (one server down) come back spread over
	 * half their wait, never sooner than half of it. */
	d = d / 2 + (int64_t)(rnd % (uint32_t)(d / 2 + 1));
	return d < hint_ms ? hint_ms : d;
}

int account_error_is_auth(const char *error)
{
	if (!error)
		return 0;
	if (!strncmp(error, "auth failed", 11))
		return 1;
	/* The fetcher could not read the secret (fetch.c: "account 'x': ..."): only a new secret
	 * or an operator helps, as with a refused login. */
	return !strncmp(error, "account '", 9) && strstr(error, "secret") != NULL;
}

/* The one place the state changes. wait_ms >= 0 moves next_sync_at to now() + wait_ms (to the
 * later of that and the current value when keep_later); failures >= 0 replaces failure_count.
 * Returns 1 when the state changed, 0 when it stayed, <0. */
static int set_state(PGconn *pg, long long account_id, enum account_state to, long long wait_ms,
		     int keep_later, int failures, const char *reason, enum account_state *from)
{
	char id[24], wait[24], fails[24];
	snprintf(id, sizeof(id), "%lld", account_id);
	snprintf(wait, sizeof(wait), "%lld", wait_ms);
	snprintf(fails, sizeof(fails), "%d", failures);
	const char *p[] = { id, account_state_name(to), wait_ms >= 0 ? wait : NULL,
			    keep_later ? "t" : "f", failures >= 0 ? fails : NULL };
	PGresult *r = pg_exec_cached(
		pg, "set account state",
		"WITH o AS (SELECT id, state FROM accounts WHERE id = $1::bigint FOR UPDATE) "
		"UPDATE accounts a SET state = $2, "
		/* An auth failure restarts the clock a new secret is compared with. */
		" state_changed_at = CASE WHEN o.state <> $2 OR $2 = 'auth_failed' THEN now() "
		"   ELSE a.state_changed_at END, "
		" next_sync_at = CASE WHEN $3::bigint IS NULL THEN a.next_sync_at "
		"   WHEN $4::boolean THEN greatest(a.next_sync_at, now() + make_interval(secs => $3::bigint / 1000.0)) "
		"   ELSE now() + make_interval(secs => $3::bigint / 1000.0) END, "
		" failure_count = coalesce($5::int, a.failure_count) "
		"FROM o WHERE a.id = o.id "
		"RETURNING o.state, a.name, to_char(a.next_sync_at AT TIME ZONE 'UTC', "
		" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), a.failure_count",
		5, p);
	if (!r)
		return -EIO;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return -ENOENT;
	}
	int old = account_state_parse(PQgetvalue(r, 0, 0));
	if (from)
		*from = old < 0 ? ACCOUNT_ACTIVE : (enum account_state)old;
	int changed = old != (int)to;
	/* Into a failing state at warn (an operator wants to see it), out of one at info. */
	int failing = to == ACCOUNT_BACKOFF || to == ACCOUNT_AUTH_FAILED;
	if (changed || failing)
		log_at(failing ? LOG_WARN : LOG_INFO,
		       "account=%s state=%s->%s until=%s failures=%s msg=\"%.300s\"", PQgetvalue(r, 0, 1),
		       PQgetvalue(r, 0, 0), account_state_name(to), failing ? PQgetvalue(r, 0, 2) : "-",
		       PQgetvalue(r, 0, 3), reason);
	PQclear(r);
	return changed;
}

/* The account's state and failures in a row; with lock, locked until the caller's transaction
 * ends. A good job reads without: every cursor of a busy account would queue on its row. */
static int read_state(PGconn *pg, long long account_id, int lock, int *state, int *failures)
{
	char id[24];
	snprintf(id, sizeof(id), "%lld", account_id);
	const char *p[] = { id };
	PGresult *r = pg_exec_cached(pg, "read account state",
				     lock ? "SELECT state, failure_count FROM accounts WHERE id = $1::bigint FOR UPDATE"
					  : "SELECT state, failure_count FROM accounts WHERE id = $1::bigint",
				     1, p);
	if (!r)
		return -EIO;
	int n = PQntuples(r);
	if (n == 1) {
		*state = account_state_parse(PQgetvalue(r, 0, 0));
		*failures = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	return n == 1 ? 0 : -ENOENT;
}

int account_state_on_failure(PGconn *pg, const struct mp_config *cfg, long long account_id,
			     const char *error, long long retry_after_ms, int folder_level)
{
	int state, failures;
	int auth = account_error_is_auth(error);
	if (folder_level && !auth && retry_after_ms <= 0)
		return 0;
	int rc = read_state(pg, account_id, 1, &state, &failures);
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	/* Disabled stays disabled; a login refused stays refused whatever else fails meanwhile. */
	if (state == ACCOUNT_DISABLED || (state == ACCOUNT_AUTH_FAILED && !auth))
		return 0;
	if (auth)
		return set_state(pg, account_id, ACCOUNT_AUTH_FAILED, cfg->auth_retry_s * 1000LL, 1,
				 failures + 1, error, NULL) < 0 ? -EIO : 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint32_t rnd = (uint32_t)random() ^ (uint32_t)ts.tv_nsec ^ (uint32_t)(account_id * 2654435761u);
	int64_t wait = account_backoff_ms((unsigned)failures + 1, cfg->backoff_base_ms,
					  cfg->backoff_max_ms, retry_after_ms, rnd);
	return set_state(pg, account_id, ACCOUNT_BACKOFF, wait, 1, failures + 1, error, NULL) < 0
		       ? -EIO : 0;
}

int account_state_on_success(PGconn *pg, long long account_id)
{
	int state, failures;
	int rc = read_state(pg, account_id, 0, &state, &failures);
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	if (state == ACCOUNT_DISABLED || (state == ACCOUNT_ACTIVE && failures == 0))
		return 0;
	return set_state(pg, account_id, ACCOUNT_ACTIVE, -1, 0, 0, "the server took a login and answered",
			 NULL) < 0 ? -EIO : 0;
}

int account_state_wake(PGconn *pg, const struct mp_config *cfg)
{
	(void)cfg;
	PGresult *r = pg_exec(
		pg, "find auth_failed accounts to retry",
		"SELECT id, CASE WHEN secret_changed_at > state_changed_at THEN 'the secret changed; one "
		" more login' ELSE 'MAILPIPE_AUTH_RETRY_S passed; one more login' END FROM accounts "
		"WHERE state = 'auth_failed' AND (next_sync_at <= now() OR secret_changed_at > state_changed_at) "
		"ORDER BY next_sync_at LIMIT 1000",
		0, NULL);
	if (!r)
		return -EIO;
	int woken = 0;
	for (int i = 0; i < PQntuples(r); i++)
		if (set_state(pg, strtoll(PQgetvalue(r, i, 0), NULL, 10), ACCOUNT_ACTIVE, 0, 0, -1,
			      PQgetvalue(r, i, 1), NULL) > 0)
			woken++;
	PQclear(r);
	return woken;
}

int account_state_command(PGconn *pg, const char *name, enum account_state to, const char *reason,
			  enum account_state *from)
{
	const char *p[] = { name };
	if (pg_cmd(pg, "begin", "BEGIN", 0, NULL) < 0)
		return -EIO;
	PGresult *r = pg_exec(pg, "find account", "SELECT id, state FROM accounts WHERE name = $1 "
				  "FOR UPDATE", 1, p);
	int rc = -EIO;
	if (!r)
		goto out;
	if (PQntuples(r) != 1) {
		rc = -ENOENT;
		goto out;
	}
	long long id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	int old = account_state_parse(PQgetvalue(r, 0, 1));
	if (from)
		*from = old < 0 ? ACCOUNT_ACTIVE : (enum account_state)old;
	if (old == (int)to) {
		rc = 0;
		goto out;
	}
	/* Resumed is due now and starts its backoff afresh; disabled keeps its schedule. */
	rc = to == ACCOUNT_ACTIVE ? set_state(pg, id, to, 0, 0, 0, reason, NULL)
				  : set_state(pg, id, to, -1, 0, -1, reason, NULL);
out:
	PQclear(r);
	if (rc < 0 || pg_cmd(pg, "commit", "COMMIT", 0, NULL) < 0) {
		PQclear(PQexec(pg, "ROLLBACK"));
		return rc < 0 ? rc : -EIO;
	}
	return rc;
}

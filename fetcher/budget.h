/* Connection budgets: how many IMAP connections may be open at once to one account and to one
 * server host, across every fetcher. Each open connection holds a lease in Redis (a member of
 * {mp}:conn:acct:<id> and of {mp}:conn:host:<host>, scored by its expiry, renewed while the
 * connection lives), so a fetcher that dies gives its share back when its leases lapse.
 * Shared by the job thread (conn.c) and the IDLE thread (idle.c): calls are serialized. */
#ifndef MP_BUDGET_H
#define MP_BUDGET_H

#include "config.h"

#include <curl/curl.h>

struct budget;

struct budget *budget_new(const struct mp_config *cfg);
/* Gives every lease back. NULL is fine. */
void budget_free(struct budget *b);

/* The account's limit: its own (max_connections > 0), else its provider's (quirks.c). */
int budget_account_limit(const char *provider, long long max_connections);

/* Takes a lease for a connection about to be opened. >0: a ticket to bind (budget_bind) once
 * logged in, or to cancel (budget_cancel); 0: the account or host is at its limit (a job waits
 * and tries later; the fetcher holding parked connections of the account is told to close
 * them); <0: Redis failed (the connection is opened anyway: budgets never stop a sync). */
long budget_take(struct budget *b, long long account_id, const char *host, int account_limit);
void budget_bind(struct budget *b, long ticket, CURL *curl);
void budget_cancel(struct budget *b, long ticket);
/* The connection is closed (or about to be): its lease goes. Unknown curl is fine. */
void budget_closed(struct budget *b, CURL *curl);
/* Renews this process's leases when due (about every third of their lifetime). */
void budget_tick(struct budget *b);
/* wanted[i] = 1 when a fetcher found account_ids[i], or hosts[i], at its limit in the last
 * seconds: a connection parked for it should be closed rather than kept. One round trip. */
void budget_wanted(struct budget *b, size_t n, const long long *account_ids,
		   const char *const *hosts, unsigned char *wanted);

#endif

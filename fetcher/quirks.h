/* What the fetcher knows of particular providers, in one table read where a decision depends
 * on the server: which announced extensions not to trust, what to ask a message for, how many
 * connections an account may open. A capability the server does not announce is never used,
 * whatever the table says. */
#ifndef MP_QUIRKS_H
#define MP_QUIRKS_H

#include <stddef.h>

struct quirks {
	const char *provider;	/* accounts.provider */
	int no_condstore;	/* announced but not to be relied on */
	int no_qresync;		/* e.g. iCloud: its VANISHED answers are malformed */
	int gmail_ext;		/* X-GM-MSGID, X-GM-THRID, X-GM-LABELS where announced */
	int max_connections;	/* per account, IDLE included (the scale work reads it) */
	const char *note;	/* why, for the README and logs */
	int no_objectid;	/* OBJECTID / X-GM-MSGID announced but not to be relied on */
};

/* The row for provider; the generic row for an unknown or NULL one. Never NULL. */
const struct quirks *quirks_for(const char *provider);

/* 1 when caps (a CAPABILITY list, space-separated) holds name as a whole word, ignoring case
 * ("CONDSTORE" is not found in "XCONDSTORE"). */
int quirks_cap(const char *caps, const char *name);

/* CONDSTORE is used when announced (or implied by QRESYNC), not refused by the table for this
 * provider, and not turned off for the account. */
int quirks_use_condstore(const struct quirks *q, const char *caps, int account_off);

/* QRESYNC (RFC 7162: EXAMINE with the known state, VANISHED (EARLIER)) is used when announced,
 * CONDSTORE is in use, and neither the table nor the account refuses it. */
int quirks_use_qresync(const struct quirks *q, const char *caps, int condstore, int account_off);

/* The FETCH item naming a message's content for good (a move, a copy, a UIDVALIDITY change
 * keep it): "EMAILID" where OBJECTID (RFC 8474) is announced, "X-GM-MSGID" where the table
 * allows Gmail's extensions and X-GM-EXT-1 is announced; NULL otherwise. */
const char *quirks_object_id(const struct quirks *q, const char *caps);

/* Keeps the capability list of a server line that carries one ("* CAPABILITY ...", or
 * "A1 OK [CAPABILITY ...] Logged in") in caps (size bytes, always terminated); lines
 * without one leave caps alone. Reads len bytes of line, any length, no terminator needed. */
void quirks_caps_from_line(char *caps, size_t size, const char *line, size_t len);

#endif

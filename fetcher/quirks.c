/* The provider table; see quirks.h. */
#include "quirks.h"

#include <string.h>
#include <strings.h>

static const struct quirks table[] = {
	{ "imap", 0, 0, 1, 10, "generic IMAP4rev1: use what the server announces", 0 },
	{ "icloud", 0, 1, 0, 10,
	  "iCloud: BODY.PEEK[] only (BODY[] marks mail read); its QRESYNC VANISHED is malformed", 0 },
	{ "gmail", 0, 0, 1, 15,
	  "Gmail: labels are folders ([Gmail]/All Mail holds every message), X-GM-EXT-1 ids; "
	  "15 connections per account", 0 },
	{ "outlook", 0, 0, 0, 8,
	  "Office 365: throttles with 'Suggested Backoff Time', few connections per account", 0 },
	{ "yahoo", 0, 0, 0, 5, "Yahoo: few connections per account", 0 },
	{ "fastmail", 0, 0, 0, 10, "Fastmail (Cyrus): CONDSTORE, QRESYNC, OBJECTID as announced", 0 },
	/* no_objectid stays 0 everywhere: a server that announces OBJECTID is believed. A
	 * provider found to reuse EMAILIDs for different content gets 1 here. */
};

const struct quirks *quirks_for(const char *provider)
{
	for (size_t i = 0; provider && i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(table[i].provider, provider))
			return &table[i];
	return &table[0];
}

int quirks_cap(const char *caps, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = caps; p && *p;) {
		p += strspn(p, " ");
		size_t len = strcspn(p, " ");
		if (len == n && strncasecmp(p, name, n) == 0)
			return 1;
		p += len;
	}
	return 0;
}

int quirks_use_condstore(const struct quirks *q, const char *caps, int account_off)
{
	if (account_off || q->no_condstore)
		return 0;
	return quirks_cap(caps, "CONDSTORE") || quirks_cap(caps, "QRESYNC");
}

int quirks_use_qresync(const struct quirks *q, const char *caps, int condstore, int account_off)
{
	return condstore && !account_off && !q->no_qresync && quirks_cap(caps, "QRESYNC");
}

const char *quirks_object_id(const struct quirks *q, const char *caps)
{
	if (q->no_objectid)
		return NULL;
	if (quirks_cap(caps, "OBJECTID"))
		return "EMAILID";
	if (q->gmail_ext && quirks_cap(caps, "X-GM-EXT-1"))
		return "X-GM-MSGID";
	return NULL;
}

void quirks_caps_from_line(char *caps, size_t size, const char *line, size_t len)
{
	const char *cap = memmem(line, len, "CAPABILITY ", 11);
	if (!cap || size == 0)
		return;
	cap += 11;
	size_t left = len - (size_t)(cap - line), cl = 0;
	while (cl < left && cap[cl] != ']' && cap[cl] != '\r' && cap[cl] != '\n')
		cl++;
	if (cl >= size)
		cl = size - 1;
	memcpy(caps, cap, cl);
	caps[cl] = 0;
}

/* Unit tests for fetcher/quirks.c: the table's lookups and the capability word match that
 * decides whether an extension is used at all. */
#include "../../fetcher/quirks.h"
#include "test.h"

static void test_lookup(void)
{
	CHECK_EQ_STR(quirks_for("icloud")->provider, "icloud");
	CHECK(quirks_for("icloud")->no_qresync);
	CHECK(quirks_for("gmail")->gmail_ext);
	CHECK_EQ_INT(quirks_for("gmail")->max_connections, 15);
	CHECK_EQ_STR(quirks_for("nonesuch")->provider, "imap");
	CHECK_EQ_STR(quirks_for(NULL)->provider, "imap");
}

static void test_caps(void)
{
	const char *dovecot = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT CONDSTORE QRESYNC MOVE";
	CHECK(quirks_cap(dovecot, "CONDSTORE"));
	CHECK(quirks_cap(dovecot, "condstore"));
	CHECK(quirks_cap(dovecot, "IMAP4rev1"));
	CHECK(quirks_cap(dovecot, "MOVE"));
	CHECK(!quirks_cap(dovecot, "X-GM-EXT-1"));
	CHECK(!quirks_cap("XCONDSTORE CONDSTOREX", "CONDSTORE"));
	CHECK(!quirks_cap("", "IDLE"));
	CHECK(!quirks_cap(NULL, "IDLE"));
	CHECK(quirks_cap("  IDLE  ", "IDLE"));
}

static void test_condstore(void)
{
	const struct quirks *g = quirks_for("imap");
	CHECK(quirks_use_condstore(g, "IMAP4rev1 CONDSTORE", 0));
	CHECK(quirks_use_condstore(g, "IMAP4rev1 QRESYNC", 0));
	CHECK(!quirks_use_condstore(g, "IMAP4rev1 CONDSTORE", 1));
	/* Never used when not announced, whatever the table says. */
	CHECK(!quirks_use_condstore(g, "IMAP4rev1 IDLE", 0));
	CHECK(!quirks_use_condstore(g, "IMAP4rev1 XCONDSTORE", 0));
}

static void test_qresync(void)
{
	const struct quirks *g = quirks_for("imap"), *icloud = quirks_for("icloud");
	const char *caps = "IMAP4rev1 CONDSTORE QRESYNC";
	CHECK(quirks_use_qresync(g, caps, 1, 0));
	CHECK(!quirks_use_qresync(g, caps, 0, 0));	/* CONDSTORE off: no QRESYNC either */
	CHECK(!quirks_use_qresync(g, caps, 1, 1));	/* the account's --no-qresync */
	CHECK(!quirks_use_qresync(g, "IMAP4rev1 CONDSTORE", 1, 0)); /* not announced */
	/* iCloud announces it, but its VANISHED answers are malformed. */
	CHECK(!quirks_use_qresync(icloud, caps, 1, 0));
}

static void test_object_id(void)
{
	const struct quirks *g = quirks_for("imap"), *gm = quirks_for("gmail");
	CHECK_EQ_STR(quirks_object_id(g, "IMAP4rev1 OBJECTID MOVE"), "EMAILID");
	CHECK_EQ_STR(quirks_object_id(gm, "IMAP4rev1 X-GM-EXT-1"), "X-GM-MSGID");
	/* Never used when not announced; Gmail's ids only where the table allows them. */
	CHECK(quirks_object_id(g, "IMAP4rev1 XOBJECTID") == NULL);
	CHECK(quirks_object_id(quirks_for("icloud"), "IMAP4rev1 X-GM-EXT-1") == NULL);
	CHECK(quirks_object_id(gm, "IMAP4rev1 IDLE") == NULL);
	struct quirks off = *g;
	off.no_objectid = 1;
	CHECK(quirks_object_id(&off, "IMAP4rev1 OBJECTID") == NULL);
}

static void test_caps_line(void)
{
	char caps[4096] = "old";
	/* Dovecot 2.3's reply to AUTHENTICATE: 500 bytes, LIST-STATUS near the end. */
	const char *line = "A004 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT "
			   "SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND "
			   "URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
			   "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
			   "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE "
			   "SAVEDATE LITERAL+ NOTIFY SPECIAL-USE] Logged in\r\n";
	quirks_caps_from_line(caps, sizeof(caps), line, strlen(line));
	CHECK(quirks_cap(caps, "LIST-STATUS"));
	CHECK(quirks_cap(caps, "SPECIAL-USE"));
	CHECK(!quirks_cap(caps, "Logged"));
	/* A line without a list leaves the last one. */
	quirks_caps_from_line(caps, sizeof(caps), "* OK ready\r\n", 11);
	CHECK(quirks_cap(caps, "IDLE"));
	/* "* CAPABILITY" untagged, cut to the buffer, never overrun. */
	char small[16];
	const char *un = "* CAPABILITY IMAP4rev1 IDLE MOVE\r\n";
	quirks_caps_from_line(small, sizeof(small), un, strlen(un));
	CHECK_EQ_STR(small, "IMAP4rev1 IDLE ");
}

int main(void)
{
	TEST_RUN(test_caps_line);
	TEST_RUN(test_lookup);
	TEST_RUN(test_caps);
	TEST_RUN(test_condstore);
	TEST_RUN(test_qresync);
	TEST_RUN(test_object_id);
	return test_summary();
}

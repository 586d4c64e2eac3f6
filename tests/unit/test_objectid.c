/* Unit tests for fetcher/objectid.c's readers of server bytes: the id of a FETCH answer
 * (EMAILID's list, X-GM-MSGID's number) and EXAMINE's [MAILBOXID (...)] code; anything that is
 * not an RFC 8474 objectid (Cyrus 3.6's STATUS MAILBOXID garbage among it) is no id. */
#include "../../fetcher/objectid.h"
#include "imap_parser.h"
#include "test.h"

/* The value of item in the FETCH answer line, into buf via objectid_value; its result. */
static int id_of(const char *line, const char *item, char *buf, size_t size)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_response *r = NULL;
	int rc = -2;
	if (p && imap_parser_feed(p, line, strlen(line)) == 0 && imap_parser_next(p, &r) == 1 &&
	    r->nargs == 1)
		rc = objectid_value(imap_list_get(&r->args[0], item), buf, size);
	imap_parser_free(p);
	return rc;
}

static void test_fetch_ids(void)
{
	char buf[256];
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 EMAILID (Md0641620b0f44ee4c6892ae8))\r\n", "EMAILID", buf,
			   sizeof(buf)), 0);
	CHECK_EQ_STR(buf, "Md0641620b0f44ee4c6892ae8");
	CHECK_EQ_INT(id_of("* 2 FETCH (X-GM-MSGID 1278455344230334865 UID 9)\r\n", "X-GM-MSGID", buf,
			   sizeof(buf)), 0);
	CHECK_EQ_STR(buf, "1278455344230334865");
	/* Absent, NIL, empty, two values, bytes an objectid may not hold, too long for buf. */
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 FLAGS ())\r\n", "EMAILID", buf, sizeof(buf)), -1);
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 EMAILID NIL)\r\n", "EMAILID", buf, sizeof(buf)), -1);
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 EMAILID ())\r\n", "EMAILID", buf, sizeof(buf)), -1);
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 EMAILID (a b))\r\n", "EMAILID", buf, sizeof(buf)), -1);
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 EMAILID (\"M1.2\"))\r\n", "EMAILID", buf, sizeof(buf)), -1);
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 EMAILID (\xe8\x90\xf8-V))\r\n", "EMAILID", buf, sizeof(buf)), -1);
	CHECK_EQ_INT(id_of("* 1 FETCH (UID 4 EMAILID (M12345678))\r\n", "EMAILID", buf, 5), -1);
	CHECK(objectid_value(NULL, buf, sizeof(buf)) == -1);
}

static void test_mailbox_code(void)
{
	struct job j;
	memset(&j, 0, sizeof(j));
	struct imap_response r = { .status = IMAP_ST_OK };
	r.code = "MAILBOXID (F2212ea87-6097-4256-9d37-40939325f9b1)";
	objectid_on_code(&j, &r);
	CHECK_EQ_STR(j.mailbox_id, "F2212ea87-6097-4256-9d37-40939325f9b1");
	r.code = "UIDNEXT 5"; /* other codes leave it */
	objectid_on_code(&j, &r);
	CHECK_EQ_STR(j.mailbox_id, "F2212ea87-6097-4256-9d37-40939325f9b1");
	r.code = "MAILBOXID (\xe8 \x90\xf8-V)"; /* Cyrus 3.6's STATUS garbage: no id */
	objectid_on_code(&j, &r);
	CHECK_EQ_STR(j.mailbox_id, "");
}

int main(void)
{
	TEST_RUN(test_fetch_ids);
	TEST_RUN(test_mailbox_code);
	return test_summary();
}

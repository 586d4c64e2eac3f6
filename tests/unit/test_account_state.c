/* Unit tests for common/account_state.c's pure parts: the state names table, the per-account
 * backoff (1 min, 2, 4 ... capped, jittered, a server's hint obeyed) and which fetcher errors
 * count as a refused login. The transitions themselves run against Postgres in
 * tests/integration/test_states.sh. */
#include "account_state.h"
#include "test.h"

static void test_names(void)
{
	for (int s = 0; s < ACCOUNT_STATE_COUNT; s++)
		CHECK_EQ_INT(account_state_parse(account_state_name((enum account_state)s)), s);
	CHECK_EQ_STR(account_state_name(ACCOUNT_AUTH_FAILED), "auth_failed");
	CHECK_EQ_INT(account_state_parse("paused"), -1);
	CHECK_EQ_INT(account_state_parse(NULL), -1);
	CHECK(account_state_name(ACCOUNT_STATE_COUNT) == NULL);
}

static void test_backoff(void)
{
	const int64_t min = 60000, hour = 3600000;
	for (uint32_t rnd = 0; rnd < 5000; rnd += 7) {
		int64_t d1 = account_backoff_ms(1, min, hour, 0, rnd);
		int64_t d2 = account_backoff_ms(2, min, hour, 0, rnd);
		int64_t d3 = account_backoff_ms(3, min, hour, 0, rnd);
		int64_t d30 = account_backoff_ms(30, min, hour, 0, rnd);
		CHECK(d1 >= 30000 && d1 <= 60000);
		CHECK(d2 >= 60000 && d2 <= 120000);
		CHECK(d3 >= 120000 && d3 <= 240000);
		CHECK(d30 >= hour / 2 && d30 <= hour);
		/* Growing: the shortest wait after n+1 failures is the longest after n. */
		CHECK(d2 >= account_backoff_ms(1, min, hour, 0, rnd + 1));
	}
	CHECK(account_backoff_ms(2, min, hour, 0, 1) != account_backoff_ms(2, min, hour, 0, 12345));
	/* A server's hint wins when longer, also above the cap. */
	CHECK_EQ_INT(account_backoff_ms(1, min, hour, 7200000, 3), 7200000);
	CHECK(account_backoff_ms(4000000000u, min, hour, 0, 9) <= hour);
}

static void test_auth_errors(void)
{
	CHECK(account_error_is_auth("auth failed for account 'x' at imap.example:993: [AUTHENTICATIONFAILED] no"));
	CHECK(account_error_is_auth("account 'x': secret env:PW is not set in the fetcher's environment"));
	CHECK(!account_error_is_auth("account 'x' folder 'INBOX': connection refused"));
	CHECK(!account_error_is_auth("connect to imap.example:993 failed: Connection refused"));
	CHECK(!account_error_is_auth(NULL));
}

int main(void)
{
	TEST_RUN(test_names);
	TEST_RUN(test_backoff);
	TEST_RUN(test_auth_errors);
	return test_summary();
}

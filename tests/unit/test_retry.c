/* Unit tests for fetcher/retry.c: which server codes are worth a retry, the backoff hints
 * real servers send (Office 365, Dovecot, Gmail wording), and the jittered delay's bounds. */
#include "../../fetcher/retry.h"
#include "test.h"

static void test_classify(void)
{
	CHECK_EQ_INT(retry_classify("THROTTLED"), RETRY_TRANSIENT);
	CHECK_EQ_INT(retry_classify("unavailable"), RETRY_TRANSIENT);
	CHECK_EQ_INT(retry_classify("LIMIT"), RETRY_TRANSIENT);
	CHECK_EQ_INT(retry_classify("INUSE"), RETRY_TRANSIENT);
	CHECK_EQ_INT(retry_classify("AUTHENTICATIONFAILED"), RETRY_PERMANENT);
	CHECK_EQ_INT(retry_classify("EXPIRED"), RETRY_PERMANENT);
	CHECK_EQ_INT(retry_classify("THROTTLEDX"), RETRY_OTHER);
	CHECK_EQ_INT(retry_classify(""), RETRY_OTHER);
	CHECK_EQ_INT(retry_classify(NULL), RETRY_OTHER);
	CHECK_EQ_INT(retry_classify_text("A2 NO [THROTTLED] Request is throttled."), RETRY_TRANSIENT);
	CHECK_EQ_INT(retry_classify_text("NO [AUTHENTICATIONFAILED] Invalid credentials"), RETRY_PERMANENT);
	CHECK_EQ_INT(retry_classify_text("NO Login failed"), RETRY_OTHER);
	CHECK_EQ_INT(retry_classify_text(NULL), RETRY_OTHER);
	CHECK_EQ_INT(retry_classify_text("NO [ALERT] Too many simultaneous connections. (Failure)"), RETRY_TRANSIENT);
	CHECK_EQ_INT(retry_classify_text("NO [ALERT] Please log in via your web browser"), RETRY_OTHER);
}

static void test_hints(void)
{
	CHECK_EQ_INT(retry_hint_ms("[THROTTLED] Request is throttled. Suggested Backoff Time: 92415 milliseconds"), 92415);
	CHECK_EQ_INT(retry_hint_ms("Suggested Backoff Time: 2000 milliseconds"), 2000);
	CHECK_EQ_INT(retry_hint_ms("[UNAVAILABLE] Try again in 3 seconds"), 3000);
	CHECK_EQ_INT(retry_hint_ms("[LIMIT] Too many connections, try again in 2 minutes"), 120000);
	CHECK_EQ_INT(retry_hint_ms("Please retry after 30"), 30000);
	CHECK_EQ_INT(retry_hint_ms("[THROTTLED] Too many requests"), 0);
	CHECK_EQ_INT(retry_hint_ms("try again in a while"), 0);
	CHECK_EQ_INT(retry_hint_ms(NULL), 0);
	/* A hostile number is capped at a day, not overflowed. */
	CHECK_EQ_INT(retry_hint_ms("Suggested Backoff Time: 99999999999999999999 milliseconds"), 86400000);
	CHECK_EQ_INT(retry_hint_ms("try again in 999999999 minutes"), 86400000);
}

static void test_delay(void)
{
	/* Exponential, capped, half fixed and half random. */
	for (uint32_t rnd = 0; rnd < 5000; rnd += 7) {
		int64_t d1 = retry_delay_ms(1, 1000, 60000, 0, rnd);
		int64_t d3 = retry_delay_ms(3, 1000, 60000, 0, rnd);
		int64_t d9 = retry_delay_ms(9, 1000, 60000, 0, rnd);
		CHECK(d1 >= 500 && d1 <= 1000);
		CHECK(d3 >= 2000 && d3 <= 4000);
		CHECK(d9 >= 30000 && d9 <= 60000);
	}
	/* Jitter spreads: different random numbers give different delays. */
	CHECK(retry_delay_ms(2, 1000, 60000, 0, 1) != retry_delay_ms(2, 1000, 60000, 0, 777));
	/* The server's hint wins when it is longer. */
	CHECK_EQ_INT(retry_delay_ms(1, 1000, 60000, 92415, 3), 92415);
	CHECK(retry_delay_ms(4, 1000, 60000, 100, 3) >= 4000);
	/* No overflow for absurd attempt numbers. */
	CHECK(retry_delay_ms(4000000000u, 1000, 60000, 0, 9) <= 60000);
}

int main(void)
{
	TEST_RUN(test_classify);
	TEST_RUN(test_hints);
	TEST_RUN(test_delay);
	return test_summary();
}

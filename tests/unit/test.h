/* A tiny unit-test runner: each test file's main() calls TEST_RUN(fn) for every case and
 * returns test_summary(). Prints one "PASS name" / "FAIL name: why" line per case, which
 * tests/run.sh counts. Pure modules only: nothing here talks to a server. */
#ifndef MP_TEST_H
#define MP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_cases, test_passed_cases, test_case_failed;

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			printf("  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			test_case_failed = 1;                                             \
		}                                                                         \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                 \
	do {                                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);                        \
		if (a_ != b_) {                                                            \
			printf("  %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, \
			       b_);                                                        \
			test_case_failed = 1;                                              \
		}                                                                          \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                                   \
	do {                                                                                 \
		const char *a_ = (a), *b_ = (b);                                             \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                     \
			printf("  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
			       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                      \
			test_case_failed = 1;                                                \
		}                                                                            \
	} while (0)

/* A case that cannot run here (missing corpus) is reported, not counted as passed. */
#define TEST_SKIP(why)                                                  \
	do {                                                            \
		printf("SKIP %s: %s\n", __func__, why);                 \
		test_case_failed = -1;                                  \
		return;                                                 \
	} while (0)

#define TEST_RUN(fn)                                               \
	do {                                                       \
		test_case_failed = 0;                              \
		fn();                                              \
		if (test_case_failed > 0) {                        \
			printf("FAIL %s\n", #fn);                  \
			test_failed_cases++;                       \
		} else if (test_case_failed == 0) {                \
			printf("PASS %s\n", #fn);                  \
			test_passed_cases++;                       \
		}                                                  \
		fflush(stdout);                                    \
	} while (0)

static inline int test_summary(void)
{
	return test_failed_cases ? 1 : 0;
}

#endif

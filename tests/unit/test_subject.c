/* Unit tests for parser/subject.c: RFC 5256 section 2.1's steps one by one, each reply and
 * forward prefix, list tags, whitespace, and the reply flag.
 * Run by `make unit` / tests/run.sh; pure, no servers. */
#include "../../parser/subject.h"

#include "test.h"

/* Checks the base subject and the reply flag of one input. */
#define EXPECT_BASE(in, want, reply)                                  \
	do {                                                          \
		char *got_ = subject_base(in);                        \
		if (got_ == NULL || strcmp(got_, want) != 0)          \
			printf("  input: \"%s\"\n", in);              \
		CHECK_EQ_STR(got_, want);                             \
		free(got_);                                           \
		if (subject_is_reply(in) != (reply))                  \
			printf("  input: \"%s\"\n", in);              \
		CHECK_EQ_INT(subject_is_reply(in), reply);            \
	} while (0)

static void test_subject_plain(void)
{
	EXPECT_BASE("Meeting tomorrow", "Meeting tomorrow", 0);
	EXPECT_BASE("", "", 0);
	/* (1) whitespace: runs become one space, both ends trimmed. */
	EXPECT_BASE("  Lots \t of\r\n  space  ", "Lots of space", 0);
	/* Words that merely start like a prefix stay. */
	EXPECT_BASE("Reply needed", "Reply needed", 0);
	EXPECT_BASE("Review: Q3 numbers", "Review: Q3 numbers", 0);
	EXPECT_BASE("Fwdx: no", "Fwdx: no", 0);
	EXPECT_BASE("Re no colon", "Re no colon", 0);
	EXPECT_BASE("Trip: Paris", "Trip: Paris", 0);
	CHECK(subject_base(NULL) == NULL);
	CHECK_EQ_INT(subject_is_reply(NULL), 0);
}

/* RFC 5256 2.1 steps (2)-(6), with its grammar's own forms. */
static void test_subject_rfc5256(void)
{
	/* (3) subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" */
	EXPECT_BASE("Re: hello", "hello", 1);
	EXPECT_BASE("re: hello", "hello", 1);
	EXPECT_BASE("RE: hello", "hello", 1);
	EXPECT_BASE("re :hello", "hello", 1);
	EXPECT_BASE("Re[2]: hello", "hello", 1);
	EXPECT_BASE("Re [2] : hello", "hello", 1);
	EXPECT_BASE("Fw: hello", "hello", 1);
	EXPECT_BASE("Fwd: hello", "hello", 1);
	EXPECT_BASE("FW: hello", "hello", 1);
	EXPECT_BASE("Fwd[3]: hello", "hello", 1);
	EXPECT_BASE("Re: Re: RE: Fwd: hello", "hello", 1);
	EXPECT_BASE("Re:Re:hello", "hello", 1);
	/* (3) blobs before a refwd go with it; (4) a lone leading blob goes when text follows. */
	EXPECT_BASE("[foo] Re: [bar] Fwd: x", "x", 1);
	EXPECT_BASE("[list] Re: topic", "topic", 1);
	EXPECT_BASE("Re: [list] topic", "topic", 1);
	EXPECT_BASE("[list] topic", "topic", 0);
	EXPECT_BASE("[a][b] [c] topic", "topic", 0);
	EXPECT_BASE("[only a tag]", "[only a tag]", 0);
	EXPECT_BASE("Re: [only a tag]", "[only a tag]", 1);
	/* (2) subj-trailer. */
	EXPECT_BASE("hello (fwd)", "hello", 1);
	EXPECT_BASE("hello (FWD) (fwd)  ", "hello", 1);
	EXPECT_BASE("(fwd) hello", "(fwd) hello", 0);
	/* (6) subj-fwd-hdr and subj-fwd-trl, then everything again. */
	EXPECT_BASE("[Fwd: hello]", "hello", 1);
	EXPECT_BASE("[fwd: Re: [list] hello (fwd)]", "hello", 1);
	EXPECT_BASE("Re: [Fwd: hello]", "hello", 1);
	EXPECT_BASE("[Fwd: unclosed", "[Fwd: unclosed", 0);
	/* The result may be empty, as in the RFC. */
	EXPECT_BASE("Re:", "", 1);
	EXPECT_BASE("Re: Fwd:  ", "", 1);
	EXPECT_BASE("(fwd)", "", 1);
}

static void test_subject_prefixes(void)
{
	static const char *const prefixes[] = {
		"Re:", "RE:", "re :", "Re[2]:", "Re(2):", "Re (12) :", "Fwd:", "Fw:", "FW:",
		"Fwd[3]:", "AW:", "Aw:", "WG:", "SV:", "Sv:", "VS:", "VB:", "TR:", "Antw:", "ANTW:",
		"Doorst:", "Rif:", "RIF:", "R:", "Odp:", "ODP:", "Ynt:", "YNT:", "RES:", "ENC:", "RV:",
		"\xCE\x91\xCE\xA0:",                                 /* ΑΠ: */
		"\xCE\xB1\xCF\x80:",                                 /* απ: */
		"\xCE\xA3\xCE\xA7\xCE\x95\xCE\xA4:",                 /* ΣΧΕΤ: */
		"\xD0\x9E\xD1\x82\xD0\xB2:",                         /* Отв: */
		"\xD0\x9E\xD0\xA2\xD0\x92:",                         /* ОТВ: */
		"\xE5\x9B\x9E\xE5\xA4\x8D:",                         /* 回复: */
		"\xE5\x9B\x9E\xE8\xA6\x86:",                         /* 回覆: */
		"\xE7\xAD\x94\xE5\xA4\x8D:",                         /* 答复: */
		"\xE8\xBD\xAC\xE5\x8F\x91:",                         /* 转发: */
		"\xE8\xBD\x89\xE5\xAF\x84:",                         /* 轉寄: */
		"\xE8\xBF\x94\xE4\xBF\xA1:",                         /* 返信: */
		"\xE8\xBB\xA2\xE9\x80\x81:",                         /* 転送: */
		"\xE5\x9B\x9E\xE5\xA4\x8D\xEF\xBC\x9A",              /* 回复： */
		"\xE8\xBB\xA2\xE9\x80\x81\xEF\xBC\x9A",              /* 転送： */
		"Re\xEF\xBC\x9A",                                    /* Re： */
	};
	size_t i;

	for (i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		char in[64];

		snprintf(in, sizeof in, "%s Quarterly report", prefixes[i]);
		EXPECT_BASE(in, "Quarterly report", 1);
		snprintf(in, sizeof in, "%sQuarterly report", prefixes[i]);
		EXPECT_BASE(in, "Quarterly report", 1);
	}
	/* Mixed, as threads that cross languages get them. */
	EXPECT_BASE("AW: Re: WG: SV: Antw: status", "status", 1);
	/* Ideographic space (U+3000) after a full-width colon counts as whitespace. */
	EXPECT_BASE("\xE5\x9B\x9E\xE5\xA4\x8D\xEF\xBC\x9A\xE3\x80\x80\xE4\xBC\x9A\xE8\xAE\xAE",
		    "\xE4\xBC\x9A\xE8\xAE\xAE", 1); /* 回复：　会议 -> 会议 */
	/* A no-break space is whitespace too. */
	EXPECT_BASE("Re:\xC2\xA0hello", "hello", 1);
}

static void test_subject_unicode_kept(void)
{
	/* Non-prefix text, invalid bytes included, passes unchanged. */
	EXPECT_BASE("Caf\xC3\xA9 \xE2\x80\x94 menu", "Caf\xC3\xA9 \xE2\x80\x94 menu", 0);
	EXPECT_BASE("Re: \xFF\xFE odd", "\xFF\xFE odd", 1);
	EXPECT_BASE("\xCE\xB1\xCF\x80\xCF\x8C \xCF\x84\xCE\xB7", "\xCE\xB1\xCF\x80\xCF\x8C \xCF\x84\xCE\xB7", 0);
}

int main(void)
{
	TEST_RUN(test_subject_plain);
	TEST_RUN(test_subject_rfc5256);
	TEST_RUN(test_subject_prefixes);
	TEST_RUN(test_subject_unicode_kept);
	return test_summary();
}

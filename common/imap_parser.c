/* IMAP response parser: a resumable byte scanner frames one response (lines and literals) and
 * records its tokens; once the response is complete, a builder turns them into imap_value trees
 * in place. No I/O, no command semantics. Callers: fetcher session, unit tests, fuzz target. */
#include "imap_parser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum scan_state {
	SC_BEGIN,	 /* first byte of a response; blank lines are skipped here */
	SC_BEGIN_CR,	 /* CR of a blank line */
	SC_PLUS,	 /* after "+" */
	SC_STAR,	 /* after "*" */
	SC_TAG,		 /* in the tag */
	SC_WORD,	 /* in the number, status word or response name */
	SC_TEXT_START,	 /* after a status word or "+ ": a [code] or text follows */
	SC_CODE,	 /* inside [code] */
	SC_CODE_Q,	 /* in a quoted string inside [code] */
	SC_CODE_QESC,	 /* after a backslash there */
	SC_CODE_AFTER,	 /* after the closing ] */
	SC_TEXT,	 /* free text up to end of line */
	SC_ARGS,	 /* data response: between values */
	SC_ATOM,	 /* in an atom */
	SC_ATOM_BR,	 /* in an atom's [...] part */
	SC_ATOM_BR_Q,	 /* in a quoted string there */
	SC_ATOM_BR_QESC, /* after a backslash there */
	SC_QUOTED,	 /* in a quoted string */
	SC_QUOTED_ESC,	 /* after a backslash there */
	SC_AFTER_STR,	 /* after a quoted string or literal: a delimiter must follow */
	SC_TILDE,	 /* "~" at the start of a value: literal8 or atom */
	SC_LIT_SIZE,	 /* in the digits of {n} */
	SC_LIT_PLUS,	 /* after the + of {n+} */
	SC_LIT_CLOSE,	 /* after }: end of line must follow */
	SC_LIT_CR,	 /* after the CR of that end of line */
	SC_LIT_DATA,	 /* in literal bytes */
	SC_CR,		 /* CR at the end of the response */
	SC_STRAY_CR,	 /* CR of a line end tolerated inside a list after a literal */
};

enum tok_type { TOK_ATOM, TOK_QUOTED, TOK_LITERAL, TOK_LIST };

/* One value of the response being scanned; offsets are relative to the response's start so
 * that compacting the buffer while a response is partial does not invalidate them. */
struct tok {
	unsigned char type;
	size_t off; /* first byte of the contents */
	size_t len; /* bytes of contents (raw, before unescaping); lists: number of items */
};

struct imap_parser {
	struct imap_limits lim;
	char *buf;
	size_t cap, len;   /* buf[0..len) holds fed bytes */
	size_t rstart;	   /* buf offset of the response being scanned or last returned */
	uint64_t consumed; /* stream offset of buf[rstart], for error messages */
	int have_resp;	   /* resp is out on loan and covers buf[rstart..rstart+resp_end) */
	int err;
	char errmsg[512];

	/* Scan state of the current response; every offset is relative to rstart. */
	enum scan_state st;
	size_t pos, linelen, line_start, resp_end;
	size_t word_off, tag_end, name_off, name_end;
	size_t code_off, code_end, text_off, line_end;
	int has_code;
	int after_literal; /* only SP seen since a literal ended */
	size_t bdepth;	   /* [ nesting in an atom's section or a response code */
	size_t lit_size, lit_left;
	int lit_digits;
	enum imap_resp_kind kind;
	enum imap_status status;
	int has_number;
	uint32_t number;
	struct tok *toks;
	size_t ntok, tok_cap;
	size_t *stack; /* indexes into toks of the open lists */
	size_t depth, stack_cap;
	size_t nargs;

	struct imap_value *vals;
	size_t vals_cap;
	struct imap_response resp;
};

#define BUF_MIN 4096
#define BUF_SHRINK_ABOVE (1u << 20)
#define ERR_CONTEXT 48

void imap_limits_default(struct imap_limits *lim)
{
	lim->max_line = 64 * 1024;
	lim->max_literal = 64 * 1024 * 1024;
	lim->max_depth = 32;
	lim->max_tokens = 1000000;
	lim->max_response = 128 * 1024 * 1024;
}

static void scan_reset(struct imap_parser *p)
{
	p->st = SC_BEGIN;
	p->pos = p->linelen = p->line_start = p->resp_end = 0;
	p->word_off = p->tag_end = p->name_off = p->name_end = 0;
	p->code_off = p->code_end = p->text_off = p->line_end = 0;
	p->has_code = 0;
	p->after_literal = 0;
	p->bdepth = p->lit_size = p->lit_left = 0;
	p->lit_digits = 0;
	p->kind = IMAP_RESP_UNTAGGED;
	p->status = IMAP_ST_NONE;
	p->has_number = 0;
	p->number = 0;
	p->ntok = p->depth = p->nargs = 0;
}

struct imap_parser *imap_parser_new(const struct imap_limits *lim)
{
	struct imap_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (lim)
		p->lim = *lim;
	else
		imap_limits_default(&p->lim);
	scan_reset(p);
	return p;
}

void imap_parser_free(struct imap_parser *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p->toks);
	free(p->stack);
	free(p->vals);
	free(p);
}

const char *imap_parser_error(const struct imap_parser *p)
{
	return p->errmsg;
}

size_t imap_parser_buffered(const struct imap_parser *p)
{
	size_t done = p->rstart + (p->have_resp ? p->resp_end : 0);

	return p->len - done;
}

size_t imap_parser_memory(const struct imap_parser *p)
{
	return sizeof(*p) + p->cap + p->tok_cap * sizeof(*p->toks) +
	       p->stack_cap * sizeof(*p->stack) + p->vals_cap * sizeof(*p->vals);
}

/* Appends s[0..n) to the string in out, escaped so that the message stays one printable line
 * whatever the server sent. */
static void escape_bytes(char *out, size_t outsz, const unsigned char *s, size_t n)
{
	size_t o = strlen(out);

	for (size_t i = 0; i < n && o + 5 < outsz; i++) {
		unsigned char c = s[i];

		if (c == '\r' || c == '\n' || c == '\t') {
			out[o++] = '\\';
			out[o++] = c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
		} else if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(out + o, outsz - o, "\\x%02x", c);
			o += 4;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

/* Records the stream's fatal error. The context shown is the response's last bytes up to and
 * including the offending one at `at`, or the line's start when the line is the problem. */
static int parser_fail(struct imap_parser *p, int code, size_t at, int show_start, const char *what)
{
	const unsigned char *b = (const unsigned char *)p->buf + p->rstart;
	size_t avail = p->len - p->rstart;
	size_t from, to;

	if (at >= avail)
		at = avail ? avail - 1 : 0;
	if (show_start) {
		from = p->line_start;
		to = from + ERR_CONTEXT < at + 1 ? from + ERR_CONTEXT : at + 1;
	} else {
		from = at > ERR_CONTEXT ? at - ERR_CONTEXT : 0;
		to = avail ? at + 1 : 0;
	}
	if (from > to)
		from = to;
	snprintf(p->errmsg, sizeof(p->errmsg), "%s at stream offset %llu near \"%s", what,
		 (unsigned long long)(p->consumed + at), from > 0 ? "..." : "");
	escape_bytes(p->errmsg, sizeof(p->errmsg), b + from, to - from);
	size_t o = strlen(p->errmsg);
	snprintf(p->errmsg + o, sizeof(p->errmsg) - o, "%s\"",
		 show_start && to < at + 1 ? "..." : "");
	p->err = code;
	return code;
}

static int parser_failf(struct imap_parser *p, int code, size_t at, int show_start, const char *fmt,
			unsigned long long n)
{
	char what[160];

	snprintf(what, sizeof(what), fmt, n);
	return parser_fail(p, code, at, show_start, what);
}

static int tok_add(struct imap_parser *p, enum tok_type type, size_t off, size_t at)
{
	if (p->ntok >= p->lim.max_tokens)
		return parser_failf(p, -E2BIG, at, 0,
				    "response has more than max_tokens (%llu) values",
				    (unsigned long long)p->lim.max_tokens);
	if (p->ntok == p->tok_cap) {
		size_t cap = p->tok_cap ? p->tok_cap * 2 : 64;
		struct tok *t =
		    cap <= SIZE_MAX / sizeof(*t) ? realloc(p->toks, cap * sizeof(*t)) : NULL;

		if (!t)
			return parser_fail(p, -ENOMEM, at, 0, "out of memory for tokens");
		p->toks = t;
		p->tok_cap = cap;
	}
	p->toks[p->ntok] = (struct tok){.type = (unsigned char)type, .off = off, .len = 0};
	if (p->depth)
		p->toks[p->stack[p->depth - 1]].len++;
	else
		p->nargs++;
	p->ntok++;
	return 0;
}

static int list_open(struct imap_parser *p, size_t at)
{
	int rc;

	if (p->depth >= p->lim.max_depth)
		return parser_failf(p, -E2BIG, at, 0, "lists nested deeper than max_depth (%llu)",
				    p->lim.max_depth);
	rc = tok_add(p, TOK_LIST, at, at);
	if (rc < 0)
		return rc;
	if (p->depth == p->stack_cap) {
		size_t cap = p->stack_cap ? p->stack_cap * 2 : 16;
		size_t *s = realloc(p->stack, cap * sizeof(*s));

		if (!s)
			return parser_fail(p, -ENOMEM, at, 0, "out of memory for list nesting");
		p->stack = s;
		p->stack_cap = cap;
	}
	p->stack[p->depth++] = p->ntok - 1;
	return 0;
}

static int is_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c);
}

/* Response names and status words: atom characters without brackets, so "OK[" splits. */
static int is_word_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\[]", c);
}

static int is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static enum imap_status status_of(const char *w, size_t n)
{
	static const struct {
		const char *word;
		enum imap_status st;
	} words[] = {{"OK", IMAP_ST_OK},
		     {"NO", IMAP_ST_NO},
		     {"BAD", IMAP_ST_BAD},
		     {"BYE", IMAP_ST_BYE},
		     {"PREAUTH", IMAP_ST_PREAUTH}};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i].word) == n && strncasecmp(w, words[i].word, n) == 0)
			return words[i].st;
	return IMAP_ST_NONE;
}

/* The word in [word_off, i) has ended at byte c: decide what the response is. Returns 0 and
 * sets p->st (the caller reprocesses c unless `consumed` is set), or a negative error. */
static int word_end(struct imap_parser *p, const unsigned char *b, size_t i, unsigned char c,
		    int *consumed)
{
	const char *w = (const char *)b + p->word_off;
	size_t n = i - p->word_off;
	int eol = c == '\r' || c == '\n';

	*consumed = 0;
	if (n == 0)
		return parser_fail(p, -EPROTO, i, 0, "missing response name");
	if (p->kind == IMAP_RESP_UNTAGGED && !p->has_number && w[0] >= '0' && w[0] <= '9') {
		uint64_t v = 0;

		for (size_t k = 0; k < n; k++) {
			if (w[k] < '0' || w[k] > '9')
				return parser_fail(p, -EPROTO, i, 0, "bad message number");
			v = v * 10 + (uint64_t)(w[k] - '0');
			if (v > UINT32_MAX)
				return parser_fail(p, -EPROTO, i, 0, "message number out of range");
		}
		if (c != ' ')
			return parser_fail(p, -EPROTO, i, 0, "missing response name after number");
		p->has_number = 1;
		p->number = (uint32_t)v;
		p->word_off = i + 1;
		*consumed = 1;
		return 0; /* stay in SC_WORD for the name */
	}
	if (!p->has_number)
		p->status = status_of(w, n);
	if (p->status != IMAP_ST_NONE) {
		if (c != ' ' && c != '[' && !eol)
			return parser_fail(p, -EPROTO, i, 0, "bad byte after status word");
		p->st = SC_TEXT_START;
		*consumed = c == ' ';
		return 0;
	}
	if (p->kind == IMAP_RESP_TAGGED)
		return parser_fail(p, -EPROTO, i, 0, "tagged response is not OK/NO/BAD");
	if (c != ' ' && c != '(' && !eol)
		return parser_fail(p, -EPROTO, i, 0, "bad byte in response name");
	p->name_off = p->word_off;
	p->name_end = i;
	p->st = SC_ARGS;
	*consumed = c == ' ';
	return 0;
}

/* The line of a status response or continuation ended without closing its [code]: the code
 * was just text that starts with "[". */
static void code_unclosed(struct imap_parser *p)
{
	p->has_code = 0;
	p->text_off = p->code_off - 1;
	p->st = SC_TEXT;
}

/* Advances over buffered bytes. 1 = a response is complete (resp_end set), 0 = need more,
 * <0 = error. Every byte is looked at once: pos remembers where the last call stopped. */
static int parser_scan(struct imap_parser *p)
{
	const unsigned char *b = (const unsigned char *)p->buf + p->rstart;
	size_t n = p->len - p->rstart;
	size_t i = p->pos;
	int rc, consumed;

	while (i < n) {
		unsigned char c;

		if (p->st == SC_LIT_DATA) {
			size_t k = n - i < p->lit_left ? n - i : p->lit_left;

			i += k;
			p->lit_left -= k;
			if (p->lit_left == 0) {
				p->st = SC_AFTER_STR;
				p->line_start = i;
				p->after_literal = 1;
			}
			continue;
		}
		if (p->lim.max_response && i >= p->lim.max_response)
			return parser_failf(p, -E2BIG, i, 0,
					    "response longer than max_response (%llu)",
					    (unsigned long long)p->lim.max_response);
		if (++p->linelen > p->lim.max_line)
			return parser_failf(p, -E2BIG, i, 1, "line longer than max_line (%llu)",
					    (unsigned long long)p->lim.max_line);
		c = b[i];
	redo:
		switch (p->st) {
		case SC_BEGIN:
			if (c == '\r') {
				p->st = SC_BEGIN_CR;
			} else if (c == '\n') {
				goto blank_line;
			} else if (c == '+') {
				p->kind = IMAP_RESP_CONTINUE;
				p->st = SC_PLUS;
			} else if (c == '*') {
				p->kind = IMAP_RESP_UNTAGGED;
				p->st = SC_STAR;
			} else if (c == '[') {
				/* Exchange/Office365 sends "[COPYUID ...]" lines with no "* OK "
				 * (MailKit issue 115); read them as the untagged OK they stand for.
				 */
				p->kind = IMAP_RESP_UNTAGGED;
				p->status = IMAP_ST_OK;
				p->st = SC_TEXT_START;
				goto redo;
			} else if (is_tag_char(c)) {
				p->kind = IMAP_RESP_TAGGED;
				p->st = SC_TAG;
			} else {
				return parser_fail(p, -EPROTO, i, 0,
						   "bad byte at start of response");
			}
			break;
		case SC_BEGIN_CR:
			if (c != '\n')
				return parser_fail(p, -EPROTO, i, 0, "CR not followed by LF");
		blank_line:
			/* Drop the blank line so the response starts at buf[rstart]. */
			p->rstart += i + 1;
			p->consumed += i + 1;
			b += i + 1;
			n -= i + 1;
			i = 0;
			p->linelen = 0;
			p->st = SC_BEGIN;
			continue;
		case SC_PLUS:
			p->st = SC_TEXT_START;
			if (c == ' ')
				break;
			goto redo;
		case SC_STAR:
			if (c != ' ')
				return parser_fail(p, -EPROTO, i, 0, "expected SP after \"*\"");
			p->word_off = i + 1;
			p->st = SC_WORD;
			break;
		case SC_TAG:
			if (c == ' ') {
				p->tag_end = i;
				p->word_off = i + 1;
				p->st = SC_WORD;
			} else if (!is_tag_char(c)) {
				return parser_fail(p, -EPROTO, i, 0, "bad byte in tag");
			}
			break;
		case SC_WORD:
			if (is_word_char(c))
				break;
			rc = word_end(p, b, i, c, &consumed);
			if (rc < 0)
				return rc;
			if (consumed)
				break;
			goto redo;
		case SC_TEXT_START:
			if (c == '[') {
				p->has_code = 1;
				p->code_off = i + 1;
				p->bdepth = 0;
				p->st = SC_CODE;
				break;
			}
			p->text_off = i;
			p->st = SC_TEXT;
			goto redo;
		case SC_CODE:
			if (c == ']' && p->bdepth == 0) {
				p->code_end = i;
				p->st = SC_CODE_AFTER;
			} else if (c == ']') {
				p->bdepth--;
			} else if (c == '[') {
				p->bdepth++;
			} else if (c == '"') {
				p->st = SC_CODE_Q;
			} else if (c == '\r' || c == '\n') {
				code_unclosed(p);
				goto redo;
			} else if (c == '\0') {
				return parser_fail(p, -EPROTO, i, 0, "NUL in response code");
			}
			break;
		case SC_CODE_Q:
		case SC_CODE_QESC:
			if (c == '\r' || c == '\n') {
				code_unclosed(p);
				goto redo;
			} else if (c == '\0') {
				return parser_fail(p, -EPROTO, i, 0, "NUL in response code");
			} else if (p->st == SC_CODE_QESC) {
				p->st = SC_CODE_Q;
			} else if (c == '\\') {
				p->st = SC_CODE_QESC;
			} else if (c == '"') {
				p->st = SC_CODE;
			}
			break;
		case SC_CODE_AFTER:
			p->st = SC_TEXT;
			if (c == ' ') {
				p->text_off = i + 1;
				break;
			}
			p->text_off = i;
			goto redo;
		case SC_TEXT:
			if (c == '\r') {
				p->line_end = i;
				p->st = SC_CR;
			} else if (c == '\n') {
				p->line_end = i;
				goto done;
			} else if (c == '\0') {
				return parser_fail(p, -EPROTO, i, 0, "NUL in response text");
			}
			break;
		case SC_CR:
			if (c != '\n')
				return parser_fail(p, -EPROTO, i, 0, "CR not followed by LF");
			goto done;
		case SC_STRAY_CR:
			if (c != '\n')
				return parser_fail(p, -EPROTO, i, 0, "CR not followed by LF");
		stray_lf:
			p->linelen = 0;
			p->line_start = i + 1;
			p->st = SC_ARGS;
			break;
		case SC_AFTER_STR:
			if (c == ' ') {
				p->st = SC_ARGS;
				break;
			}
			if (c != '(' && c != ')' && c != '\r' && c != '\n')
				return parser_fail(p, -EPROTO, i, 0, "expected SP after string");
			p->st = SC_ARGS;
			goto redo;
		case SC_ARGS:
			if (c == ' ')
				break;
			if ((c == '\r' || c == '\n') && p->depth && p->after_literal) {
				/* Some servers count a literal without its last CRLF (MailKit issue
				 * 954), leaving a line end inside the list: read it as a space. */
				p->after_literal = 0;
				if (c == '\r') {
					p->st = SC_STRAY_CR;
					break;
				}
				goto stray_lf;
			}
			p->after_literal = 0;
			if (c == '(') {
				rc = list_open(p, i);
				if (rc < 0)
					return rc;
			} else if (c == ')') {
				if (p->depth == 0)
					return parser_fail(p, -EPROTO, i, 0, "unbalanced \")\"");
				p->depth--;
			} else if (c == '"') {
				rc = tok_add(p, TOK_QUOTED, i + 1, i);
				if (rc < 0)
					return rc;
				p->st = SC_QUOTED;
			} else if (c == '{') {
				p->lit_size = 0;
				p->lit_digits = 0;
				p->st = SC_LIT_SIZE;
			} else if (c == '~') {
				p->word_off = i;
				p->st = SC_TILDE;
			} else if (c == '\r' || c == '\n') {
				if (p->depth)
					return parser_fail(p, -EPROTO, i, 0,
							   "list not closed at end of line");
				p->line_end = i;
				if (c == '\n')
					goto done;
				p->st = SC_CR;
			} else if (is_ctl(c)) {
				return parser_fail(p, -EPROTO, i, 0,
						   "control byte outside literal");
			} else {
				rc = tok_add(p, TOK_ATOM, i, i);
				if (rc < 0)
					return rc;
				p->st = SC_ATOM;
				goto redo;
			}
			break;
		case SC_TILDE:
			if (c == '{') {
				p->lit_size = 0;
				p->lit_digits = 0;
				p->st = SC_LIT_SIZE;
				break;
			}
			rc = tok_add(p, TOK_ATOM, p->word_off, i);
			if (rc < 0)
				return rc;
			p->st = SC_ATOM;
			goto redo;
		case SC_ATOM:
			if (c == '[') {
				p->bdepth = 0;
				p->st = SC_ATOM_BR;
			} else if (c == ' ' || c == '(' || c == ')' || c == '"' || c == '{' ||
				   c == '\r' || c == '\n') {
				struct tok *t = &p->toks[p->ntok - 1];

				t->len = i - t->off;
				p->st = SC_ARGS;
				if (c != ' ')
					goto redo;
			} else if (is_ctl(c)) {
				return parser_fail(p, -EPROTO, i, 0, "control byte in atom");
			}
			break;
		case SC_ATOM_BR:
			if (c == ']' && p->bdepth == 0)
				p->st = SC_ATOM;
			else if (c == ']')
				p->bdepth--;
			else if (c == '[')
				p->bdepth++;
			else if (c == '"')
				p->st = SC_ATOM_BR_Q;
			else if (is_ctl(c))
				return parser_fail(p, -EPROTO, i, 0, "\"[\" not closed in atom");
			break;
		case SC_ATOM_BR_Q:
		case SC_ATOM_BR_QESC:
		case SC_QUOTED:
		case SC_QUOTED_ESC:
			if (c == '\r' || c == '\n' || c == '\0')
				return parser_fail(p, -EPROTO, i, 0, "quoted string not closed");
			if (p->st == SC_ATOM_BR_QESC) {
				p->st = SC_ATOM_BR_Q;
			} else if (p->st == SC_QUOTED_ESC) {
				p->st = SC_QUOTED;
			} else if (c == '\\') {
				p->st = p->st == SC_QUOTED ? SC_QUOTED_ESC : SC_ATOM_BR_QESC;
			} else if (c == '"' && p->st == SC_ATOM_BR_Q) {
				p->st = SC_ATOM_BR;
			} else if (c == '"') {
				struct tok *t = &p->toks[p->ntok - 1];

				t->len = i - t->off;
				p->st = SC_AFTER_STR;
			}
			break;
		case SC_LIT_SIZE:
			if (c >= '0' && c <= '9') {
				size_t d = (size_t)(c - '0');

				if (p->lit_size > (p->lim.max_literal - d) / 10 ||
				    p->lit_size * 10 + d > p->lim.max_literal)
					return parser_failf(
					    p, -E2BIG, i, 0,
					    "literal larger than max_literal (%llu)",
					    (unsigned long long)p->lim.max_literal);
				p->lit_size = p->lit_size * 10 + d;
				p->lit_digits = 1;
			} else if (c == '+' && p->lit_digits) {
				p->st = SC_LIT_PLUS;
			} else if (c == '}' && p->lit_digits) {
				p->st = SC_LIT_CLOSE;
			} else {
				return parser_fail(p, -EPROTO, i, 0, "bad literal size");
			}
			break;
		case SC_LIT_PLUS:
			if (c != '}')
				return parser_fail(p, -EPROTO, i, 0, "bad literal size");
			p->st = SC_LIT_CLOSE;
			break;
		case SC_LIT_CLOSE:
		case SC_LIT_CR:
			if (c == '\r' && p->st == SC_LIT_CLOSE) {
				p->st = SC_LIT_CR;
				break;
			}
			if (c != '\n')
				return parser_fail(p, -EPROTO, i, 0,
						   "literal size not followed by end of line");
			if (p->lim.max_response && p->lit_size > p->lim.max_response - (i + 1))
				return parser_failf(p, -E2BIG, i, 0,
						    "response longer than max_response (%llu)",
						    (unsigned long long)p->lim.max_response);
			rc = tok_add(p, TOK_LITERAL, i + 1, i);
			if (rc < 0)
				return rc;
			p->toks[p->ntok - 1].len = p->lit_size;
			p->lit_left = p->lit_size;
			p->linelen = 0;
			p->line_start = i + 1;
			p->st = p->lit_size ? SC_LIT_DATA : SC_AFTER_STR;
			p->after_literal = p->lit_size == 0;
			break;
		case SC_LIT_DATA:
			break; /* handled above the switch */
		}
		i++;
	}
	p->pos = i;
	return 0;

done:
	p->pos = p->resp_end = i + 1;
	return 1;
}

/* Fills dst[0..n) from the tokens at *ti onwards (preorder), taking list item arrays from
 * p->vals at *vi. Recursion depth is bounded by max_depth, enforced while scanning. */
static void build_values(struct imap_parser *p, char *base, struct imap_value *dst, size_t n,
			 size_t *ti, size_t *vi)
{
	for (size_t k = 0; k < n; k++) {
		const struct tok *t = &p->toks[(*ti)++];
		struct imap_value *v = &dst[k];
		char *s = base + t->off;

		memset(v, 0, sizeof(*v));
		switch ((enum tok_type)t->type) {
		case TOK_ATOM:
			if (t->len == 3 && strncasecmp(s, "NIL", 3) == 0) {
				v->type = IMAP_V_NIL;
				break;
			}
			v->type = IMAP_V_ATOM;
			v->s = s;
			v->len = t->len;
			/* The byte after an atom is a delimiter already scanned. */
			s[t->len] = '\0';
			break;
		case TOK_QUOTED: {
			size_t o = 0;

			for (size_t j = 0; j < t->len; j++) {
				if (s[j] == '\\' && j + 1 < t->len)
					j++;
				s[o++] = s[j];
			}
			s[o] = '\0';
			v->type = IMAP_V_STRING;
			v->s = s;
			v->len = o;
			break;
		}
		case TOK_LITERAL:
			v->type = IMAP_V_LITERAL;
			v->s = s;
			v->len = t->len;
			s[t->len] = '\0';
			break;
		case TOK_LIST:
			v->type = IMAP_V_LIST;
			v->n = t->len;
			v->items = t->len ? p->vals + *vi : NULL;
			*vi += t->len;
			build_values(p, base, v->items, v->n, ti, vi);
			break;
		}
	}
}

/* Turns the scanned response into p->resp, writing NULs over delimiters in the buffer. */
static int parser_build(struct imap_parser *p)
{
	char *base = p->buf + p->rstart;
	struct imap_response *r = &p->resp;

	memset(r, 0, sizeof(*r));
	r->kind = p->kind;
	r->status = p->status;
	r->has_number = p->has_number;
	r->number = p->number;
	if (p->kind == IMAP_RESP_TAGGED) {
		base[p->tag_end] = '\0';
		r->tag = base;
	}
	if (p->kind == IMAP_RESP_CONTINUE || p->status != IMAP_ST_NONE) {
		if (p->has_code) {
			base[p->code_end] = '\0';
			r->code = base + p->code_off;
		}
		base[p->line_end] = '\0';
		r->text = base + p->text_off;
		return 0;
	}
	if (p->ntok > p->vals_cap) {
		size_t cap = p->vals_cap ? p->vals_cap : 64;
		struct imap_value *v;

		while (cap < p->ntok)
			cap *= 2;
		v = cap <= SIZE_MAX / sizeof(*v) ? realloc(p->vals, cap * sizeof(*v)) : NULL;
		if (!v)
			return parser_fail(p, -ENOMEM, p->resp_end - 1, 0,
					   "out of memory for values");
		p->vals = v;
		p->vals_cap = cap;
	}
	if (p->nargs) {
		size_t ti = 0, vi = p->nargs;

		r->args = p->vals;
		r->nargs = p->nargs;
		build_values(p, base, r->args, r->nargs, &ti, &vi);
	}
	base[p->name_end] = '\0';
	r->name = base + p->name_off;
	return 0;
}

/* Moves the unconsumed bytes to the front. Called only when that costs no more than the bytes
 * already consumed, or when room is needed, so feeding stays linear overall; a buffer that
 * grew for a huge literal is given back once it is mostly empty. */
static void parser_compact(struct imap_parser *p)
{
	size_t used = p->len - p->rstart;

	if (p->rstart) {
		memmove(p->buf, p->buf + p->rstart, used);
		p->len = used;
		p->rstart = 0;
	}
	if (p->cap > BUF_SHRINK_ABOVE && used < p->cap / 4) {
		size_t cap = used * 2 > BUF_MIN ? used * 2 : BUF_MIN;
		char *b = realloc(p->buf, cap);

		if (b) {
			p->buf = b;
			p->cap = cap;
		}
	}
}

static void parser_release(struct imap_parser *p)
{
	if (!p->have_resp)
		return;
	p->have_resp = 0;
	p->rstart += p->resp_end;
	p->consumed += p->resp_end;
	scan_reset(p);
	if (p->rstart >= p->len - p->rstart)
		parser_compact(p);
}

int imap_parser_feed(struct imap_parser *p, const void *buf, size_t len)
{
	parser_release(p);
	if (p->err || len == 0)
		return 0;
	if (len > p->cap - p->len)
		parser_compact(p);
	if (len > p->cap - p->len) {
		size_t need = p->len + len;
		size_t cap = p->cap ? p->cap : BUF_MIN;
		char *b;

		if (need < len)
			return -ENOMEM;
		while (cap < need) {
			if (cap > SIZE_MAX / 2)
				return -ENOMEM;
			cap *= 2;
		}
		b = realloc(p->buf, cap);
		if (!b)
			return -ENOMEM;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, buf, len);
	p->len += len;
	return 0;
}

int imap_parser_next(struct imap_parser *p, struct imap_response **out)
{
	int rc;

	*out = NULL;
	if (p->err)
		return p->err;
	parser_release(p);
	rc = parser_scan(p);
	if (rc <= 0)
		return rc;
	rc = parser_build(p);
	if (rc < 0)
		return rc;
	p->have_resp = 1;
	*out = &p->resp;
	return 1;
}

const struct imap_value *imap_list_get(const struct imap_value *list, const char *key)
{
	if (!list || list->type != IMAP_V_LIST || !key)
		return NULL;
	for (size_t i = 0; i + 1 < list->n; i += 2) {
		const struct imap_value *k = &list->items[i];

		if ((k->type == IMAP_V_ATOM || k->type == IMAP_V_STRING) && imap_value_is(k, key))
			return &list->items[i + 1];
	}
	return NULL;
}

int imap_value_is(const struct imap_value *v, const char *atom)
{
	size_t n;

	if (!v || !atom)
		return 0;
	if (v->type == IMAP_V_NIL)
		return strcasecmp(atom, "NIL") == 0;
	if (v->type != IMAP_V_ATOM && v->type != IMAP_V_STRING && v->type != IMAP_V_LITERAL)
		return 0;
	n = strlen(atom);
	return v->len == n && strncasecmp(v->s, atom, n) == 0;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int imap_value_u64(const struct imap_value *v, uint64_t *out)
{
	if (!v || (v->type != IMAP_V_ATOM && v->type != IMAP_V_STRING))
		return -EINVAL;
	return parse_u64(v->s, v->len, out);
}

int imap_response_code_u64(const struct imap_response *r, const char *key, uint64_t *out)
{
	size_t k, n;
	const char *num;

	if (!r || !r->code || !key)
		return -ENOENT;
	k = strlen(key);
	if (strncasecmp(r->code, key, k) != 0 || (r->code[k] != ' ' && r->code[k] != '\0'))
		return -ENOENT;
	if (r->code[k] == '\0')
		return -EINVAL;
	num = r->code + k + 1;
	n = strcspn(num, " ");
	return parse_u64(num, n, out);
}

/* Owns the body cleaner declared in clean.h: a UTF-8 pass for invisible characters, then
 * hand-written line classifiers (no regex, every look-ahead bounded) for forwards, quotes,
 * signatures, footers and link lines. No I/O, no state between calls. Called via clean.h. */
#include "clean.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)
#define MAX_INPUT ((size_t)1 << 30)
#define ATTR_MAX_BYTES 500 /* an attribution ("On <date>, <name> wrote:") never is longer */
#define ATTR_MAX_LINES 5   /* ... nor wrapped over more lines, before the upward extension */
#define HBLOCK_MAX 32      /* lines of one forwarded/replied header block */
#define TAIL_LINES 40      /* footers are looked for in this many last non-empty lines */

enum { EOL_NONE, EOL_LF, EOL_CRLF, EOL_CR };
enum { LAB_NONE, LAB_FROM, LAB_DATE, LAB_TO, LAB_CC, LAB_SUBJECT, LAB_OTHER };
enum { MK_NONE, MK_FWD, MK_ORIG };
enum { C_BLANK, C_T, C_Q, C_X };

#define LF_SEG 0x01   /* first line of a forwarded region: signatures and footers stop here */
#define LF_FENCE 0x02 /* inside a ``` code block: never classified */

/* Attribution evidence of one line, computed on demand and cached in cline.af. */
#define AF_DONE 0x01
#define AF_AT 0x02
#define AF_TIME 0x04
#define AF_DATE 0x08
#define AF_YEAR 0x10
#define AF_MID 0x20   /* a "wrote"-like word somewhere in the line */
#define AF_START 0x40 /* begins like an attribution: "On ", "Am ", a digit, ... */
#define AF_NUMDATE 0x80 /* begins with 2013/7/20 or 2016-03-03 */

/* Signature and footer evidence of one line, cached in cline.tf. */
#define TF_SIG_DONE 0x01
#define TF_MOBILE 0x02  /* "Sent from my iPhone" and the like */
#define TF_FOOT_DONE 0x04
#define TF_FOOTER 0x08  /* opens a list or marketing footer by its own words */
#define TF_CONF 0x10    /* may open a confidentiality notice */
#define TF_LIST_DONE 0x20
#define TF_LIST 0x40    /* names a mailing list */

struct cline {
	uint32_t co, cn; /* classification view: text after the quote prefix, trimmed */
	uint32_t oo, on; /* output view: the whole line without its end */
	uint8_t eol;
	uint8_t depth; /* '>' quote level, capped at 255 */
	uint8_t base;  /* quote level of the forwarded region the line belongs to */
	uint8_t keep;
	uint8_t flags;
	uint8_t lab; /* label family + 1, 0 = not computed yet */
	uint8_t af;
	uint8_t tf; /* tail evidence (TF_*), computed on demand: pass_tails may run twice */
};

/* The bytes a line can start with and still begin some phrase of a word list: one test
 * instead of one per phrase. Made from the list by first_bytes_of() on first use in a call. */
struct first_bytes {
	uint64_t bit[4];
	int ready;
};

enum { WL_SIG_APP_ANY, WL_SIG_APP_SHORT, WL_FOOTER_START, WL_FOOTER_WORDS, WL_CONF_START, WL_N };

struct cleaner {
	const char *cb; /* classification text: invisible characters always removed */
	const char *ob; /* output text: invisible characters removed only with the step */
	struct cline *l;
	size_t n;
	unsigned steps;
	int hint_fwd;
	size_t fk; /* no kept non-empty line lies before this index */
	struct first_bytes first[WL_N];
	struct first_bytes attr_last; /* last bytes of attr_end, see ends_attr_phrase */
};

struct str {
	const char *s;
	size_t n;
};

/* ---- small text helpers (ASCII case-insensitive, other bytes exact) ---- */

static int lc(int ch)
{
	return (unsigned)(ch - 'A') < 26 ? ch + 32 : ch;
}

static int is_alpha(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

/* Bytes of a word: ASCII letters and digits, and every non-ASCII byte. */
static int is_wordb(unsigned char ch)
{
	return is_alpha(ch) || is_digit(ch) || ch >= 0x80;
}

static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);

/* One character of s lower-cased for comparing: ASCII, Latin-1, Latin Extended-A, Greek and
 * Cyrillic capitals (what the labels and phrases of the word lists below begin with). */
static size_t fold(const unsigned char *s, size_t n, uint32_t *out)
{
	uint32_t cp;
	size_t k = utf8_seq(s, n, &cp);

	if (k == 0) {
		*out = 0x80000000u | s[0];
		return 1;
	}
	if ((cp >= 'A' && cp <= 'Z') || (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) ||
	    (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) || (cp >= 0x410 && cp <= 0x42F))
		cp += 32;
	else if (cp >= 0x400 && cp <= 0x40F)
		cp += 80;
	else if (cp == 0x130)
		cp = 'i';
	else if (((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) && !(cp & 1))
		cp++;
	else if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) && (cp & 1))
		cp++;
	*out = cp;
	return k;
}

/* 0 when characters starting with bytes a and b cannot be equal after fold(), decided without
 * decoding them: ASCII folds only to ASCII, and only U+0130 (lead byte C4) folds to ASCII;
 * characters of three or four bytes (leads E0-F4) are never folded, so they differ when their
 * lead bytes do. Lines of Chinese or Russian text go through every ASCII phrase of the word
 * lists below, and this keeps each of those comparisons to a few instructions. */
static int first_may_match(unsigned char a, unsigned char b)
{
	if (a < 0x80 && b < 0x80)
		return lc(a) == lc(b);
	if (a == b)
		return 1;
	if (a < 0x80 || b < 0x80)
		return a == 0xC4 || b == 0xC4;
	return a < 0xE0 && b < 0xE0;
}

/* Bytes of s that match p ignoring case, 0 if s does not start with p. Called for every line
 * against every phrase of the word lists, so it never measures p first: most calls end at the
 * first byte. p is a NUL-terminated literal of valid UTF-8, so a multi-byte character of p
 * never runs past its NUL. */
static size_t starts_ci(const char *s, size_t n, const char *p)
{
	const unsigned char *a = (const unsigned char *)s, *b = (const unsigned char *)p;
	size_t i = 0, j = 0, ka, kb;
	uint32_t x, y;

	while (b[j]) {
		if (i >= n)
			return 0;
		if (a[i] < 0x80 && b[j] < 0x80) {
			if (lc(a[i]) != lc(b[j]))
				return 0;
			i++;
			j++;
			continue;
		}
		if (!first_may_match(a[i], b[j]))
			return 0;
		ka = fold(a + i, n - i, &x);
		kb = fold(b + j, 4, &y);
		if (x != y)
			return 0;
		i += ka;
		j += kb;
	}
	return i;
}

static int eq_ci(const char *s, size_t n, const char *p)
{
	return n && first_may_match((unsigned char)s[0], (unsigned char)p[0]) && strlen(p) == n &&
	       starts_ci(s, n, p) == n;
}

static int ends_ci(const char *s, size_t n, const char *p)
{
	size_t k = strlen(p);

	return k <= n && starts_ci(s + n - k, k, p) == k;
}

static const char *find_ci(const char *s, size_t n, const char *p)
{
	size_t k = strlen(p), i;

	if (k == 0 || k > n)
		return NULL;
	for (i = 0; i + k <= n; i++)
		if (lc((unsigned char)s[i]) == lc((unsigned char)p[0]) && starts_ci(s + i, k, p))
			return s + i;
	return NULL;
}

static int starts_any(const char *s, size_t n, const char *const *list)
{
	unsigned char c0 = n ? (unsigned char)s[0] : 0;

	if (n == 0)
		return 0;
	for (; *list; list++) {
		/* Nearly every line fails on its first byte: decide that without a call. */
		if (!first_may_match(c0, (unsigned char)**list))
			continue;
		if (starts_ci(s, n, *list))
			return 1;
	}
	return 0;
}

static void first_bytes_add(struct first_bytes *f, unsigned char b)
{
	f->bit[b >> 6] |= (uint64_t)1 << (b & 63);
}

/* Every byte that can start a character equal after fold() to the one a phrase starts with:
 * see first_may_match. A two-byte character and its fold differ by at most one in their lead
 * byte (0x420 'Р' is D0 A0, 0x440 'р' is D1 80). */
static void first_bytes_of(struct first_bytes *f, const char *const *list)
{
	unsigned char b;

	memset(f->bit, 0, sizeof(f->bit));
	for (; *list; list++) {
		b = (unsigned char)**list;
		if (b < 0x80) {
			first_bytes_add(f, (unsigned char)lc(b));
			if (b >= 'a' && b <= 'z')
				first_bytes_add(f, (unsigned char)(b - 32));
			if (lc(b) == 'i')
				first_bytes_add(f, 0xC4);
		} else if (b >= 0xE0) {
			first_bytes_add(f, b);
		} else {
			first_bytes_add(f, (unsigned char)(b - 1));
			first_bytes_add(f, b);
			first_bytes_add(f, (unsigned char)(b + 1));
			if (b == 0xC4) {
				first_bytes_add(f, 'i');
				first_bytes_add(f, 'I');
			}
		}
	}
	f->ready = 1;
}

static int find_any(const char *s, size_t n, const char *const *list)
{
	for (; *list; list++)
		if (find_ci(s, n, *list))
			return 1;
	return 0;
}

static struct str content(const struct cleaner *c, size_t i)
{
	struct str t = { c->cb + c->l[i].co, c->l[i].cn };
	return t;
}

static int is_blank(const struct cleaner *c, size_t i)
{
	return c->l[i].depth == 0 && c->l[i].cn == 0;
}

static unsigned eff_depth(const struct cleaner *c, size_t i, unsigned base)
{
	unsigned d = c->l[i].depth;
	return d > base ? d - base : 0;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (1-4) with its code point, or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		if (n < 2 || (s[1] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if (c >= 0xE0 && c <= 0xEF) {
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
		if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
		if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
		      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		return 4;
	}
	return 0;
}

static int cp_invisible(uint32_t cp)
{
	if (cp < 0x20)
		return cp != '\t' && cp != '\n' && cp != '\r';
	if (cp < 0x7F)
		return 0;
	if (cp <= 0x9F)
		return 1; /* DEL and the C1 controls */
	return cp == 0xAD || cp == 0x34F || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
	       (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB);
}

static int cp_nbsp(uint32_t cp)
{
	return cp == 0xA0 || cp == 0x2007 || cp == 0x202F;
}

static int cp_emoji(uint32_t cp)
{
	return (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2600 && cp <= 0x27BF) ||
	       (cp >= 0x2B00 && cp <= 0x2BFF) || cp == 0xFE0F;
}

/* A byte that is not valid UTF-8 is most often Latin-1 or Windows-1252 mislabelled as UTF-8:
 * read it so, but in at most two bytes so that the output stays within 2 * len. */
static size_t invalid_byte(unsigned char b, int strip, char *d)
{
	if (b >= 0xA0) {
		if (strip && b == 0xA0) {
			d[0] = ' ';
			return 1;
		}
		if (strip && b == 0xAD)
			return 0;
		d[0] = (char)(0xC0 | (b >> 6));
		d[1] = (char)(0x80 | (b & 0x3F));
		return 2;
	}
	switch (b) {
	case 0x91:
	case 0x92:
		d[0] = '\'';
		break;
	case 0x93:
	case 0x94:
		d[0] = '"';
		break;
	case 0x96:
	case 0x97:
		d[0] = '-';
		break;
	default:
		d[0] = '?';
	}
	return 1;
}

/* Whether the 8 bytes at s are all printable ASCII (0x20-0x7E): bytes below 0x20 borrow
 * in the first test, bytes above 0x7E carry into their top bit in the second. */
static int printable8(const unsigned char *s)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	uint64_t x;

	memcpy(&x, s, 8);
	return (((x - 0x20 * ones) & ~x) | (x + ones) | x) & high ? 0 : 1;
}

/* Writes the valid UTF-8 form of s[0..n) to d (room for 2 * n bytes), without NULs, and with
 * strip also without invisible characters and with no-break spaces as spaces. A zero-width
 * joiner between two emoji stays: it is what makes them one picture. */
static size_t utf8_clean(const unsigned char *s, size_t n, int strip, char *d)
{
	size_t i = 0, o = 0, k, k2;
	uint32_t cp, next, prev = 0;

	while (i < n) {
		/* Most text is printable ASCII, copied as it is eight bytes at a time. */
		if (i + 8 <= n && printable8(s + i)) {
			memcpy(d + o, s + i, 8);
			prev = s[i + 7];
			i += 8;
			o += 8;
			continue;
		}
		if (s[i] >= 0x20 && s[i] < 0x7F) {
			prev = s[i];
			d[o++] = (char)s[i++];
			continue;
		}
		k = utf8_seq(s + i, n - i, &cp);
		if (k == 0) {
			o += invalid_byte(s[i], strip, d + o);
			prev = '?';
			i++;
			continue;
		}
		if (cp == 0) {
			i += k;
			continue;
		}
		if (strip && cp_nbsp(cp)) {
			d[o++] = ' ';
			prev = ' ';
			i += k;
			continue;
		}
		if (strip && cp_invisible(cp)) {
			k2 = i + k < n ? utf8_seq(s + i + k, n - i - k, &next) : 0;
			if (!(cp == 0x200D && cp_emoji(prev) && k2 && cp_emoji(next))) {
				i += k;
				continue;
			}
		}
		/* one to four bytes: no call to memcpy for each */
		d[o] = (char)s[i];
		if (k > 1) {
			d[o + 1] = (char)s[i + 1];
			if (k > 2) {
				d[o + 2] = (char)s[i + 2];
				if (k > 3)
					d[o + 3] = (char)s[i + 3];
			}
		}
		o += k;
		i += k;
		prev = cp;
	}
	return o;
}

/* ---- word lists ---- */

/* Header labels as mail clients print them above a forwarded or replied message. */
struct label {
	const char *name;
	unsigned char len;
	unsigned char fam;
};

#define L(name, fam) { name, sizeof(name) - 1, fam }

static const struct label labels[] = {
	L("From", LAB_FROM), L("De", LAB_FROM), L("De la", LAB_FROM), L("Von", LAB_FROM),
	L("Van", LAB_FROM), L("Da", LAB_FROM), L("Od", LAB_FROM), L("Fra", LAB_FROM),
	L("Från", LAB_FROM), L("Frá", LAB_FROM), L("Lähettäjä", LAB_FROM), L("Feladó", LAB_FROM),
	L("Kimden", LAB_FROM), L("Gönderen", LAB_FROM), L("От", LAB_FROM), L("Від", LAB_FROM),
	L("Від кого", LAB_FROM), L("Šalje", LAB_FROM), L("Saatja", LAB_FROM),
	L("Nadawca", LAB_FROM), L("Mittente", LAB_FROM), L("Expéditeur", LAB_FROM),
	L("Expeditorul", LAB_FROM), L("Expeditor", LAB_FROM), L("Remitente", LAB_FROM),
	L("Afzender", LAB_FROM), L("Avsändare", LAB_FROM), L("Afsender", LAB_FROM),
	L("Odesílatel", LAB_FROM), L("Absender", LAB_FROM), L("Отправитель", LAB_FROM),
	L("送信元", LAB_FROM), L("差出人", LAB_FROM), L("发件人", LAB_FROM), L("寄件者", LAB_FROM),
	L("寄件人", LAB_FROM), L("보낸 사람", LAB_FROM), L("보낸사람", LAB_FROM),
	L("Αποστολέας", LAB_FROM), L("Pošiljatelj", LAB_FROM), L("Pengirim", LAB_FROM),
	L("Người gửi", LAB_FROM), L("Sender", LAB_FROM),

	L("Date", LAB_DATE), L("Sent", LAB_DATE), L("Datum", LAB_DATE), L("Gesendet", LAB_DATE),
	L("Envoyé", LAB_DATE), L("Envoyé le", LAB_DATE), L("Enviado", LAB_DATE),
	L("Enviado el", LAB_DATE), L("Enviada em", LAB_DATE), L("Enviado em", LAB_DATE),
	L("Enviada", LAB_DATE), L("Fecha", LAB_DATE), L("Data", LAB_DATE), L("Inviato", LAB_DATE),
	L("Verzonden", LAB_DATE), L("Skickat", LAB_DATE), L("Sendt", LAB_DATE),
	L("Dato", LAB_DATE), L("Lähetetty", LAB_DATE), L("Päivämäärä", LAB_DATE),
	L("Päiväys", LAB_DATE), L("Wysłano", LAB_DATE), L("Wysłane", LAB_DATE),
	L("Odesláno", LAB_DATE), L("Odoslané", LAB_DATE), L("Dátum", LAB_DATE),
	L("Elküldve", LAB_DATE), L("Dată", LAB_DATE), L("Trimis", LAB_DATE),
	L("Отправлено", LAB_DATE), L("Дата", LAB_DATE), L("Надіслано", LAB_DATE),
	L("Tarih", LAB_DATE), L("Gönderildi", LAB_DATE), L("Poslano", LAB_DATE),
	L("Kuupäev", LAB_DATE), L("Saadetud", LAB_DATE), L("送信日時", LAB_DATE),
	L("日付", LAB_DATE), L("发送时间", LAB_DATE), L("發送時間", LAB_DATE), L("日期", LAB_DATE),
	L("時間", LAB_DATE), L("보낸 날짜", LAB_DATE), L("날짜", LAB_DATE),
	L("Ημερομηνία", LAB_DATE), L("Στάλθηκε", LAB_DATE), L("Tanggal", LAB_DATE),

	L("To", LAB_TO), L("An", LAB_TO), L("À", LAB_TO), L("A", LAB_TO), L("Para", LAB_TO),
	L("Aan", LAB_TO), L("Till", LAB_TO), L("Til", LAB_TO), L("Vastaanottaja", LAB_TO),
	L("Do", LAB_TO), L("Komu", LAB_TO), L("Pre", LAB_TO), L("Címzett", LAB_TO),
	L("Către", LAB_TO), L("Destinatarul", LAB_TO), L("Destinataire", LAB_TO),
	L("Destinatario", LAB_TO), L("Pour", LAB_TO), L("Кому", LAB_TO), L("Kime", LAB_TO),
	L("Prima", LAB_TO), L("Adresat", LAB_TO), L("Kellele", LAB_TO), L("宛先", LAB_TO),
	L("送信先", LAB_TO), L("收件人", LAB_TO), L("收件者", LAB_TO), L("받는 사람", LAB_TO),
	L("받는사람", LAB_TO), L("Προς", LAB_TO), L("Kepada", LAB_TO),

	L("Cc", LAB_CC), L("Bcc", LAB_CC), L("Kopie", LAB_CC), L("Kopie (CC)", LAB_CC),
	L("Copie", LAB_CC), L("Copie à", LAB_CC), L("Kopia", LAB_CC), L("Kopi", LAB_CC),
	L("Kopio", LAB_CC), L("Kópia", LAB_CC), L("Másolat", LAB_CC), L("Másolatot kap", LAB_CC),
	L("Копия", LAB_CC), L("Копія", LAB_CC), L("Bilgi", LAB_CC), L("DW", LAB_CC),
	L("Kopija", LAB_CC), L("抄送", LAB_CC), L("副本", LAB_CC), L("참조", LAB_CC),
	L("Κοιν", LAB_CC),

	L("Subject", LAB_SUBJECT), L("Betreff", LAB_SUBJECT), L("Objet", LAB_SUBJECT),
	L("Sujet", LAB_SUBJECT), L("Asunto", LAB_SUBJECT), L("Oggetto", LAB_SUBJECT),
	L("Onderwerp", LAB_SUBJECT), L("Assunto", LAB_SUBJECT), L("Ämne", LAB_SUBJECT),
	L("Emne", LAB_SUBJECT), L("Aihe", LAB_SUBJECT), L("Temat", LAB_SUBJECT),
	L("Předmět", LAB_SUBJECT), L("Predmet", LAB_SUBJECT), L("Tárgy", LAB_SUBJECT),
	L("Subiect", LAB_SUBJECT), L("Subiectul", LAB_SUBJECT), L("Тема", LAB_SUBJECT),
	L("Konu", LAB_SUBJECT), L("Naslov", LAB_SUBJECT), L("Teema", LAB_SUBJECT),
	L("件名", LAB_SUBJECT), L("主题", LAB_SUBJECT), L("主旨", LAB_SUBJECT),
	L("主題", LAB_SUBJECT), L("제목", LAB_SUBJECT), L("Θέμα", LAB_SUBJECT),
	L("Perihal", LAB_SUBJECT),

	L("Reply-To", LAB_OTHER), L("Reply to", LAB_OTHER), L("Antwort an", LAB_OTHER),
	L("Répondre à", LAB_OTHER), L("Responder a", LAB_OTHER), L("Rispondi a", LAB_OTHER),
	L("Risposta", LAB_OTHER), L("Beantwoorden - Aan", LAB_OTHER), L("Svara till", LAB_OTHER),
	L("Svar til", LAB_OTHER), L("Importance", LAB_OTHER), L("Priority", LAB_OTHER),
	L("Wichtigkeit", LAB_OTHER), L("Attachments", LAB_OTHER), L("Anlagen", LAB_OTHER),
};

/* "---- <phrase> ----" lines that always start a forwarded message. */
static const char *const fwd_dashed[] = {
	"forwarded", "weitergeleitete nachricht", "message transféré", "message transmis",
	"mensaje reenviado", "messaggio inoltrato", "doorgestuurd bericht", "mensagem encaminhada",
	"mensagem reencaminhada", "vidarebefordrat meddelande", "vidarebefordrat mejl",
	"videresendt meddelelse", "videresendt besked", "videresendt melding", "välitetty viesti",
	"edelleenlähetetty viesti", "wiadomość przesłana dalej", "przekazana wiadomość",
	"treść przekazanej wiadomości", "přeposlaná zpráva", "preposlaná správa",
	"továbbított üzenet", "mesaj redirecționat", "mesaj redirecţionat", "mesaj transmis",
	"Пересылаемое сообщение", "Перенаправленное сообщение", "Пересланное сообщение",
	"Переслане повідомлення", "Перенаправлене повідомлення", "İletilen İleti",
	"İletilmiş Mesaj", "Proslijeđena poruka", "Prosljeđena poruka", "Posredovano sporočilo",
	"メッセージを転送", "転送されたメッセージ", "転送メッセージ", "转发的邮件", "轉寄的郵件",
	"转发邮件", "轉寄郵件", "전달된 메시지", "전달된 메일", "Προωθημένο μήνυμα",
	"Edastatud kiri", NULL
};

/* "---- <phrase> ----" lines that Outlook and others print above replies and forwards alike. */
static const char *const orig_dashed[] = {
	"original message", "original e-mail", "reply message", "ursprüngliche nachricht",
	"originalnachricht", "message d'origine", "message original", "mensaje original",
	"messaggio originale", "oorspronkelijk bericht", "origineel bericht", "mensagem original",
	"ursprungligt meddelande", "oprindelig meddelelse", "opprinnelig melding",
	"alkuperäinen viesti", "oryginalna wiadomość", "wiadomość oryginalna", "původní zpráva",
	"pôvodná správa", "eredeti üzenet", "mesajul original", "mesaj original",
	"Исходное сообщение", "Оригинальное сообщение", "Оригінальне повідомлення",
	"Початкове повідомлення", "Özgün ileti", "Orijinal mesaj", "Izvorna poruka",
	"Izvirno sporočilo", "元のメッセージ", "原始邮件", "原始郵件", "原始信件", "원본 메시지",
	"Αρχικό μήνυμα", "Algne kiri", NULL
};

/* "<phrase>:" lines (Apple Mail, MailMate) that start a forwarded message. */
static const char *const fwd_colon[] = {
	"begin forwarded message", "forwarded message", "anfang der weitergeleiteten nachricht",
	"début du message réexpédié", "début du message transféré", "inicio del mensaje reenviado",
	"inizio messaggio inoltrato", "begin doorgestuurd bericht",
	"início da mensagem reencaminhada", "início da mensagem encaminhada",
	"vidarebefordrat mejl", "start på videresendt besked", "videresendt melding",
	"videresendt besked", "välitetty viesti alkaa", "początek przekazywanej wiadomości",
	"začátek přeposílané zprávy", "začiatok preposlanej správy", "továbbított levél kezdete",
	"începe mesajul redirecționat", "începe mesajul redirecţionat",
	"Начало переадресованного сообщения", "Початок листа, що пересилається",
	"İleti başlangıcı", "Započni proslijeđenu poruku", "転送されたメッセージ",
	"以下是转发的邮件", "开始转发的邮件", "開始轉寄的郵件", "전달된 메시지", NULL
};

/* Words that end an attribution: "On <date>, <name> wrote:" and its translations. */
#define W(s) { s, sizeof(s) - 1 }

static const struct str attr_end[] = {
	W("wrote"), W("writes"), W("a écrit"), W("écrit"), W("escribió"), W("ha scritto"),
	W("scrisse"), W("schreef"), W("geschreven"), W("escreveu"), W("napisał(a)"), W("napisał"),
	W("napisała"), W("napisal"), W("napsal(a)"), W("napsal"), W("napsala"), W("napísal(a)"),
	W("napísal"), W("napísala"), W("napisao"), W("napisala"), W("написал(а)"), W("написал"),
	W("написала"), W("написав"), W("пише"), W("пишет"), W("kirjoitti"), W("írta"), W("yazdı"),
	W("skrev"), W("schrieb"), W("schrieben Sie"), W("a scris"), W("写道"), W("寫道"), W("작성"),
	W("のメッセージ"), W("書きました"), W("έγραψε"), W("rašė"), W("rakstīja"), W("kirjutas"),
	W("va escriure"), W("menulis"), W("đã viết"), { NULL, 0 }
};

/* The same verbs where they stand mid-line: "Am <date> schrieb <name> <addr>:". */
static const char *const attr_mid[] = {
	"wrote", "writes", "schrieb", "skrev", "schreef", "kirjoitti", "escribió", "escreveu",
	"écrit", "scritto", "napisał", "napisal", "napsal", "napísal", "napisao", "написал",
	"написала", "пише", "пишет", "написав", "írta", "yazdı", "geschreven", "scris", NULL
};

static const char *const attr_mid_cjk[] = { "写道", "寫道", "작성", "のメッセージ", NULL };

static const char *const attr_start[] = {
	"On ", "At ", "Am ", "Le ", "El ", "Il ", "Op ", "Em ", "Den ", "Dne ", "Dňa ", "Dnia ",
	"W dniu ", "D. ", "På ", "Dana ", "在", "於", NULL
};

/* Lines a phone or a mail app adds under the text. */
static const char *const sig_app_any[] = {
	"sent from my ", "envoyé depuis ", "envoyé de mon ", "envoyé à partir de ",
	"gesendet von meinem ", "gesendet mit ", "inviato da ", "inviato dal mio ",
	"sendt fra min ", "sendt fra ", "enviado do meu ", "enviado desde mi ", "enviado de mi ",
	"enviado desde ", "enviado do ", "enviado de ", "verzonden met ", "verzonden vanaf mijn ",
	"verstuurd vanaf mijn ", "verstuurd met ", "skickat från min ", "skickat från ",
	"från min ", "lähetetty ", "wysłane z ", "wysłano z ", "odesláno z ", "odoslané z ",
	"küldve ", "elküldve ", "trimis de pe ", "trimis din ", "отправлено с ", "отправлено из ",
	"надіслано з ", "poslano s ", "poslano iz ", "get outlook for ", "get [outlook for ",
	"從我的 iphone", "从我的 iphone", "发自我的iphone", "发自我的 iphone", "來自我的 iphone",
	"iphoneから送信", "iphone'umdan gönderildi", NULL
};

/* "Sent from <x>" is an app's line only when x names a mail app or a device. */
static const char *const sig_app_short[] = {
	"sent from ", "sent via ", "sent with ", "sent by ", "sent using ", NULL
};

static const char *const apps[] = {
	"mail", "outlook", "yahoo", "aol", "proton", "spark", "airmail", "mailbox", "superhuman",
	"fastmail", "tutanota", "zoho", "edison", "bluemail", "newton", "phone", "mobile", "ipad",
	"ipod", "android", "blackberry", "samsung", "galaxy", "windows", "tablet", "device", NULL
};

static const char *const devices[] = {
	"iphone", "ipad", "ipod", "android", "mobile", "phone", "samsung", "galaxy", "blackberry",
	"device", "cell", "tablet", "pixel", "huawei", "xiaomi", "nokia", "htc", "windows", NULL
};

static const char *const valedictions[] = {
	"best regards", "kind regards", "warm regards", "regards", "best wishes", "best", "thanks",
	"thank you", "many thanks", "cheers", "sincerely", "yours", "all the best",
	"mit freundlichen grüßen", "viele grüße", "beste grüße", "liebe grüße", "grüße", "gruß",
	"mfg", "lg", "cordialement", "bien cordialement", "bien à vous", "saludos", "un saludo",
	"atentamente", "cordiali saluti", "saluti", "met vriendelijke groet", "groeten",
	"atenciosamente", "abraços", "med vänliga hälsningar", "hälsningar", "med venlig hilsen",
	"mvh", "ystävällisin terveisin", "pozdrawiam", "s pozdravem", "üdvözlettel",
	"с уважением", "з повагою", "saygılarımla", "lijep pozdrav", NULL
};

/* Lines that open list, marketing or notification boilerplate. */
static const char *const footer_start[] = {
	"to unsubscribe", "click here to unsubscribe",
	"you received this message because", "you received this email because",
	"you are receiving this", "you're receiving this", "you are subscribed to",
	"this email was sent to", "this e-mail was sent to", "this message was sent to",
	"this email was sent by", "if you no longer wish to", "if you'd like to unsubscribe",
	"if you would like to unsubscribe", "if you wish to unsubscribe", "to stop receiving",
	"manage your preferences", "manage preferences", "manage your subscription",
	"update your preferences", "update your email preferences",
	"want to change how you receive these emails", "reply to this email directly",
	"view it on github", "copyright ©", "©", "this email has been checked for viruses",
	"this email has been scanned", "virus-free", "zum abbestellen", "newsletter abbestellen",
	"pour vous désabonner", "para darte de baja", "para cancelar a inscrição", NULL
};

/* An unsubscribe word opens a footer only in a short link line ("Unsubscribe | Preferences",
 * "Abmelden: https://..."), not in a sentence asking to be taken off a list. */
static const char *const footer_words[] = {
	"unsubscribe", "abmelden", "se désabonner", "se désinscrire", "désinscription",
	"darse de baja", "cancelar suscripción", "annulla l'iscrizione", "disiscriviti",
	"uitschrijven", "afmelden", "descadastrar", "avregistrera", "avsluta prenumeration",
	"afmeld", "meld deg av", "peruuta tilaus", "wypisz się", "odhlásit", "odhlásiť",
	"leiratkozás", "dezabonare", "отписаться", "відписатися", "abonelikten çık", "配信停止",
	"退订", "取消订阅", "수신거부", NULL
};

static const char *const footer_link_marks[] = {
	"|", "http", "<", "[", "here", "hier", "ici", "aquí", "qui", "click", "klicken", NULL
};

/* Lines that may open a confidentiality notice, and words that make it one. */
static const char *const conf_start[] = {
	"this e-mail", "this email", "this message", "this communication", "this transmission",
	"the information contained", "the information in this", "confidentiality",
	"confidential", "disclaimer", "notice:", "important notice", "important:", "privileged",
	"caution:", "diese e-mail", "diese nachricht", "ce message", "ce courriel",
	"ce courrier électronique", "este mensaje", "este correo", "questo messaggio",
	"questa e-mail", "deze e-mail", "dit bericht", "esta mensagem", "este e-mail",
	"detta e-postmeddelande", "denne e-mail", "denne e-post", "tämä viesti", "ta wiadomość",
	"tato zpráva", "tento e-mail", "ez az e-mail", "acest mesaj", "это сообщение",
	"данное сообщение", "цей лист", "bu e-posta", "ova poruka", "本邮件", "このメール",
	"이 메일", NULL
};

static const char *const conf_words[] = {
	"confidential", "intended recipient", "intended only", "intended solely", "privileged",
	"addressee", "intended for the", "vertraulich", "empfänger", "confidentiel",
	"destinataire", "confidencial", "destinatario", "riservat", "vertrouwelijk",
	"geadresseerde", "konfidentiell", "fortrolig", "luottamuksellinen", "poufn", "důvěrn",
	"bizalmas", "confidenț", "конфиденциальн", "конфіденційн", "gizli", "povjerljiv",
	"保密", "機密", "기밀", "virus", NULL
};

/* Subject prefixes of a forward ("FW: ...") in the languages mail clients are set to. */
static const char *const fwd_prefixes[] = {
	"fwd", "fw", "wg", "tr", "rv", "enc", "i", "doorst", "vb", "vl", "pd", "továbbítás",
	"továbbított", "ilt", "İlt", "пересл", "переслать", "转发", "轉寄", "転送", "전달", NULL
};

static const char *const *const indexed_lists[WL_N] = {
	[WL_SIG_APP_ANY] = sig_app_any,
	[WL_SIG_APP_SHORT] = sig_app_short,
	[WL_FOOTER_START] = footer_start,
	[WL_FOOTER_WORDS] = footer_words,
	[WL_CONF_START] = conf_start,
};

/* 0 when no phrase of list wl can start s: the word lists are tried on every line, and most
 * lines start with a byte none of their phrases does. */
static int may_start(struct cleaner *c, int wl, const char *s, size_t n)
{
	struct first_bytes *f = &c->first[wl];
	unsigned char b = n ? (unsigned char)s[0] : 0;

	if (n == 0)
		return 0;
	if (!f->ready)
		first_bytes_of(f, indexed_lists[wl]);
	return (int)(f->bit[b >> 6] >> (b & 63) & 1);
}

/* ---- line classifiers (on the classification view) ---- */

static int label_of(const char *s, size_t n, size_t *value)
{
	size_t lim = n < 48 ? n : 48, k, a = 0, b, i, colon = 1;
	const char *p = memchr(s, ':', lim), *w;

	/* the first ':' or fullwidth colon (EF BC 9A) in the first 48 bytes */
	k = p ? (size_t)(p - s) : lim;
	for (w = s; (w = memchr(w, 0xEF, k - (size_t)(w - s))) != NULL; w++) {
		if ((size_t)(w - s) + 2 < n && (unsigned char)w[1] == 0xBC &&
		    (unsigned char)w[2] == 0x9A) {
			k = (size_t)(w - s);
			colon = 3;
			break;
		}
	}
	if (k >= lim)
		return LAB_NONE;
	b = k;
	while (a < b && (s[a] == '*' || s[a] == ' '))
		a++;
	while (b > a && (s[b - 1] == '*' || s[b - 1] == ' ' || s[b - 1] == '\t'))
		b--;
	if (b == a || b - a > 40)
		return LAB_NONE;
	for (i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		if (labels[i].len == b - a && starts_ci(s + a, b - a, labels[i].name) == b - a) {
			if (value) {
				k += colon;
				while (k < n && (s[k] == '*' || s[k] == ' ' || s[k] == '\t'))
					k++;
				*value = k;
			}
			return labels[i].fam;
		}
	}
	return LAB_NONE;
}

static int label_family(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];

	if (!L->lab) {
		struct str t = content(c, i);
		L->lab = (uint8_t)(1 + label_of(t.s, t.n, NULL));
	}
	return L->lab - 1;
}

static int marker_kind(struct str t)
{
	const char *s = t.s;
	size_t n = t.n, i = 0, d, e;
	const char *const *p;

	while (i < n && (s[i] == '*' || s[i] == ' '))
		i++;
	d = i;
	while (i < n && (s[i] == '-' || s[i] == '='))
		i++;
	if (i - d >= 2) {
		while (i < n && (s[i] == ' ' || s[i] == '*'))
			i++;
		for (p = fwd_dashed; *p; p++)
			if (starts_ci(s + i, n - i, *p))
				return MK_FWD;
		for (p = orig_dashed; *p; p++)
			if (starts_ci(s + i, n - i, *p))
				return MK_ORIG;
		return MK_NONE;
	}
	if (n > 100 || n < 2)
		return MK_NONE;
	e = n;
	if (s[e - 1] == ':')
		e--;
	else if (e >= 3 && memcmp(s + e - 3, "\xEF\xBC\x9A", 3) == 0)
		e -= 3;
	else
		return MK_NONE;
	while (e > d && (s[e - 1] == ' ' || s[e - 1] == '*'))
		e--;
	for (p = fwd_colon; *p; p++)
		if (eq_ci(s + d, e - d, *p))
			return MK_FWD;
	return MK_NONE;
}

/* 1 for the "-- " signature separator, 2 for any other line of only -_=~*#+ (or dashes and
 * the middle dot some trackers add), 0 otherwise. */
static int delim_kind(struct str t)
{
	size_t i = 0, count = 0;
	int wide = 0;

	if (t.n == 2 && t.s[0] == '-' && t.s[1] == '-')
		return 1;
	while (i < t.n) {
		unsigned char ch = (unsigned char)t.s[i];

		if (ch == ' ' || ch == '\t') {
			i++;
		} else if (ch && strchr("-_=~*#+", ch)) {
			count++;
			i++;
		} else if (i + 3 <= t.n && (memcmp(t.s + i, "\xE2\x80\x94", 3) == 0 ||
					     memcmp(t.s + i, "\xE2\x80\x93", 3) == 0 ||
					     memcmp(t.s + i, "\xE1\x90\xA7", 3) == 0)) {
			wide = 1;
			count++;
			i += 3;
		} else {
			return 0;
		}
	}
	return count >= 2 || (wide && count == 1) ? 2 : 0;
}

static int is_fence(struct str t)
{
	return t.n >= 3 && (memcmp(t.s, "```", 3) == 0 || memcmp(t.s, "~~~", 3) == 0);
}

static int has_link(struct str t)
{
	return find_ci(t.s, t.n, "http://") || find_ci(t.s, t.n, "https://") ||
	       find_ci(t.s, t.n, "](");
}

static int is_mobile_sig(struct cleaner *c, struct str t)
{
	const char *s = t.s;
	size_t n = t.n;

	while (n && (*s == '(' || *s == '<' || *s == '[')) {
		s++;
		n--;
	}
	if (n == 0 || n > 160)
		return 0;
	if (may_start(c, WL_SIG_APP_ANY, s, n) && starts_any(s, n, sig_app_any))
		return n <= 120 || has_link(t);
	if (starts_ci(s, n, "von meinem ") || starts_ci(s, n, "diese nachricht wurde von "))
		return n <= 120 && find_ci(s, n, "gesendet") != NULL;
	if (may_start(c, WL_SIG_APP_SHORT, s, n) && starts_any(s, n, sig_app_short))
		return (n <= 60 && find_any(s, n, apps)) || has_link(t);
	if (starts_ci(s, n, "from my "))
		return n <= 30 && find_any(s, n, devices);
	return n <= 40 && ends_ci(s, n, " from mobile");
}

static int url_like(const char *s, size_t n)
{
	return starts_ci(s, n, "http://") || starts_ci(s, n, "https://") ||
	       starts_ci(s, n, "www.") || starts_ci(s, n, "mailto:") || starts_ci(s, n, "ftp://");
}

static int is_link_only(struct str t)
{
	const char *s = t.s;
	size_t n = t.n, i, open = 0, close = 0;

	if (n < 4)
		return 0;
	if (starts_ci(s, n, "[image") || starts_ci(s, n, "[cid:") || starts_ci(s, n, "[bild") ||
	    starts_ci(s, n, "[imagen") || starts_ci(s, n, "[immagine") ||
	    starts_ci(s, n, "[afbeelding"))
		return s[n - 1] == ']';
	if (s[0] == '!' && s[1] == '[')
		return s[n - 1] == ')' && find_ci(s, n, "](") != NULL;
	if (s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (!url_like(s, n))
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == ' ' || s[i] == '\t')
			return 0;
		open += s[i] == '(';
		close += s[i] == ')';
	}
	return open == close; /* "...md)" closes a markdown link: the line is prose */
}

static int is_contact(struct str t)
{
	size_t i, digits = 0, letters = 0;
	const char *at = memchr(t.s, '@', t.n);

	if (at && memchr(at, '.', t.n - (size_t)(at - t.s)))
		return 1;
	if (find_ci(t.s, t.n, "http") || find_ci(t.s, t.n, "www."))
		return 1;
	for (i = 0; i < t.n; i++) {
		digits += is_digit(t.s[i]);
		letters += is_alpha(t.s[i]);
	}
	return digits >= 7 && letters <= 12;
}

static int is_postscript(struct str t)
{
	return starts_ci(t.s, t.n, "p.s") || starts_ci(t.s, t.n, "ps:") || starts_ci(t.s, t.n, "ps ");
}

static int is_valediction(struct str t)
{
	const char *const *p;
	size_t k;

	if (t.n > 40)
		return 0;
	for (p = valedictions; *p; p++) {
		k = starts_ci(t.s, t.n, *p);
		if (k && (k == t.n || strchr(",.! -", t.s[k])))
			return 1;
	}
	return 0;
}

static int subject_is_fwd(const char *s, size_t n)
{
	const char *const *p;
	size_t i = 0, k;

	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i < n && s[i] == '[') { /* a list tag: "[dev] Fwd: ..." */
			const char *e = memchr(s + i, ']', n - i);
			if (!e)
				return 0;
			i = (size_t)(e - s) + 1;
			continue;
		}
		break;
	}
	for (p = fwd_prefixes; *p; p++) {
		k = starts_ci(s + i, n - i, *p);
		if (!k)
			continue;
		k += i;
		while (k < n && s[k] == ' ')
			k++;
		if (k < n && (s[k] == ':' || (k + 3 <= n && memcmp(s + k, "\xEF\xBC\x9A", 3) == 0)))
			return 1;
	}
	return 0;
}

/* ---- attributions ---- */

static int ends_attr_phrase(struct cleaner *c, const char *s, size_t n)
{
	struct first_bytes *f = &c->attr_last;
	unsigned char b = n ? (unsigned char)lc((unsigned char)s[n - 1]) : 0;
	const struct str *p;
	size_t k;

	if (n == 0)
		return 0;
	/* The last bytes of the verbs, lower-cased as compared below: most lines end in
	 * something else, and need no loop over the list. */
	if (!f->ready) {
		memset(f->bit, 0, sizeof(f->bit));
		for (p = attr_end; p->s; p++)
			first_bytes_add(f, (unsigned char)lc((unsigned char)p->s[p->n - 1]));
		f->ready = 1;
	}
	if (!(f->bit[b >> 6] >> (b & 63) & 1))
		return 0;
	for (p = attr_end; p->s; p++) {
		k = p->n;
		if (k > n || lc((unsigned char)p->s[k - 1]) != lc((unsigned char)s[n - 1]) ||
		    starts_ci(s + n - k, k, p->s) != k)
			continue;
		if (k == n || (unsigned char)p->s[0] >= 0x80 || !is_wordb((unsigned char)s[n - k - 1]))
			return 1;
	}
	return 0;
}

static size_t digit_run(const char *s, size_t n, size_t i)
{
	size_t j = i;
	while (j < n && is_digit(s[j]))
		j++;
	return j - i;
}

static unsigned line_af(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];
	struct str t;
	size_t k, r, r2, r3, j;
	unsigned af = AF_DONE;
	const char *const *p;

	if (L->af)
		return L->af;
	t = content(c, i);
	if (t.n > ATTR_MAX_BYTES) {
		L->af = AF_DONE;
		return L->af;
	}
	if (memchr(t.s, '@', t.n))
		af |= AF_AT;
	for (k = 0; k < t.n;) {
		if (!is_digit(t.s[k])) {
			k++;
			continue;
		}
		r = digit_run(t.s, t.n, k);
		j = k + r;
		if (r == 4 && (t.s[k] == '1' || t.s[k] == '2') && (t.s[k + 1] == '9' || t.s[k + 1] == '0'))
			af |= AF_YEAR;
		if (j + 3 <= t.n && memcmp(t.s + j, "\xE5\xB9\xB4", 3) == 0) /* 2016年 */
			af |= AF_DATE;
		if (j < t.n && r <= 2 && (t.s[j] == ':' || t.s[j] == '.')) {
			r2 = digit_run(t.s, t.n, j + 1);
			if (r2 == 2)
				af |= AF_TIME;
		}
		if (j < t.n && r <= 4 && (t.s[j] == '/' || t.s[j] == '.' || t.s[j] == '-')) {
			r2 = digit_run(t.s, t.n, j + 1);
			if (r2 >= 1 && r2 <= 2 && j + 1 + r2 < t.n && strchr("/.-", t.s[j + 1 + r2])) {
				r3 = digit_run(t.s, t.n, j + 2 + r2);
				if (r3 >= 1 && r3 <= 4) {
					af |= AF_DATE;
					if (k == 0 && r == 4 && t.s[j] != '.')
						af |= AF_NUMDATE;
				}
			}
		}
		k = j;
	}
	for (k = 0; k < t.n && !(af & AF_MID);) {
		if (!is_wordb((unsigned char)t.s[k])) {
			k++;
			continue;
		}
		j = k;
		while (j < t.n && is_wordb((unsigned char)t.s[j]))
			j++;
		for (p = attr_mid; *p; p++)
			if (eq_ci(t.s + k, j - k, *p))
				af |= AF_MID;
		k = j;
	}
	if (!(af & AF_MID) && find_any(t.s, t.n, attr_mid_cjk))
		af |= AF_MID;
	if ((t.n && is_digit(t.s[0])) || starts_any(t.s, t.n, attr_start))
		af |= AF_START;
	L->af = (uint8_t)af;
	return af;
}

static int attr_ok(unsigned af, int colon, int endp, int gt, int iso, int numdate)
{
	int strong = (af & (AF_AT | AF_TIME | AF_DATE)) != 0;

	if (endp && (strong || (af & AF_YEAR)))
		return 1;
	if (colon && (af & AF_MID) && strong)
		return 1;
	if (colon && gt && (af & AF_AT) && (af & (AF_TIME | AF_YEAR | AF_DATE)))
		return 1;
	return iso || (gt && (af & AF_AT) && numdate);
}

/* "2016-03-03 17:21 GMT+01:00 Some One": old Gmail, no verb at all. */
static int iso_gmt(struct str t)
{
	const char *s = t.s;

	return t.n >= 20 && digit_run(s, t.n, 0) == 4 && s[4] == '-' && digit_run(s, t.n, 5) == 2 &&
	       s[7] == '-' && digit_run(s, t.n, 8) == 2 && s[10] == ' ' &&
	       digit_run(s, t.n, 11) >= 1 && find_ci(s, t.n < 24 ? t.n : 24, " GMT") != NULL;
}

/* A line above the attribution's first line still belongs to it when the first line plainly
 * continues something ("<addr>", "mailto:", a lower-case word) or the line above is open. */
static int attr_continues(struct str top, struct str up)
{
	if (up.n == 0)
		return 0;
	if (strchr(".!?", up.s[up.n - 1]))
		return 0;
	if (strchr("<,(", up.s[up.n - 1]))
		return 1;
	return top.n && (strchr("<([>", top.s[0]) || starts_ci(top.s, top.n, "mailto:") ||
			 (top.s[0] >= 'a' && top.s[0] <= 'z'));
}

/* If line e ends an attribution, returns its first line (not before floor), else NONE. */
static size_t attr_find(struct cleaner *c, size_t e, size_t floor)
{
	struct str t = content(c, e), top, up;
	size_t n = t.n, s, bytes = 0, found = NONE, added = 0;
	int colon = 0, endp, gt, iso;
	unsigned af = 0;

	if (n == 0 || n > ATTR_MAX_BYTES)
		return NONE;
	while (n && (t.s[n - 1] == '-' || t.s[n - 1] == ' ' || t.s[n - 1] == '*'))
		n--;
	if (n && t.s[n - 1] == ':') {
		colon = 1;
		n--;
	} else if (n >= 3 && memcmp(t.s + n - 3, "\xEF\xBC\x9A", 3) == 0) {
		colon = 1;
		n -= 3;
	}
	while (n && t.s[n - 1] == ' ')
		n--;
	gt = n && t.s[n - 1] == '>';
	endp = ends_attr_phrase(c, t.s, n);
	iso = iso_gmt(t);
	if (!colon && !endp && !gt && !iso)
		return NONE;
	for (s = e;; s--) {
		if (!c->l[s].keep || is_blank(c, s) || c->l[s].cn > ATTR_MAX_BYTES)
			break;
		bytes += c->l[s].cn + 1;
		if (bytes > ATTR_MAX_BYTES)
			break;
		af |= line_af(c, s);
		if (attr_ok(af, colon, endp, gt, iso && s == e, line_af(c, s) & AF_NUMDATE)) {
			found = s;
			break;
		}
		if (s == floor || e - s + 1 >= ATTR_MAX_LINES)
			break;
	}
	if (found == NONE)
		return NONE;
	s = found;
	while (s > floor && added < 4 && !(line_af(c, s) & AF_START)) {
		top = content(c, s);
		if (is_blank(c, s - 1)) {
			/* Gmail for Android splits "On <date> <name>\n\n<\nmailto:<addr>\n> wrote:" */
			if (s - 1 > floor && c->l[s - 2].keep && !is_blank(c, s - 2) &&
			    c->l[s - 2].cn <= 200 && (line_af(c, s - 2) & AF_START) && top.n &&
			    strchr("<(", top.s[0]))
				s -= 2;
			break;
		}
		up = content(c, s - 1);
		if (!c->l[s - 1].keep || up.n > 200 || !attr_continues(top, up))
			break;
		s--;
		added++;
	}
	t = content(c, s);
	if (label_of(t.s, t.n, NULL) || marker_kind(t))
		return NONE;
	return s;
}

/* ---- the structure pass: forwards and replies ---- */

static size_t next_nonblank(const struct cleaner *c, size_t i)
{
	while (i < c->n && is_blank(c, i))
		i++;
	return i;
}

static int lclass(struct cleaner *c, size_t i, unsigned base)
{
	struct str t;

	if (is_blank(c, i))
		return C_BLANK;
	if (eff_depth(c, i, base) > 0)
		return C_Q;
	t = content(c, i);
	if (delim_kind(t) == 1 || marker_kind(t) || label_family(c, i) == LAB_FROM)
		return C_X;
	return C_T;
}

/* First non-empty line at or after i whose class is not cls (or n); counts up to max lines. */
static size_t run_end(struct cleaner *c, size_t i, int cls, unsigned base, size_t max,
		      size_t *count)
{
	size_t k = 0;

	for (; i < c->n; i++) {
		int lcls = lclass(c, i, base);
		if (lcls == C_BLANK)
			continue;
		if (lcls != cls || k >= max)
			break;
		k++;
	}
	if (count)
		*count = k;
	return i;
}

/* After an attribution that follows the writer's text: 1 when the quote below it is answered
 * in between (interleaved, or a real text follows it, not just a signature), so only the
 * attribution goes; 0 when everything from the attribution down is the old message. */
static int reply_is_inline(struct cleaner *c, size_t i, unsigned base)
{
	size_t j = next_nonblank(c, i), k, m, cnt;

	if (j == c->n || lclass(c, j, base) != C_Q)
		return 0;
	k = run_end(c, j, C_Q, base, NONE, NULL);
	if (k == c->n || lclass(c, k, base) != C_T)
		return 0;
	m = run_end(c, k, C_T, base, 5, &cnt);
	if (cnt >= 5)
		return 1;
	return m < c->n && lclass(c, m, base) == C_Q;
}

/* After an attribution with nothing above it: the end of the quote it introduces when that
 * quote is simply answered below (bottom-posting), else i (keep the quotes of an inline reply). */
static size_t top_quote_end(struct cleaner *c, size_t i, unsigned base)
{
	size_t j = next_nonblank(c, i), k, m;

	if (j == c->n || lclass(c, j, base) != C_Q)
		return i;
	k = run_end(c, j, C_Q, base, NONE, NULL);
	if (k == c->n || lclass(c, k, base) == C_X)
		return k;
	m = run_end(c, k, C_T, base, NONE, NULL);
	if (m == c->n || lclass(c, m, base) == C_X)
		return k;
	return i;
}

/* The header block starting at line i: its end, or i if there is none. Without a marker line
 * above, it must start with From and hold one more of Date/To/Cc/Subject. */
static size_t hblock_scan(struct cleaner *c, size_t i, int after_marker, int *subj_fwd)
{
	struct cline *l = c->l;
	size_t j = i, labels_seen = 0, v;
	unsigned fams = 0, d = l[i].depth;
	int f;

	*subj_fwd = 0;
	while (j < c->n && j - i < HBLOCK_MAX) {
		if (!l[j].keep || l[j].depth != d || l[j].cn == 0)
			break;
		f = label_family(c, j);
		if (f) {
			fams |= 1u << f;
			labels_seen++;
			if (f == LAB_SUBJECT) {
				struct str t = content(c, j);
				label_of(t.s, t.n, &v);
				*subj_fwd = subject_is_fwd(t.s + v, t.n - v);
			}
			j++;
			continue;
		}
		/* a wrapped value: "Subject: a long\nsubject\nTo: ..." */
		if (labels_seen && j + 1 < c->n && l[j + 1].keep && l[j + 1].depth == d &&
		    l[j + 1].cn && label_family(c, j - 1) && label_family(c, j + 1)) {
			j++;
			continue;
		}
		break;
	}
	if (after_marker)
		return labels_seen ? j : i;
	if (label_family(c, i) != LAB_FROM || labels_seen < 2 ||
	    !(fams & ((1u << LAB_DATE) | (1u << LAB_TO) | (1u << LAB_SUBJECT) | (1u << LAB_CC))))
		return i;
	return j;
}

static void drop(struct cleaner *c, size_t a, size_t b)
{
	for (; a < b && a < c->n; a++)
		c->l[a].keep = 0;
}

/* Everything from line i down is the replied-to message; the separator lines just above
 * ("-----", "_____", empty lines) go with it. */
static void cut(struct cleaner *c, size_t i)
{
	while (i > 0 && c->l[i - 1].keep &&
	       (is_blank(c, i - 1) || (c->l[i - 1].depth == 0 && delim_kind(content(c, i - 1)))))
		i--;
	drop(c, i, c->n);
}

/* Lines [i, end) introduce a forwarded message: drop them (with the step) and make what
 * follows a region of its own, unquoted to the level its first line has. */
static unsigned region_start(struct cleaner *c, size_t i, size_t end)
{
	size_t j, a = i;

	if (c->steps & CLEAN_FORWARD_HEADERS) {
		drop(c, i, end);
		while (a > 0 && c->l[a - 1].keep &&
		       (is_blank(c, a - 1) || (c->l[a - 1].depth == c->l[i].depth &&
					       delim_kind(content(c, a - 1)) == 2)))
			c->l[--a].keep = 0;
	}
	c->l[i].flags |= LF_SEG;
	for (j = end; j < c->n && j < end + 64 && is_blank(c, j); j++)
		;
	return j < c->n && j < end + 64 ? c->l[j].depth : c->l[i].depth;
}

/* An attribution inside a quote belongs to the quote, unless it opens the quote block. */
static int attr_top(const struct cleaner *c, size_t s, size_t floor, unsigned base)
{
	size_t p = s;

	if (eff_depth(c, s, base) == 0)
		return 1;
	while (p > floor && (is_blank(c, p - 1) || !c->l[p - 1].keep))
		p--;
	return p == floor || eff_depth(c, p - 1, base) == 0;
}

static void pass_structure(struct cleaner *c)
{
	struct cline *l = c->l;
	size_t i, s, end, first = NONE, floor = 0, k;
	unsigned base = 0, ed;
	int fence = 0, pending = c->hint_fwd, prev_ed = -1, mk, sf, fwd, quotes, top;
	struct str t;

	quotes = (c->steps & CLEAN_QUOTES) != 0;
	if (c->n)
		l[0].flags |= LF_SEG;
	for (i = 0; i < c->n; i++) {
		l[i].base = (uint8_t)base;
		if (!l[i].keep)
			continue;
		t = content(c, i);
		ed = eff_depth(c, i, base);
		if (fence || (ed == 0 && is_fence(t))) {
			fence = fence ? !(ed == 0 && is_fence(t)) : 1;
			l[i].flags |= LF_FENCE;
			goto text;
		}
		if (is_blank(c, i))
			continue;
		/* Separators count at the writer's level, or where a quote block begins. */
		top = ed == 0 || prev_ed <= 0;
		prev_ed = (int)ed;
		/* A forwarded/original-message marker, or a From: header block at the top: either
		 * opens a region (forwarded content starts over) or, for a reply, is cut with what
		 * follows. end is past its header block (i when there is none). */
		mk = top ? marker_kind(t) : MK_NONE;
		end = i;
		sf = 0;
		if (mk) {
			end = i + 1;
			for (k = i + 1; k < c->n && k < i + 4 && l[k].keep && l[k].cn == 0; k++)
				;
			if (k < c->n && label_family(c, k)) {
				size_t e2 = hblock_scan(c, k, 1, &sf);
				if (e2 > k)
					end = e2;
			}
		} else if (top && label_family(c, i) == LAB_FROM) {
			end = hblock_scan(c, i, 0, &sf);
		}
		if (end > i) {
			fwd = mk == MK_FWD || pending || first == NONE;
			pending = sf;
			if (fwd) {
				base = region_start(c, i, end);
				first = NONE;
				floor = end;
				prev_ed = -1;
			} else if (quotes) {
				cut(c, i);
				return;
			}
			for (; i + 1 < end; i++)
				l[i + 1].base = (uint8_t)base;
			continue;
		}
		s = attr_find(c, i, floor);
		if (s != NONE && !attr_top(c, s, floor, base))
			s = NONE;
		if (s != NONE) {
			fwd = pending;
			pending = 0;
			if (fwd) {
				base = region_start(c, s, i + 1);
				first = NONE;
				floor = i + 1;
				prev_ed = -1;
				continue;
			}
			if (quotes) {
				if (first != NONE && first < s) {
					if (!reply_is_inline(c, i + 1, base)) {
						cut(c, s);
						return;
					}
					drop(c, s, i + 1);
				} else {
					end = top_quote_end(c, i + 1, base);
					drop(c, s, end);
					for (; i + 1 < end; i++)
						l[i + 1].base = (uint8_t)base;
					first = NONE;
				}
				floor = i + 1;
				continue;
			}
		}
	text:
		if (first == NONE && !is_blank(c, i))
			first = i;
	}
}

/* ---- signatures, footers, links, trailing quotes ---- */

/* The first kept non-empty line; cuts at the end never empty the whole message. */
static size_t first_kept(struct cleaner *c)
{
	while (c->fk < c->n && (!c->l[c->fk].keep || is_blank(c, c->fk)))
		c->fk++;
	return c->fk;
}

static int plain(const struct cleaner *c, size_t i)
{
	return c->l[i].keep && !(c->l[i].flags & LF_FENCE) && eff_depth(c, i, c->l[i].base) == 0;
}

/* delim_kind, except that a line of '=' or '-' right under text underlines a heading. */
static int delim_at(struct cleaner *c, size_t i)
{
	struct str t = content(c, i);
	int k = delim_kind(t);

	if (k == 2 && i > 0 && (t.s[0] == '=' || t.s[0] == '-') && c->l[i - 1].keep &&
	    !is_blank(c, i - 1) && !delim_kind(content(c, i - 1)))
		return 0;
	return k;
}

static void drop_tail(struct cleaner *c, size_t i, size_t b)
{
	if (first_kept(c) < i)
		drop(c, i, b);
}

static int is_mailing_list(struct str t)
{
	return find_ci(t.s, t.n, "mailing list") || find_ci(t.s, t.n, "listinfo") ||
	       find_ci(t.s, t.n, "mailman");
}

/* The footer evidence of line i that depends on its own text only. */
static unsigned footer_flags(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];
	struct str t;
	const char *const *w;
	unsigned f = TF_FOOT_DONE;
	size_t k;

	if (L->tf & TF_FOOT_DONE)
		return L->tf;
	t = content(c, i);
	if (may_start(c, WL_FOOTER_START, t.s, t.n) && starts_any(t.s, t.n, footer_start))
		f |= TF_FOOTER;
	for (w = footer_words; !(f & TF_FOOTER) && *w && t.n <= 60 &&
	     may_start(c, WL_FOOTER_WORDS, t.s, t.n); w++) {
		k = starts_ci(t.s, t.n, *w);
		if (k && (k == t.n || strchr(".:!", t.s[k]) || find_any(t.s, t.n, footer_link_marks)))
			f |= TF_FOOTER;
	}
	if (may_start(c, WL_CONF_START, t.s, t.n) && starts_any(t.s, t.n, conf_start))
		f |= TF_CONF;
	L->tf |= (uint8_t)f;
	return L->tf;
}

static int mailing_list_at(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];

	if (!(L->tf & TF_LIST_DONE))
		L->tf |= TF_LIST_DONE | (is_mailing_list(content(c, i)) ? TF_LIST : 0);
	return (L->tf & TF_LIST) != 0;
}

/* The line opens a footer: list and marketing phrases, or a confidentiality notice (checked
 * against the words of its paragraph, at most 1200 bytes of it). */
static int footer_at(struct cleaner *c, size_t i, size_t b)
{
	unsigned f = footer_flags(c, i);
	size_t j, bytes = 0;
	struct str t;

	if (f & TF_FOOTER)
		return 1;
	if (!(f & TF_CONF))
		return 0;
	for (j = i; j < b && bytes < 1200; j++) {
		if (!c->l[j].keep)
			continue;
		if (is_blank(c, j))
			break;
		t = content(c, j);
		if (find_any(t.s, t.n, conf_words))
			return 1;
		bytes += t.n;
	}
	return 0;
}

static int is_footer_line(struct cleaner *c, size_t i, size_t b)
{
	return footer_at(c, i, b) || mailing_list_at(c, i);
}

static int mobile_sig_at(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];

	if (!(L->tf & TF_SIG_DONE))
		L->tf |= TF_SIG_DONE | (is_mobile_sig(c, content(c, i)) ? TF_MOBILE : 0);
	return (L->tf & TF_MOBILE) != 0;
}

static void pass_signature(struct cleaner *c, size_t a, size_t b)
{
	size_t i, cnt = 0, cutat = NONE, v = NONE, after = 0;
	int short_ok = 1, contact = 0;

	for (i = a; i < b; i++) {
		if (plain(c, i) && delim_at(c, i) == 1 && first_kept(c) < i) {
			drop(c, i, b);
			b = i;
			break;
		}
	}
	for (i = a; i < b; i++)
		if (plain(c, i) && mobile_sig_at(c, i))
			c->l[i].keep = 0;
	/* a separator line under the text with a few short lines below it, unless those are a
	 * list or legal footer: that is the footer step's to remove or keep */
	for (i = b; i > a;) {
		i--;
		if (!c->l[i].keep || is_blank(c, i))
			continue;
		if (!plain(c, i))
			break;
		if (delim_at(c, i)) {
			if (cnt <= 6 && short_ok)
				cutat = i;
			continue;
		}
		cnt++;
		short_ok = short_ok && c->l[i].cn <= 80 && !is_footer_line(c, i, b);
		if (cnt > 6 || !short_ok)
			break;
	}
	if (cutat != NONE) {
		drop_tail(c, cutat, b);
		b = cutat;
	}
	/* "Best regards,\nJane Doe\nACME\n+1 555 0100": only with a phone, mail or web line */
	for (i = b; i > a && after <= 5;) {
		i--;
		if (!c->l[i].keep || is_blank(c, i))
			continue;
		if (!plain(c, i) || c->l[i].cn > 60 || is_postscript(content(c, i)))
			break;
		if (after >= 1 && is_valediction(content(c, i))) {
			v = i;
			break;
		}
		contact |= is_contact(content(c, i));
		after++;
	}
	if (v != NONE && contact)
		drop_tail(c, v, b);
}

static void pass_footers(struct cleaner *c, size_t a, size_t b)
{
	size_t i, j, cnt = 0, trig = NONE;

	/* Mailman: "_______________________________________________\nfoo mailing list" */
	for (i = a; i < b; i++) {
		struct str t = content(c, i);
		if (!plain(c, i) || t.n < 10 || t.s[0] != '_' || delim_kind(t) != 2)
			continue;
		j = next_nonblank(c, i + 1);
		if (j < b && c->l[j].keep) {
			if (mailing_list_at(c, j)) {
				drop_tail(c, i, b);
				b = i;
				break;
			}
		}
	}
	for (i = b; i > a && cnt < TAIL_LINES;) {
		i--;
		if (!c->l[i].keep || is_blank(c, i))
			continue;
		cnt++;
		if (plain(c, i) && footer_at(c, i, b))
			trig = i;
	}
	if (trig == NONE)
		return;
	/* From the line itself: mail converted from HTML often has no empty line between the
	 * text and its footer. The separator lines above go with it. */
	i = trig;
	while (i > a && (!c->l[i - 1].keep || is_blank(c, i - 1) ||
			 (plain(c, i - 1) && delim_kind(content(c, i - 1)))))
		i--;
	drop_tail(c, i, b);
}

static void pass_links(struct cleaner *c)
{
	size_t i, prev = NONE;

	for (i = 0; i < c->n; i++) {
		if (!c->l[i].keep || (c->l[i].flags & LF_FENCE) || c->l[i].cn == 0)
			continue;
		/* "...my write-up:\nhttps://..." announces the link: then it is the message */
		if (is_link_only(content(c, i)) &&
		    (prev == NONE || c->cb[c->l[prev].co + c->l[prev].cn - 1] != ':')) {
			c->l[i].keep = 0;
			continue;
		}
		prev = i;
	}
}

static void pass_trailing_quotes(struct cleaner *c)
{
	size_t i, text = 0;

	for (i = 0; i < c->n && !text; i++)
		text = plain(c, i) && !is_blank(c, i);
	if (!text)
		return; /* a message that is only a quote keeps it */
	for (i = c->n; i > 0;) {
		i--;
		if (!c->l[i].keep)
			continue;
		if (!is_blank(c, i) && plain(c, i))
			break;
		if (c->l[i].flags & LF_FENCE)
			break;
		c->l[i].keep = 0;
	}
}

static void pass_tails(struct cleaner *c)
{
	size_t a, b;

	for (a = 0; a < c->n; a = b) {
		for (b = a + 1; b < c->n && !(c->l[b].flags & LF_SEG); b++)
			;
		if (c->steps & CLEAN_FOOTERS)
			pass_footers(c, a, b);
		if (c->steps & CLEAN_SIGNATURE)
			pass_signature(c, a, b);
	}
}

/* ---- lines in, text out ---- */

/* Offset of the first c in s[i..n), or n: line ends are found with memchr, a line at a time. */
static size_t next_of(const char *s, size_t i, size_t n, char c)
{
	const char *p = i < n ? memchr(s + i, c, n - i) : NULL;

	return p ? (size_t)(p - s) : n;
}

static size_t count_lines(const char *s, size_t n)
{
	size_t i, k = 0;

	for (i = next_of(s, 0, n, '\n'); i < n; i = next_of(s, i + 1, n, '\n'))
		k++;
	/* a CR not followed by LF ends a line too */
	for (i = next_of(s, 0, n, '\r'); i < n; i = next_of(s, i + 1, n, '\r'))
		k += i + 1 == n || s[i + 1] != '\n';
	return k + 1;
}

/* Fills the line offsets of the output view; returns the number of lines. */
static size_t split_lines(struct cleaner *c, const char *s, size_t n)
{
	size_t i = 0, start, k = 0, cr = next_of(s, 0, n, '\r');
	uint8_t eol;

	while (i < n) {
		start = i;
		if (cr < i)
			cr = next_of(s, i, n, '\r');
		i = next_of(s, i, n, '\n');
		eol = i < n ? EOL_LF : EOL_NONE;
		if (cr < i) {
			i = cr;
			eol = i + 1 < n && s[i + 1] == '\n' ? EOL_CRLF : EOL_CR;
		}
		c->l[k].oo = (uint32_t)start;
		c->l[k].on = (uint32_t)(i - start);
		c->l[k].eol = eol;
		k++;
		i += eol == EOL_CRLF ? 2 : eol == EOL_NONE ? 0 : 1;
	}
	return k;
}

/* Turns the raw line offsets into the classification view: quote level and trimmed text. */
static void prepare_line(struct cleaner *c, struct cline *L)
{
	const char *s = c->cb + L->co;
	size_t n = L->cn, i = 0, e, depth = 0, k;

	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (i < n && s[i] == '>') {
		depth++;
		i++;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
	}
	if (depth == 0 && n && is_alpha(s[0])) {
		/* Supercite: "Richard> text" */
		for (k = 0; k < n && k < 10 && is_alpha(s[k]); k++)
			;
		if (k < n && s[k] == '>' && (k + 1 == n || s[k + 1] == ' ')) {
			depth = 1;
			for (i = k + 1; i < n && s[i] == ' '; i++)
				;
		}
	}
	e = n;
	while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	L->depth = (uint8_t)(depth > 255 ? 255 : depth);
	L->co += (uint32_t)i;
	L->cn = (uint32_t)(e - i);
	L->keep = 1;
}

/* Strips up to k '>' levels from an output line. */
static void unquote(const char **p, size_t *n, unsigned k)
{
	const char *s = *p, *e = *p + *n, *q = s;

	while (q < e && (*q == ' ' || *q == '\t'))
		q++;
	if (q == e || *q != '>')
		return;
	s = q;
	while (k && s < e && *s == '>') {
		s++;
		k--;
		if (s < e && *s == ' ')
			s++;
	}
	*n = (size_t)(e - s);
	*p = s;
}

static char *render(const struct cleaner *c, size_t cap)
{
	static const char *const eols[] = { "", "\n", "\r\n", "\r" };
	/* With whitespace normalised, a kept line may be preceded by two newlines (the line break
	 * and a gap where a forward header was dropped) although its own line ending was one
	 * byte, or none at the end of the input: room for that beyond cap. */
	char *out = malloc(cap + 2 * c->n + 2);
	size_t i, o = 0, n;
	int ws = (c->steps & CLEAN_WHITESPACE) != 0, gap = 0, any = 0;
	const char *p;

	if (!out)
		return NULL;
	for (i = 0; i < c->n; i++) {
		const struct cline *L = &c->l[i];

		if (L->flags & LF_SEG)
			gap = any; /* a dropped forward header still parts the texts around it */
		if (!L->keep)
			continue;
		p = c->ob + L->oo;
		n = L->on;
		if ((c->steps & CLEAN_FORWARD_HEADERS) && L->base && L->depth)
			unquote(&p, &n, L->base);
		if (!ws) {
			memcpy(out + o, p, n);
			o += n;
			n = strlen(eols[L->eol]);
			memcpy(out + o, eols[L->eol], n);
			o += n;
			continue;
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0) {
			gap = any;
			continue;
		}
		if (any)
			out[o++] = '\n';
		if (gap)
			out[o++] = '\n';
		memcpy(out + o, p, n);
		o += n;
		gap = 0;
		any = 1;
	}
	out[o] = '\0';
	return out;
}

/* ---- API ---- */

char *clean_text_subject(const char *text, size_t len, unsigned steps, const char *subject)
{
	struct cleaner c;
	char *cb = NULL, *ob = NULL, *out = NULL;
	size_t cn = 0, on, i;

	memset(&c, 0, sizeof(c));
	if (!text)
		len = 0;
	if (len >= MAX_INPUT) {
		/* Line offsets are 32-bit; such a body is no mail anyone reads whole. */
		out = malloc(2 * len + 1);
		if (out)
			out[utf8_clean((const unsigned char *)text, len, (steps & CLEAN_INVISIBLE) != 0,
				       out)] = '\0';
		return out;
	}
	ob = malloc(2 * len + 1);
	if (!ob)
		goto out;
	on = utf8_clean((const unsigned char *)text, len, (steps & CLEAN_INVISIBLE) != 0, ob);
	c.ob = ob;
	c.steps = steps;
	c.hint_fwd = subject && subject_is_fwd(subject, strlen(subject));
	c.n = count_lines(ob, on);
	c.l = calloc(c.n, sizeof(*c.l));
	if (!c.l)
		goto out;
	c.n = split_lines(&c, ob, on);
	/* The classifiers always see the text without invisible characters; cleaning each line
	 * on its own keeps the two views line for line (a stripped character between CR and LF
	 * would otherwise join two line ends into one). Valid UTF-8 never grows here. */
	if (steps & CLEAN_INVISIBLE) {
		cb = ob;
	} else {
		cb = malloc(on + 1);
		if (!cb)
			goto out;
	}
	for (i = 0; i < c.n; i++) {
		if (cb != ob) {
			c.l[i].co = (uint32_t)cn;
			c.l[i].cn = (uint32_t)utf8_clean((const unsigned char *)ob + c.l[i].oo, c.l[i].on,
							  1, cb + cn);
			cn += c.l[i].cn;
		} else {
			c.l[i].co = c.l[i].oo;
			c.l[i].cn = c.l[i].on;
		}
	}
	c.cb = cb;
	for (i = 0; i < c.n; i++)
		prepare_line(&c, &c.l[i]);
	if (steps & (CLEAN_FORWARD_HEADERS | CLEAN_QUOTES))
		pass_structure(&c);
	pass_tails(&c);
	if (steps & CLEAN_QUOTES) {
		pass_trailing_quotes(&c);
		pass_tails(&c);
	}
	if (steps & CLEAN_LINK_LINES)
		pass_links(&c);
	out = render(&c, on);
out:
	free(c.l);
	if (cb != ob)
		free(cb);
	free(ob);
	return out;
}

char *clean_text(const char *text, size_t len, unsigned steps)
{
	return clean_text_subject(text, len, steps, NULL);
}

static const char *const step_names[] = {
	"forward_headers", "quotes", "signature", "footers", "link_lines", "invisible", "whitespace",
};

unsigned clean_step_from_name(const char *name)
{
	size_t i;

	if (!name)
		return 0;
	for (i = 0; i < sizeof(step_names) / sizeof(step_names[0]); i++)
		if (strcmp(name, step_names[i]) == 0)
			return 1u << i;
	return 0;
}

const char *clean_step_name(unsigned step)
{
	size_t i;

	for (i = 0; i < sizeof(step_names) / sizeof(step_names[0]); i++)
		if (step == 1u << i)
			return step_names[i];
	return NULL;
}

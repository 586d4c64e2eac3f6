/* Owns the cleaner's one-line classifiers on the classification view: header labels, forward
 * markers, delimiters, links, contact and valediction lines, forward subjects. Not the passes
 * that act on them. Called by clean.c and the clean_*.c passes. */
#include "clean_internal.h"

#include <stdint.h>
#include <string.h>

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
/* ---- line classifiers (on the classification view) ---- */

int clean_lines_label_of(const char *s, size_t n, size_t *value)
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
		if (labels[i].len == b - a &&
		    clean_words_starts_ci(s + a, b - a, labels[i].name) == b - a) {
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

int clean_lines_label_family(struct cleaner *c, size_t i)
{
	struct cline *L = &c->l[i];

	if (!L->lab) {
		struct str t = content(c, i);
		L->lab = (uint8_t)(1 + clean_lines_label_of(t.s, t.n, NULL));
	}
	return L->lab - 1;
}

int clean_lines_marker_kind(struct str t)
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
		for (p = clean_words_fwd_dashed; *p; p++)
			if (clean_words_starts_ci(s + i, n - i, *p))
				return MK_FWD;
		for (p = clean_words_orig_dashed; *p; p++)
			if (clean_words_starts_ci(s + i, n - i, *p))
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
	for (p = clean_words_fwd_colon; *p; p++)
		if (clean_words_eq_ci(s + d, e - d, *p))
			return MK_FWD;
	return MK_NONE;
}

/* 1 for the "-- " signature separator, 2 for any other line of only -_=~*#+ (or dashes and
 * the middle dot some trackers add), 0 otherwise. */
int clean_lines_delim_kind(struct str t)
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

int clean_lines_is_fence(struct str t)
{
	return t.n >= 3 && (memcmp(t.s, "```", 3) == 0 || memcmp(t.s, "~~~", 3) == 0);
}

static int has_link(struct str t)
{
	return clean_words_find_ci(t.s, t.n, "http://") ||
	       clean_words_find_ci(t.s, t.n, "https://") || clean_words_find_ci(t.s, t.n, "](");
}

int clean_lines_is_mobile_sig(struct cleaner *c, struct str t)
{
	const char *s = t.s;
	size_t n = t.n;

	while (n && (*s == '(' || *s == '<' || *s == '[')) {
		s++;
		n--;
	}
	if (n == 0 || n > 160)
		return 0;
	if (clean_words_may_start(c, WL_SIG_APP_ANY, s, n) &&
	    clean_words_starts_any(s, n, clean_words_sig_app_any))
		return n <= 120 || has_link(t);
	if (clean_words_starts_ci(s, n, "von meinem ") ||
	    clean_words_starts_ci(s, n, "diese nachricht wurde von "))
		return n <= 120 && clean_words_find_ci(s, n, "gesendet") != NULL;
	if (clean_words_may_start(c, WL_SIG_APP_SHORT, s, n) &&
	    clean_words_starts_any(s, n, clean_words_sig_app_short))
		return (n <= 60 && clean_words_find_any(s, n, clean_words_apps)) || has_link(t);
	if (clean_words_starts_ci(s, n, "from my "))
		return n <= 30 && clean_words_find_any(s, n, clean_words_devices);
	return n <= 40 && clean_words_ends_ci(s, n, " from mobile");
}

static int url_like(const char *s, size_t n)
{
	return clean_words_starts_ci(s, n, "http://") || clean_words_starts_ci(s, n, "https://") ||
	       clean_words_starts_ci(s, n, "www.") || clean_words_starts_ci(s, n, "mailto:") ||
	       clean_words_starts_ci(s, n, "ftp://");
}

int clean_lines_is_link_only(struct str t)
{
	const char *s = t.s;
	size_t n = t.n, i, open = 0, close = 0;

	if (n < 4)
		return 0;
	if (clean_words_starts_ci(s, n, "[image") || clean_words_starts_ci(s, n, "[cid:") ||
	    clean_words_starts_ci(s, n, "[bild") || clean_words_starts_ci(s, n, "[imagen") ||
	    clean_words_starts_ci(s, n, "[immagine") || clean_words_starts_ci(s, n, "[afbeelding"))
		return s[n - 1] == ']';
	if (s[0] == '!' && s[1] == '[')
		return s[n - 1] == ')' && clean_words_find_ci(s, n, "](") != NULL;
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

int clean_lines_is_contact(struct str t)
{
	size_t i, digits = 0, letters = 0;
	const char *at = memchr(t.s, '@', t.n);

	if (at && memchr(at, '.', t.n - (size_t)(at - t.s)))
		return 1;
	if (clean_words_find_ci(t.s, t.n, "http") || clean_words_find_ci(t.s, t.n, "www."))
		return 1;
	for (i = 0; i < t.n; i++) {
		digits += is_digit(t.s[i]);
		letters += is_alpha(t.s[i]);
	}
	return digits >= 7 && letters <= 12;
}

int clean_lines_is_postscript(struct str t)
{
	return clean_words_starts_ci(t.s, t.n, "p.s") || clean_words_starts_ci(t.s, t.n, "ps:") ||
	       clean_words_starts_ci(t.s, t.n, "ps ");
}

int clean_lines_is_valediction(struct str t)
{
	const char *const *p;
	size_t k;

	if (t.n > 40)
		return 0;
	for (p = clean_words_valedictions; *p; p++) {
		k = clean_words_starts_ci(t.s, t.n, *p);
		if (k && (k == t.n || strchr(",.! -", t.s[k])))
			return 1;
	}
	return 0;
}

int clean_lines_subject_is_fwd(const char *s, size_t n)
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
	for (p = clean_words_fwd_prefixes; *p; p++) {
		k = clean_words_starts_ci(s + i, n - i, *p);
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

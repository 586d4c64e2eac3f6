/* Owns the cleaner's phrase matching: case folding, starts/ends/find ignoring case, and the word
 * lists (forward markers, attribution verbs, signature and footer phrases). Not the
 * decisions made with them (clean_lines.c and the passes). Called by the other clean*.c. */
#include "clean_internal.h"

#include <stdint.h>
#include <string.h>

/* One character of s lower-cased for comparing: ASCII, Latin-1, Latin Extended-A, Greek and
 * Cyrillic capitals (what header labels and the phrases of the word lists begin with). */
static size_t fold(const unsigned char *s, size_t n, uint32_t *out)
{
	uint32_t cp;
	size_t k = clean_utf8_seq(s, n, &cp);

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
size_t clean_words_starts_ci(const char *s, size_t n, const char *p)
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

int clean_words_eq_ci(const char *s, size_t n, const char *p)
{
	return n && first_may_match((unsigned char)s[0], (unsigned char)p[0]) && strlen(p) == n &&
	       clean_words_starts_ci(s, n, p) == n;
}

int clean_words_ends_ci(const char *s, size_t n, const char *p)
{
	size_t k = strlen(p);

	return k <= n && clean_words_starts_ci(s + n - k, k, p) == k;
}

const char *clean_words_find_ci(const char *s, size_t n, const char *p)
{
	size_t k = strlen(p), i;

	if (k == 0 || k > n)
		return NULL;
	for (i = 0; i + k <= n; i++)
		if (lc((unsigned char)s[i]) == lc((unsigned char)p[0]) &&
		    clean_words_starts_ci(s + i, k, p))
			return s + i;
	return NULL;
}

int clean_words_starts_any(const char *s, size_t n, const char *const *list)
{
	unsigned char c0 = n ? (unsigned char)s[0] : 0;

	if (n == 0)
		return 0;
	for (; *list; list++) {
		/* Nearly every line fails on its first byte: decide that without a call. */
		if (!first_may_match(c0, (unsigned char)**list))
			continue;
		if (clean_words_starts_ci(s, n, *list))
			return 1;
	}
	return 0;
}

void clean_words_first_bytes_add(struct first_bytes *f, unsigned char b)
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
			clean_words_first_bytes_add(f, (unsigned char)lc(b));
			if (b >= 'a' && b <= 'z')
				clean_words_first_bytes_add(f, (unsigned char)(b - 32));
			if (lc(b) == 'i')
				clean_words_first_bytes_add(f, 0xC4);
		} else if (b >= 0xE0) {
			clean_words_first_bytes_add(f, b);
		} else {
			clean_words_first_bytes_add(f, (unsigned char)(b - 1));
			clean_words_first_bytes_add(f, b);
			clean_words_first_bytes_add(f, (unsigned char)(b + 1));
			if (b == 0xC4) {
				clean_words_first_bytes_add(f, 'i');
				clean_words_first_bytes_add(f, 'I');
			}
		}
	}
	f->ready = 1;
}

int clean_words_find_any(const char *s, size_t n, const char *const *list)
{
	for (; *list; list++)
		if (clean_words_find_ci(s, n, *list))
			return 1;
	return 0;
}

/* ---- word lists ---- */

/* "---- <phrase> ----" lines that always start a forwarded message. */
const char *const clean_words_fwd_dashed[] = {
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
const char *const clean_words_orig_dashed[] = {
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
const char *const clean_words_fwd_colon[] = {
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

const struct str clean_words_attr_end[] = {
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
const char *const clean_words_attr_mid[] = {
	"wrote", "writes", "schrieb", "skrev", "schreef", "kirjoitti", "escribió", "escreveu",
	"écrit", "scritto", "napisał", "napisal", "napsal", "napísal", "napisao", "написал",
	"написала", "пише", "пишет", "написав", "írta", "yazdı", "geschreven", "scris", NULL
};

const char *const clean_words_attr_mid_cjk[] = { "写道", "寫道", "작성", "のメッセージ", NULL };

const char *const clean_words_attr_start[] = {
	"On ", "At ", "Am ", "Le ", "El ", "Il ", "Op ", "Em ", "Den ", "Dne ", "Dňa ", "Dnia ",
	"W dniu ", "D. ", "På ", "Dana ", "在", "於", NULL
};

/* Lines a phone or a mail app adds under the text. */
const char *const clean_words_sig_app_any[] = {
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
const char *const clean_words_sig_app_short[] = {
	"sent from ", "sent via ", "sent with ", "sent by ", "sent using ", NULL
};

const char *const clean_words_apps[] = {
	"mail", "outlook", "yahoo", "aol", "proton", "spark", "airmail", "mailbox", "superhuman",
	"fastmail", "tutanota", "zoho", "edison", "bluemail", "newton", "phone", "mobile", "ipad",
	"ipod", "android", "blackberry", "samsung", "galaxy", "windows", "tablet", "device", NULL
};

const char *const clean_words_devices[] = {
	"iphone", "ipad", "ipod", "android", "mobile", "phone", "samsung", "galaxy", "blackberry",
	"device", "cell", "tablet", "pixel", "huawei", "xiaomi", "nokia", "htc", "windows", NULL
};

const char *const clean_words_valedictions[] = {
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
const char *const clean_words_footer_start[] = {
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
const char *const clean_words_footer_words[] = {
	"unsubscribe", "abmelden", "se désabonner", "se désinscrire", "désinscription",
	"darse de baja", "cancelar suscripción", "annulla l'iscrizione", "disiscriviti",
	"uitschrijven", "afmelden", "descadastrar", "avregistrera", "avsluta prenumeration",
	"afmeld", "meld deg av", "peruuta tilaus", "wypisz się", "odhlásit", "odhlásiť",
	"leiratkozás", "dezabonare", "отписаться", "відписатися", "abonelikten çık", "配信停止",
	"退订", "取消订阅", "수신거부", NULL
};

const char *const clean_words_footer_link_marks[] = {
	"|", "http", "<", "[", "here", "hier", "ici", "aquí", "qui", "click", "klicken", NULL
};

/* Lines that may open a confidentiality notice, and words that make it one. */
const char *const clean_words_conf_start[] = {
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

const char *const clean_words_conf_words[] = {
	"confidential", "intended recipient", "intended only", "intended solely", "privileged",
	"addressee", "intended for the", "vertraulich", "empfänger", "confidentiel",
	"destinataire", "confidencial", "destinatario", "riservat", "vertrouwelijk",
	"geadresseerde", "konfidentiell", "fortrolig", "luottamuksellinen", "poufn", "důvěrn",
	"bizalmas", "confidenț", "конфиденциальн", "конфіденційн", "gizli", "povjerljiv",
	"保密", "機密", "기밀", "virus", NULL
};

/* Subject prefixes of a forward ("FW: ...") in the languages mail clients are set to. */
const char *const clean_words_fwd_prefixes[] = {
	"fwd", "fw", "wg", "tr", "rv", "enc", "i", "doorst", "vb", "vl", "pd", "továbbítás",
	"továbbított", "ilt", "İlt", "пересл", "переслать", "转发", "轉寄", "転送", "전달", NULL
};

static const char *const *const indexed_lists[WL_N] = {
	[WL_SIG_APP_ANY] = clean_words_sig_app_any,
	[WL_SIG_APP_SHORT] = clean_words_sig_app_short,
	[WL_FOOTER_START] = clean_words_footer_start,
	[WL_FOOTER_WORDS] = clean_words_footer_words,
	[WL_CONF_START] = clean_words_conf_start,
};

/* 0 when no phrase of list wl can start s: the word lists are tried on every line, and most
 * lines start with a byte none of their phrases does. */
int clean_words_may_start(struct cleaner *c, int wl, const char *s, size_t n)
{
	struct first_bytes *f = &c->first[wl];
	unsigned char b = n ? (unsigned char)s[0] : 0;

	if (n == 0)
		return 0;
	if (!f->ready)
		first_bytes_of(f, indexed_lists[wl]);
	return (int)(f->bit[b >> 6] >> (b & 63) & 1);
}

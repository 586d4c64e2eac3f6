/* Modified UTF-7 (RFC 3501 section 5.1.3) <-> UTF-8 for IMAP mailbox names. Pure string
 * conversion: no I/O, no knowledge of hierarchy delimiters. Called by the fetcher (LIST
 * results, SELECT arguments) and the CLI. */
#ifndef MP_MUTF7_H
#define MP_MUTF7_H

/* Decodes a mailbox name as sent by the server. Returns a malloc'd UTF-8 string the caller
 * frees with free(), or NULL when in is not valid modified UTF-7 (bytes outside 0x20-0x7e,
 * unterminated or non-minimal base64, nonzero padding bits, printable ASCII or NUL inside
 * base64, unpaired surrogates) or on allocation failure; callers then keep the raw name. */
char *mutf7_decode(const char *in);

/* Encodes a UTF-8 mailbox name for sending. Returns a malloc'd string the caller frees with
 * free(), or NULL when utf8 is not valid UTF-8 (overlong forms, surrogates, > U+10FFFF) or on
 * allocation failure. */
char *mutf7_encode(const char *utf8);

#endif

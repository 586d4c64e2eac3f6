/* Owns turning an HTML body into readable plain text, by walking the tree libxml2's HTML parser
 * builds. Does not choose the HTML part, clean quotes or signatures, or do any I/O.
 * Called by extract.c (body_text from body_html), tests/unit/test_html.c, tests/fuzz/fuzz_html.c. */
#ifndef MP_HTML_H
#define MP_HTML_H

#include <stddef.h>

/* Call once per process before use and before any thread starts (extract_global_init does):
 * initialises libxml2 and silences its error output, which would otherwise go to stderr for
 * every malformed document. Calling it again does nothing harmful. */
void html_global_init(void);

/* Renders html[0..len) (borrowed for the call only; need not be NUL-terminated) as text the way
 * a mail reader shows it: block elements end lines and paragraphs leave one blank line, list
 * items get "- " or "1. ", table cells are separated by a tab, blockquotes are prefixed "> ",
 * links keep their text and add " (url)" for an http(s) or mailto target that the text does
 * not already show, images give their alt text (tracking pixels nothing), and script, style,
 * head, title, noscript, template and hidden elements (hidden attribute, display:none,
 * visibility:hidden) give nothing. Whitespace collapses as in a browser except inside pre;
 * the result is trimmed and never has more than one blank line in a row.
 *
 * html is UTF-8 unless charset_hint names another charset, which iconv then converts from
 * (extract passes NULL: it has converted already); invalid bytes become U+FFFD, and a <meta>
 * charset inside the document is ignored. Input is bounded, not trusted: libxml2 stops
 * building the tree 256 elements deep and keeps 10 MB per text node, and the text past those
 * limits is lost; a tag with more than HTML_MAX_ATTRIBUTES attributes is closed after that
 * many, because libxml2 2.9 checks each new attribute against all earlier ones (quadratic).
 *
 * Returns a new NUL-terminated string of valid UTF-8 without NUL bytes, possibly empty, which
 * the caller frees with free(); NULL only when memory runs out. */
char *html_to_text(const char *html, size_t len, const char *charset_hint);

#define HTML_MAX_ATTRIBUTES 64

#endif

/* Owns the base subject of RFC 5256 section 2.1, with the reply and forward prefixes mail
 * clients use beyond "Re:" and "Fwd:". Does not decode RFC 2047 (extract does) or group.
 * Called by the writer's optional subject grouping and tests/unit/test_subject.c. */
#ifndef MP_SUBJECT_H
#define MP_SUBJECT_H

/* The subject with whitespace runs collapsed to one space, trimmed, and then, repeatedly,
 * every leading reply/forward prefix ("Re:", "RE :", "Re[2]:", "Re(2):", "Fwd:", "AW:",
 * "SV:", "Antw:", "ΑΠ:", "Отв:", "回复:", "転送：", ... with ASCII or full-width colon), every
 * "[list-tag]" before real text, trailing "(fwd)" and a "[Fwd: ...]" wrapper removed. ASCII
 * letters match in any case. As in RFC 5256 the result may be empty ("Re:" gives "").
 * subject must be UTF-8 (it is not validated; invalid bytes are kept as they are).
 * Returns a new string the caller frees with free(); NULL when subject is NULL or memory
 * runs out. */
char *subject_base(const char *subject);

/* 1 when subject_base removed a reply or forward marker (prefix, "(fwd)" or "[Fwd: ]"),
 * 0 when not (list tags alone do not count), -1 when memory runs out. For RFC 5256's
 * ORDEREDSUBJECT-style grouping: only a reply may join an earlier message's subject. */
int subject_is_reply(const char *subject);

#endif

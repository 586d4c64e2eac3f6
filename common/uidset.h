/* Sets of IMAP UIDs: build, normalise, format as a sequence-set ("1:5,7") and parse one back.
 * No I/O, no "*" (a UID set here is always concrete). Used by the scheduler, fetcher and
 * writer to describe which messages a job covers. */
#ifndef MP_UIDSET_H
#define MP_UIDSET_H

#include <stddef.h>
#include <stdint.h>

/* Parsing refuses to expand more UIDs than this (ranges included), so "1:4294967295" from an
 * untrusted record cannot make us allocate 16 GiB. */
#define UIDSET_MAX_PARSE 10000000u

/* v[0..n) owned by the set; call uidset_release when done. Normalized = sorted ascending,
 * no duplicates; uidset_add does not keep that, uidset_normalize restores it. */
struct uidset {
	uint32_t *v;
	size_t n, cap;
};

void uidset_init(struct uidset *s);
/* Frees v and leaves s empty and reusable; NULL does nothing. */
void uidset_release(struct uidset *s);
/* Appends uid (not 0): 0, -EINVAL or -ENOMEM. */
int uidset_add(struct uidset *s, uint32_t uid);
/* Appends lo..hi inclusive (either order, neither 0): 0, -EINVAL or -ENOMEM. */
int uidset_add_range(struct uidset *s, uint32_t lo, uint32_t hi);
void uidset_normalize(struct uidset *s);
/* Returns a malloc'd sequence-set the caller frees with free(): "1:5,7,9:12", "" for an
 * empty set; s itself is left untouched (a normalized copy is formatted). NULL on ENOMEM. */
char *uidset_format(const struct uidset *s);
/* Replaces s's contents with the parsed, normalized set. Accepts "1:5,7", reversed ranges
 * "5:1" and "" (empty). -EINVAL for "*", 0, numbers over 2^32-1 or anything else that is not
 * a sequence-set; -E2BIG when it names more than UIDSET_MAX_PARSE UIDs; -ENOMEM. On error s is
 * left empty. */
int uidset_parse(struct uidset *s, const char *str);
/* 1 if uid is in s, else 0; s must be normalized (binary search). */
int uidset_contains(const struct uidset *s, uint32_t uid);

#endif

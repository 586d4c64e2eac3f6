/* The parser stage's handling of one read of {mp}:raw: extract each message, XADD the parsed
 * record to {mp}:parsed, then XACK+XDEL the raw entries. Not the MIME work (extract.c). */
#ifndef MP_PARSER_CONSUME_H
#define MP_PARSER_CONSUME_H

#include "stage.h"

/* Entries of reply are borrowed. 0, or <0 when Redis failed (nothing acknowledged). */
int parser_handle(struct stage *st, redisReply *reply, int redelivered);

#endif

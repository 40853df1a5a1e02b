/* resp.h: how the parts of a Redis reply are built as hiredis reads them.
 *
 * hiredis 0.14's own reader functions allocate an array's element pointers
 * the moment its header arrives: "*412888888\r\n", twelve bytes from a server
 * (or anything that answers on its port), asks for 3.3 GB at once, and nested
 * headers multiply it (fuzz_redirect found it). These build the same
 * redisReply, freed with freeReplyObject as ever, but grow an array as its
 * elements arrive, so that a reply never holds more memory than the bytes
 * received call for. Every hiredis context and reader lash makes uses them
 * (registry/conn.c, registry/anode.c). */
#ifndef LASH_REGISTRY_RESP_H
#define LASH_REGISTRY_RESP_H

#include <hiredis/hiredis.h>

/* The functions, for redisReaderCreateWithFunctions. */
redisReplyObjectFunctions *lash_resp_functions(void);
/* Makes reader r (a context's c->reader) build replies with them; call it
 * before the first byte is read. */
void lash_resp_adopt(redisReader *r);

#endif

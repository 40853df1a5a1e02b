/* reply.h (internal): turning script replies into C values.
 *
 * Replies are untrusted like everything from Redis: every parser checks types
 * and sizes and answers LASH_EPROTO with a sentence when the shape is wrong.
 */
#ifndef LASH_REGISTRY_REPLY_H
#define LASH_REGISTRY_REPLY_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "registry/registry.h"

/* An error reply, a NULL reply (connection gone) or OK. */
lash_status lash_reply_check(const redisReply *r, const char *what, lash_err *e);

lash_status lash_reply_claim(const redisReply *r, lash_claim_batch *out, lash_err *e);
/* A peek: the ms until a row is due, 0 now, -1 none (anything else is refused). */
lash_status lash_reply_peek(const redisReply *r, int64_t *wait_ms, lash_err *e);
/* The leases name owner (borrowed: it must outlive out). */
lash_status lash_reply_recover(const redisReply *r, const char *owner, lash_recovered *out,
                               lash_err *e);
/* An array of n integers into status[]. */
lash_status lash_reply_ints(const redisReply *r, size_t n, int *status, lash_err *e);
/* Submit: an array of {id, status}; fills out[] entries listed in map (map[j] is
 * the out index of the j-th row sent). */
lash_status lash_reply_submit(const redisReply *r, lash_submitted *out, const size_t *map,
                              size_t nsent, lash_err *e);
lash_status lash_reply_record(const redisReply *r, const char *queue, const char *id,
                              lash_record *rec, lash_err *e);
lash_status lash_reply_list(const redisReply *r, lash_list_page *out, lash_err *e);
lash_status lash_reply_stats(const redisReply *r, lash_stats *out, lash_err *e);

#endif

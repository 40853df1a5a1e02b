/* rfx.h: the fixture of the registry suites (the scripts through registry/).
 *
 * Every test gets a private redis-server (tests/fixture.h) and one blocking
 * connection C to it; a suite declares
 *
 *   TestSuite(name, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);
 *
 * The helpers assert what they need (a command was answered, a submit was
 * created, a claim went through), so a test reads as the behaviour it checks.
 */
#ifndef LASH_TESTS_RFX_H
#define LASH_TESTS_RFX_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdint.h>

#include "fixture.h"
#include "registry/registry.h"

extern lash_fx_redis R;
extern lash_conn *C;
extern const lash_retention KEEP_ALL; /* no retention bound */
#define TTL_LONG 60000

void rfx_setup(void);
void rfx_teardown(void);

/* Raw commands on C. cmd asserts an answer (an error reply is returned);
 * cmd_int asserts an integer; cmd_ok asserts no error. */
redisReply *cmd(const char *fmt, ...);
long long cmd_int(const char *fmt, ...);
void cmd_ok(const char *fmt, ...);
/* Redis's clock, ms. */
long long server_ms(void);
/* A connection of its own listening on chan: how is "SUBSCRIBE" (classic) or
 * "SSUBSCRIBE" (sharded, how the scripts publish). expect_message reads the
 * next message (5 s at most) and checks it is kind ("message", "smessage") on
 * chan with the text msg. */
redisContext *subscriber(const char *how, const char *chan);
void expect_message(redisContext *s, const char *kind, const char *chan, const char *msg);
/* ZSCORE lash:{q}:<set> id as ms, or -1 when absent. */
long long zscore(const char *q, const char *set, const char *id);
/* HGET of a row field, malloc'd, or NULL. */
char *hget(const char *q, const char *id, const char *field);
/* The row's fence now (asserts it has one): fences come from a queue-wide
 * counter, so a test reads them rather than guessing. */
int64_t F(const char *q, const char *id);
void expect_field(const char *q, const char *id, const char *field, const char *want);
void expect_field_has(const char *q, const char *id, const char *field, const char *part);
void expect_state(const char *q, const char *id, const char *state);
long long count_keys(const char *pattern);

/* A submission of kind with payload (strings borrowed). */
lash_submission job(const char *id, const char *kind, const char *payload);
lash_submitted submit1(const char *q, lash_submission s);
void submit_ok(const char *q, lash_submission s);
/* n rows "<prefix><i>" of kind k, payload {"i":i}, in one call. */
void submit_many(lash_conn *c, const char *q, const char *prefix, int n, int max_attempts);

lash_claim_batch claim(const char *q, const char *owner, int n, int64_t ttl);
/* Claims exactly one row, asserts it is id, returns its fence. */
int64_t claim_one(const char *q, const char *owner, const char *id, int64_t ttl);
/* Polls claim until it returns a row or ms pass (a generous liveness bound). */
lash_claim_batch claim_within(const char *q, const char *owner, int n, int64_t ttl, int ms);
/* One-row renew, complete and release: the per-row status. */
int renew1(const char *q, const char *id, const char *owner, int64_t fence, int64_t ttl);
int complete1(const char *q, const char *id, const char *owner, int64_t fence, lash_outcome o,
              const char *text, int64_t retry_ms);
int release1(const char *q, const char *id, const char *owner, int64_t fence);

lash_stats stats(const char *q);
lash_record get(const char *q, const char *id);

#endif

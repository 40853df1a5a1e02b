/* test_worker_config.c: the bounds of a worker's settings have one owner.
 *
 * lash_worker_config_check (with lash_turn_config_check under it) is what every
 * entry point calls: the embedding API here, lash-worker's flags and
 * environment in test_worker.c. A setting out of bounds is LASH_EINVAL and one
 * sentence naming it, never a crash. No Redis is needed: the checks come
 * before any connection.
 */
#include <criterion/criterion.h>
#include <ev.h>
#include <string.h>

#include "worker/worker.h"

static lash_worker_config cfg(void)
{
    lash_worker_config c;
    lash_worker_config_default(&c);
    c.redis_url = "redis://127.0.0.1:1";
    return c;
}

static void expect_refused(const lash_worker_config *c, const char *names)
{
    lash_worker *w = NULL;
    lash_err e = {0};
    cr_assert_eq(lash_worker_new(EV_DEFAULT, c, &w, &e), LASH_EINVAL, "accepted");
    cr_assert_null(w);
    cr_assert(strstr(e.msg, names), "'%s' does not name %s", e.msg, names);
}

/* The reviewer's case: concurrency 0 through the embedding API sized the
 * slots from the unchecked value: a heap-buffer-overflow. */
Test(config, concurrency_zero_is_refused_by_name)
{
    lash_worker_config c = cfg();
    c.turn.concurrency = 0;
    expect_refused(&c, "concurrency must be 1..4096, got 0");
    c.turn.concurrency = 5000;
    expect_refused(&c, "concurrency must be 1..4096, got 5000");
}

Test(config, every_bound_is_checked)
{
    lash_worker_config c;
    c = cfg(), c.turn.lease_ms = 299, expect_refused(&c, "lease_ms");
    c = cfg(), c.turn.prefetch = -1, expect_refused(&c, "prefetch must be 0..4096, got -1");
    c = cfg(), c.turn.poll_ms = 0, expect_refused(&c, "poll_ms");
    c = cfg(), c.turn.claim_max = LASH_BATCH_MAX + 1, expect_refused(&c, "claim_max");
    c = cfg(), c.turn.grace_ms = -1, expect_refused(&c, "grace_ms");
    c = cfg(), c.turn.reply_timeout_ms = 20000, expect_refused(&c, "reply_timeout_ms");
    c = cfg(), c.turn.reconnect_min_ms = 0, expect_refused(&c, "reconnect_min_ms");
    c = cfg(), c.result_max = 0, expect_refused(&c, "result_max");
    c = cfg(), c.result_max = LASH_RESULT_MAX + 1, expect_refused(&c, "result_max");
    c = cfg(), c.stderr_tail = LASH_ERROR_MAX, expect_refused(&c, "stderr_tail");
    c = cfg(), c.keep.keep_n = -2, expect_refused(&c, "keep");
    c = cfg(), c.worker_id = "has space", expect_refused(&c, "worker id");
    static const char *const two[] = {"a", "a"};
    c = cfg(), c.queues = two, c.nqueues = 2, expect_refused(&c, "queue a given twice");
    static const char *const bad[] = {"a{b}"};
    c = cfg(), c.queues = bad, c.nqueues = 1, expect_refused(&c, "queue");
    c = cfg(), c.queues = NULL, c.nqueues = 3, expect_refused(&c, "nqueues");
}

Test(config, the_defaults_pass)
{
    lash_worker_config c = cfg();
    lash_err e = {0};
    cr_assert_eq(lash_worker_config_check(&c, &e), LASH_OK, "%s", e.msg);
    lash_worker *w = NULL;
    cr_assert_eq(lash_worker_new(EV_DEFAULT, &c, &w, &e), LASH_OK, "%s", e.msg);
    lash_worker_free(w);
}

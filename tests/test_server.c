/* test_server.c: the whole-server operations the benchmarks use
 * (registry/server.h) against a private redis-server. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "registry/inspect.h"
#include "registry/server.h"
#include "rfx.h"

TestSuite(server, .init = rfx_setup, .fini = rfx_teardown);

Test(server, info_returns_the_sections_asked_for)
{
    char *text = NULL;
    lash_err e = {0};
    cr_assert_eq(lash_server_info(C, "cpu commandstats", &text, &e), LASH_OK, "%s", e.msg);
    cr_assert(strstr(text, "used_cpu_user:") && strstr(text, "cmdstat_"), "%.200s", text);
    cr_assert_null(strstr(text, "redis_version:"), "a section not asked for");
    free(text);
    cr_assert_eq(lash_server_info(C, NULL, &text, &e), LASH_OK, "%s", e.msg);
    cr_assert_not_null(strstr(text, "redis_version:"));
    free(text);
}

Test(server, flush_empties_every_queue)
{
    submit_ok("a", job("x", "k", "{}"));
    submit_ok("b", job("y", "k", "{}"));
    lash_err e = {0};
    cr_assert_eq(lash_server_flush(C, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(count_keys("*"), 0);
    int64_t due = -1;
    cr_assert_eq(lash_due_count(C, "a", &due, &e), LASH_OK);
    cr_assert_eq(due, 0);
}

Test(server, a_dead_server_is_an_io_error)
{
    lash_fx_redis_stop(&R);
    char *text = (char *)"untouched";
    lash_err e = {0};
    cr_assert_eq(lash_server_info(C, "cpu", &text, &e), LASH_EIO);
    cr_assert_null(text);
    cr_assert_eq(lash_server_flush(C, &e), LASH_EIO);
    lash_fx_redis_start(&R, NULL); /* for the teardown */
}

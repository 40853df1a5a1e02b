/* fixture.h: a private redis-server for one test.
 *
 * Starts `redis-server` (or $LASH_REDIS_SERVER) on a unix socket in a fresh temp
 * dir with persistence off, waits until it answers, and stops it (and removes the
 * dir) at the end. Each criterion test runs in its own process, so each gets a
 * server of its own: no test sees another's keys.
 */
#ifndef LASH_TESTS_FIXTURE_H
#define LASH_TESTS_FIXTURE_H

#include <stdbool.h>
#include <sys/types.h>

#include "registry/registry.h"

typedef struct {
    char dir[128];
    char sock[192];
    char url[256];
    pid_t pid;
} lash_fx_redis;

/* extra: more redis-server arguments (NULL-terminated list), or NULL. Aborts
 * the test (criterion cr_assert) when the server does not come up in 5 s. */
void lash_fx_redis_start(lash_fx_redis *r, const char *const *extra);
void lash_fx_redis_stop(lash_fx_redis *r);
/* kill -9 the server (for restart tests); lash_fx_redis_restart starts it again
 * on the same dir, socket and data. */
void lash_fx_redis_kill9(lash_fx_redis *r);
void lash_fx_redis_restart(lash_fx_redis *r, const char *const *extra);
/* A blocking connection to it (asserts on failure). */
lash_conn *lash_fx_connect(const lash_fx_redis *r);

/* Asserting shorthands over the registry and raw hiredis, shared by the suites. */
lash_stats lash_fx_stats(lash_conn *c, const char *queue);
lash_record lash_fx_get(lash_conn *c, const char *queue, const char *id);
/* Calls of command (lower case, e.g. "fcall") since the server started or
 * its last CONFIG RESETSTAT, from INFO commandstats. */
long long lash_fx_calls(lash_conn *c, const char *command);
/* Keys matching pattern, counted with SCAN (never KEYS: it blocks). */
long long lash_fx_count_keys(lash_conn *c, const char *pattern);
long long lash_fx_lease_keys(lash_conn *c, const char *queue);

/* Sets the queue's event level to 'all' (routine transitions are logged too),
 * for tests that read the events stream. */
void lash_fx_events_all(lash_conn *c, const char *queue);

/* Monotonic milliseconds, for liveness bounds. */
long long lash_fx_ms(void);
void lash_fx_sleep_ms(int ms);

/* The build directory's binaries (set by CMake as LASH_BIN_DIR). */
const char *lash_fx_bin(const char *name);

#endif

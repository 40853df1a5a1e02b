/* builtin.c: the built-in kinds for demos and benchmarks (off unless enabled).
 *
 *   noop   succeeds at once with an empty result;
 *   sleep  waits payload.ms milliseconds (default 100, at most an hour) on the
 *          loop, then succeeds; stoppable;
 *   fail   fails with payload.error (default "failed on purpose").
 */
#include <cjson/cJSON.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker.h"

static void noop(lash_job *j, void *ud)
{
    (void)ud;
    lash_job_done(j, LASH_OUT_OK, NULL, 0);
}

static cJSON *payload_object(lash_job *j)
{
    size_t len;
    const char *p = lash_job_payload(j, &len);
    cJSON *v = cJSON_ParseWithLength(p, len);
    if (v && !cJSON_IsObject(v)) {
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}

static void fail(lash_job *j, void *ud)
{
    (void)ud;
    cJSON *o = payload_object(j);
    const cJSON *m = o ? cJSON_GetObjectItemCaseSensitive(o, "error") : NULL;
    const char *why = cJSON_IsString(m) ? m->valuestring : "failed on purpose";
    lash_job_done(j, LASH_OUT_FAIL, why, strlen(why));
    cJSON_Delete(o);
}

typedef struct {
    ev_timer t;
    lash_job *job;
} sleeper;

static void woke(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    sleeper *s = t->data;
    lash_job *j = s->job;
    free(s);
    lash_job_done(j, LASH_OUT_OK, NULL, 0);
}

static void sleep_start(lash_job *j, void *ud)
{
    (void)ud;
    cJSON *o = payload_object(j);
    const cJSON *m = o ? cJSON_GetObjectItemCaseSensitive(o, "ms") : NULL;
    double ms = cJSON_IsNumber(m) ? m->valuedouble : 100;
    cJSON_Delete(o);
    if (!(ms >= 0 && ms <= 3600000)) {
        static const char why[] = "sleep: payload.ms must be 0..3600000";
        lash_job_done(j, LASH_OUT_ABORT, why, sizeof why - 1);
        return;
    }
    sleeper *s = malloc(sizeof *s);
    if (!s) {
        lash_job_done(j, LASH_OUT_FAIL, "out of memory", 13);
        return;
    }
    s->job = j;
    ev_timer_init(&s->t, woke, ms / 1000.0, 0);
    s->t.data = s;
    lash_job_set_data(j, s);
    ev_timer_start(lash_job_loop(j), &s->t);
}

static void sleep_stop(lash_job *j, void *ud)
{
    (void)ud;
    sleeper *s = lash_job_data(j);
    if (!s) return;
    ev_timer_stop(lash_job_loop(j), &s->t);
    free(s);
    lash_job_set_data(j, NULL);
    lash_job_done(j, LASH_OUT_FAIL, "sleep stopped", 13);
}

lash_status lash_worker_builtin(lash_worker *w, const char *name, lash_err *e)
{
    if (strcmp(name, "noop") == 0) return lash_worker_handle(w, name, noop, NULL, NULL, e);
    if (strcmp(name, "sleep") == 0)
        return lash_worker_handle(w, name, sleep_start, sleep_stop, NULL, e);
    if (strcmp(name, "fail") == 0) return lash_worker_handle(w, name, fail, NULL, NULL, e);
    return lash_fail(e, LASH_EINVAL, "unknown built-in '%s' (noop, sleep, fail)", name);
}

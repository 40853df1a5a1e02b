/* example_embed.c: a program that embeds lash with an in-process handler.
 *
 * Handles kind "upper": the payload must be a JSON string; the result is the
 * same string in upper case, completed asynchronously on the next loop turn (as
 * a real handler waiting on I/O would).
 *
 *   lash-example-embed unix:///tmp/redis.sock
 *   lashctl submit upper --payload '"hello"'
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker.h"

typedef struct {
    ev_idle later;
    lash_job *job;
    char *result;
} pending;

static void finish(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    pending *p = w->data;
    ev_idle_stop(loop, w);
    lash_job_done(p->job, LASH_OUT_OK, p->result, strlen(p->result));
    free(p->result);
    free(p);
}

static void upper(lash_job *job, void *ud)
{
    (void)ud;
    size_t len;
    const char *payload = lash_job_payload(job, &len);
    cJSON *v = cJSON_ParseWithLength(payload, len);
    if (!cJSON_IsString(v)) {
        static const char why[] = "payload must be a JSON string";
        cJSON_Delete(v);
        lash_job_done(job, LASH_OUT_ABORT, why, sizeof why - 1);
        return;
    }
    for (char *c = v->valuestring; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    pending *p = calloc(1, sizeof *p);
    if (!p || !(p->result = cJSON_PrintUnformatted(v))) {
        free(p);
        cJSON_Delete(v);
        lash_job_done(job, LASH_OUT_FAIL, "out of memory", 13);
        return;
    }
    cJSON_Delete(v);
    p->job = job;
    ev_idle_init(&p->later, finish);
    p->later.data = p;
    ev_idle_start(lash_job_loop(job), &p->later);
}

static void on_term(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)revents;
    lash_worker_shutdown(s->data);
}

int main(int argc, char **argv)
{
    lash_worker_config cfg;
    lash_worker *w;
    lash_err e;
    struct ev_loop *loop = EV_DEFAULT;
    signal(SIGPIPE, SIG_IGN);
    lash_worker_config_default(&cfg);
    cfg.redis_url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
    if (lash_worker_new(loop, &cfg, &w, &e) ||
        lash_worker_handle(w, "upper", upper, NULL, NULL, &e)) {
        fprintf(stderr, "lash-example-embed: %s\n", e.msg);
        return 1;
    }
    ev_signal term;
    ev_signal_init(&term, on_term, SIGTERM);
    term.data = w;
    ev_signal_start(loop, &term);
    lash_worker_start(w);
    ev_run(loop, 0);
    ev_signal_stop(loop, &term);
    lash_worker_free(w);
    return 0;
}

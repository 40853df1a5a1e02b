/* metrics.c: lash-worker's Prometheus endpoint (see metrics.h). */
#include "worker/metrics.h"

#include <dlfcn.h>
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/listen.h"
#include "proto/prom.h"

#ifdef LASH_HAVE_MHD
#include <microhttpd.h>
#endif

/* Handler run time buckets, seconds: from a noop to a long exec. */
static const double bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                1,     2.5,   5,    10,    30,   60,  300};
#define NB (sizeof bounds / sizeof bounds[0])
/* Kinds with a series of their own; the rest (kinds no handler knows, which
 * hostile rows can invent at will) share "other", so rows cannot blow up the
 * number of series. */
#define MAX_KINDS 64

typedef struct {
    char kind[LASH_KIND_MAX + 1];
    uint64_t bucket[NB + 1]; /* the last is +Inf */
    uint64_t count;
    double sum;
} hist;

struct lash_wmetrics {
    pthread_mutex_t mu;
    lash_counters k; /* the snapshot */
    int running, prefetched, slots;
    hist h[MAX_KINDS + 1];
    int nh;
    lash_worker *w;
    struct ev_loop *loop;
    ev_check check;
    void *mhd;     /* struct MHD_Daemon * */
    void *lib;     /* dlopen handle */
    void *stop_fn; /* MHD_stop_daemon */
    void *fns[5];  /* the MHD functions a request needs */
    int port;
};

static void on_check(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)loop;
    (void)revents;
    lash_wmetrics *m = c->data;
    const lash_counters *k = lash_worker_counters(m->w);
    int running = lash_worker_running(m->w), prefetched = lash_worker_prefetched(m->w);
    pthread_mutex_lock(&m->mu);
    m->k = *k;
    m->running = running;
    m->prefetched = prefetched;
    pthread_mutex_unlock(&m->mu);
}

void lash_wmetrics_job_end(void *ud, const char *kind, lash_outcome o, int64_t run_ms)
{
    (void)o;
    lash_wmetrics *m = ud;
    double s = (double)(run_ms < 0 ? 0 : run_ms) / 1000.0;
    pthread_mutex_lock(&m->mu);
    hist *h = NULL;
    for (int i = 0; i < m->nh && !h; i++)
        if (strcmp(m->h[i].kind, kind) == 0) h = &m->h[i];
    if (!h && m->nh < MAX_KINDS) {
        h = &m->h[m->nh++];
        snprintf(h->kind, sizeof h->kind, "%s", kind);
    }
    if (!h) h = &m->h[MAX_KINDS]; /* "other" */
    size_t b = 0;
    while (b < NB && s > bounds[b])
        b++;
    h->bucket[b]++;
    h->count++;
    h->sum += s;
    pthread_mutex_unlock(&m->mu);
}

static void emit_hist(lash_prom_buf *b, const hist *h, const char *kind)
{
    if (!h->count) return;
    uint64_t acc = 0;
    char le[32];
    for (size_t k = 0; k <= NB; k++) {
        acc += h->bucket[k];
        if (k < NB)
            snprintf(le, sizeof le, "%g", bounds[k]);
        else
            snprintf(le, sizeof le, "+Inf");
        lash_prom_sample(b, "lash_worker_handler_seconds_bucket", (double)acc, "kind", kind, "le",
                         le, NULL);
    }
    lash_prom_sample(b, "lash_worker_handler_seconds_sum", h->sum, "kind", kind, NULL);
    lash_prom_sample(b, "lash_worker_handler_seconds_count", (double)h->count, "kind", kind, NULL);
}

char *lash_wmetrics_text(lash_wmetrics *m, size_t *len)
{
    lash_prom_buf b = {0};
    pthread_mutex_lock(&m->mu);
    const struct {
        const char *name;
        uint64_t v;
        const char *help;
    } c[] = {
        {"lash_worker_claims_total", m->k.claims_sent, "Claim calls sent."},
        {"lash_worker_rows_claimed_total", m->k.rows_claimed, "Rows claimed."},
        {"lash_worker_completes_total", m->k.completes_sent, "Complete calls sent."},
        {"lash_worker_rows_recorded_total", m->k.rows_recorded, "Outcomes Redis recorded."},
        {"lash_worker_stale_completes_total", m->k.rows_stale,
         "Outcomes refused because the lease had moved on (stale)."},
        {"lash_worker_renews_total", m->k.renews_sent, "Renew calls sent."},
        {"lash_worker_leases_lost_total", m->k.leases_lost,
         "Leases lost (a running process was stopped, a prefetched row dropped)."},
        {"lash_worker_releases_total", m->k.releases_sent, "Release calls sent."},
        {"lash_worker_reconnects_total", m->k.reconnects, "Reconnects to Redis."},
        {"lash_worker_pokes_total", m->k.pokes, "Pokes received."},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        lash_prom_family(&b, c[i].name, "counter", c[i].help);
        lash_prom_sample(&b, c[i].name, (double)c[i].v, NULL);
    }
    lash_prom_family(&b, "lash_worker_running", "gauge", "Jobs running now.");
    lash_prom_sample(&b, "lash_worker_running", m->running, NULL);
    lash_prom_family(&b, "lash_worker_prefetched", "gauge",
                     "Rows claimed ahead (--prefetch): leased, waiting to start.");
    lash_prom_sample(&b, "lash_worker_prefetched", m->prefetched, NULL);
    lash_prom_family(&b, "lash_worker_slots", "gauge", "Jobs this worker runs at once at most.");
    lash_prom_sample(&b, "lash_worker_slots", m->slots, NULL);
    lash_prom_family(&b, "lash_worker_handler_seconds", "histogram",
                     "Run time of each job, from its start to the handler's end, per kind.");
    for (int i = 0; i < m->nh; i++)
        emit_hist(&b, &m->h[i], m->h[i].kind);
    emit_hist(&b, &m->h[MAX_KINDS], "other");
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        lash_prom_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.s;
}

int lash_wmetrics_port(const lash_wmetrics *m)
{
    return m->port;
}

#ifdef LASH_HAVE_MHD
/* The libmicrohttpd functions, found with dlsym. */
typedef struct MHD_Daemon *start_fn(unsigned, uint16_t, MHD_AcceptPolicyCallback, void *,
                                    MHD_AccessHandlerCallback, void *, ...);
typedef void stop_fn(struct MHD_Daemon *);
typedef struct MHD_Response *create_fn(size_t, void *, enum MHD_ResponseMemoryMode);
typedef enum MHD_Result header_fn(struct MHD_Response *, const char *, const char *);
typedef enum MHD_Result queue_fn(struct MHD_Connection *, unsigned, struct MHD_Response *);
typedef void destroy_fn(struct MHD_Response *);
typedef const union MHD_DaemonInfo *info_fn(struct MHD_Daemon *, enum MHD_DaemonInfoType, ...);

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    lash_wmetrics *m = cls;
    create_fn *create = (create_fn *)m->fns[0];
    header_fn *header = (header_fn *)m->fns[1];
    queue_fn *queue = (queue_fn *)m->fns[2];
    destroy_fn *destroy = (destroy_fn *)m->fns[3];
    if (*upload_data_size) { /* no body wanted: dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    unsigned status = 200;
    size_t len = 0;
    char *text = NULL;
    const char *type = "text/plain; version=0.0.4; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        text = strdup("method not allowed\n");
    } else if (strcmp(url, "/metrics") != 0) {
        status = 404;
        text = strdup("the metrics are at /metrics\n");
    } else {
        text = lash_wmetrics_text(m, &len);
    }
    if (!text) return MHD_NO;
    if (status != 200) {
        len = strlen(text);
        type = "text/plain; charset=utf-8";
    }
    struct MHD_Response *r = create(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    header(r, "Content-Type", type);
    header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = queue(conn, status, r);
    destroy(r);
    return ret;
}

static lash_status serve(lash_wmetrics *m, const char *addr, lash_err *e)
{
    lash_listen l;
    lash_status st = lash_listen_parse(addr, &l, e);
    if (st) return st;
    m->lib = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
    if (!m->lib)
        return lash_fail(e, LASH_EINVAL,
                         "--metrics-listen needs libmicrohttpd (Debian: libmicrohttpd12): %s",
                         dlerror());
    static const char *const names[] = {"MHD_create_response_from_buffer",
                                        "MHD_add_response_header", "MHD_queue_response",
                                        "MHD_destroy_response", "MHD_get_daemon_info"};
    for (int i = 0; i < 5; i++)
        if (!(m->fns[i] = dlsym(m->lib, names[i])))
            return lash_fail(e, LASH_EINVAL, "libmicrohttpd lacks %s", names[i]);
    void *start = dlsym(m->lib, "MHD_start_daemon");
    m->stop_fn = dlsym(m->lib, "MHD_stop_daemon");
    if (!start || !m->stop_fn) return lash_fail(e, LASH_EINVAL, "libmicrohttpd lacks its daemon");
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (l.sa.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    m->mhd = ((start_fn *)start)(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, &l.sa,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!m->mhd) return lash_fail(e, LASH_EIO, "metrics: cannot listen on %s", addr);
    const union MHD_DaemonInfo *info = ((info_fn *)m->fns[4])(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : 0;
    return LASH_OK;
}
#else
static lash_status serve(lash_wmetrics *m, const char *addr, lash_err *e)
{
    (void)m;
    (void)addr;
    return lash_fail(e, LASH_EINVAL,
                     "--metrics-listen: this lash-worker was built without libmicrohttpd");
}
#endif

lash_status lash_wmetrics_start(const char *addr, struct ev_loop *loop, lash_worker *w, int slots,
                                lash_wmetrics **out, lash_err *e)
{
    lash_wmetrics *m = calloc(1, sizeof *m);
    if (!m) return lash_fail(e, LASH_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    m->w = w;
    m->loop = loop;
    m->slots = slots;
    lash_status st = serve(m, addr, e);
    if (st) {
        lash_wmetrics_stop(m);
        return st;
    }
    ev_check_init(&m->check, on_check);
    m->check.data = m;
    ev_check_start(loop, &m->check);
    *out = m;
    return LASH_OK;
}

void lash_wmetrics_stop(lash_wmetrics *m)
{
    if (!m) return;
    if (m->loop && ev_is_active(&m->check)) ev_check_stop(m->loop, &m->check);
#ifdef LASH_HAVE_MHD
    if (m->mhd) ((stop_fn *)m->stop_fn)(m->mhd);
#endif
    if (m->lib) dlclose(m->lib);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

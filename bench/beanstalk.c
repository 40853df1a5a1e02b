/* beanstalk.c: `lash-bench beanstalkd`: beanstalkd measured the way lash-bench
 * measures lash, printing the same JSON lines (keys beanstalkd.*).
 *
 *   lash-bench beanstalkd --addr 127.0.0.1:PORT --pid PID [--n N] [--quick]
 *
 * A small client of its own (the text protocol, protocol.txt of beanstalkd):
 *   put:     N jobs of body "{}" pipelined on one connection, 1,000 at a time
 *            -> jobs/s;
 *   drain:   the same N jobs put again, then c connections served by one thread
 *            (epoll), each looping `reserve-with-timeout 0` / `delete` until the
 *            server answers TIMED_OUT, as one lash worker at concurrency c runs
 *            c processes -> jobs/s, and the server's CPU per job (put + reserve
 *            + delete: /proc/PID/stat of beanstalkd, like lash's "life" figure);
 *   latency: an idle reserver blocked in `reserve`; one job at a time carries
 *            its put time (CLOCK_REALTIME), 5 ms apart -> p50/p99 of put ->
 *            reserved.
 * Every job put is reserved and deleted, or the run fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench.h"

#define PUT_WINDOW 1000
#define LINE_MAX_ 256

typedef struct {
    struct sockaddr_in at;
    int pid;
    long n;
    bool quick;
} bs_opts;

/* ---- one connection: buffered lines -------------------------------------------- */

typedef struct {
    int fd;
    char in[8192];
    size_t len;
} bs_conn;

static void bs_open(bs_conn *c, const bs_opts *o)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (const struct sockaddr *)&o->at, sizeof o->at) != 0)
        bench_die("beanstalkd: cannot connect: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void bs_send(bs_conn *c, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(c->fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) bench_die("beanstalkd: write: %s", strerror(errno));
        buf += w;
        len -= (size_t)w;
    }
}

/* The next "\r\n"-ended line (without it) into line; blocking. */
static void bs_line(bs_conn *c, char *line, size_t cap)
{
    for (;;) {
        char *end = memmem(c->in, c->len, "\r\n", 2);
        if (end) {
            size_t n = (size_t)(end - c->in);
            if (n >= cap) bench_die("beanstalkd: reply line over %zu bytes", cap);
            memcpy(line, c->in, n);
            line[n] = 0;
            c->len -= n + 2;
            memmove(c->in, end + 2, c->len);
            return;
        }
        if (c->len == sizeof c->in) bench_die("beanstalkd: reply too long");
        ssize_t r = read(c->fd, c->in + c->len, sizeof c->in - c->len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) bench_die("beanstalkd: connection lost");
        c->len += (size_t)r;
    }
}

/* ---- put ----------------------------------------------------------------------- */

static void put_all(const bs_opts *o, long n, double *secs)
{
    static const char cmd[] = "put 0 0 60 2\r\n{}\r\n";
    bs_conn c;
    bs_open(&c, o);
    char *batch = malloc(PUT_WINDOW * (sizeof cmd - 1));
    if (!batch) bench_die("out of memory");
    char line[LINE_MAX_];
    double t0 = bench_now();
    for (long done = 0; done < n;) {
        long k = n - done < PUT_WINDOW ? n - done : PUT_WINDOW;
        for (long i = 0; i < k; i++)
            memcpy(batch + i * (long)(sizeof cmd - 1), cmd, sizeof cmd - 1);
        bs_send(&c, batch, (size_t)k * (sizeof cmd - 1));
        for (long i = 0; i < k; i++) {
            bs_line(&c, line, sizeof line);
            if (strncmp(line, "INSERTED ", 9) != 0) bench_die("beanstalkd: put: %s", line);
        }
        done += k;
    }
    *secs = bench_now() - t0;
    free(batch);
    close(c.fd);
}

/* ---- drain: c connections on one epoll loop ------------------------------------ */

typedef enum { AWAIT_RESERVE, AWAIT_DELETE, FINISHED } bs_step;

typedef struct {
    bs_conn c;
    bs_step step;
    size_t body_left; /* RESERVED: body bytes + CRLF still to skip */
} bs_slot;

static void slot_reserve(bs_slot *s)
{
    static const char cmd[] = "reserve-with-timeout 0\r\n";
    bs_send(&s->c, cmd, sizeof cmd - 1);
    s->step = AWAIT_RESERVE;
}

/* Consumes what arrived on s; returns jobs deleted. */
static long slot_feed(bs_slot *s)
{
    long deleted = 0;
    for (;;) {
        if (s->body_left) {
            size_t k = s->c.len < s->body_left ? s->c.len : s->body_left;
            memmove(s->c.in, s->c.in + k, s->c.len - k);
            s->c.len -= k;
            s->body_left -= k;
            if (s->body_left) return deleted;
            continue;
        }
        char *end = memmem(s->c.in, s->c.len, "\r\n", 2);
        if (!end) return deleted;
        *end = 0;
        const char *line = s->c.in;
        size_t used = (size_t)(end - s->c.in) + 2;
        unsigned long long id = 0;
        size_t bytes = 0;
        if (s->step == AWAIT_RESERVE && sscanf(line, "RESERVED %llu %zu", &id, &bytes) == 2) {
            char del[64];
            int k = snprintf(del, sizeof del, "delete %llu\r\n", id);
            bs_send(&s->c, del, (size_t)k);
            s->step = AWAIT_DELETE;
            s->body_left = bytes + 2;
        } else if (s->step == AWAIT_RESERVE && strcmp(line, "TIMED_OUT") == 0) {
            s->step = FINISHED;
        } else if (s->step == AWAIT_DELETE && strcmp(line, "DELETED") == 0) {
            deleted++;
            slot_reserve(s);
        } else {
            bench_die("beanstalkd: unexpected reply '%.60s'", line);
        }
        s->c.len -= used;
        memmove(s->c.in, s->c.in + used, s->c.len);
        if (s->step == FINISHED) return deleted;
    }
}

static long drain(const bs_opts *o, int conc, double *secs)
{
    bs_slot *slots = calloc((size_t)conc, sizeof *slots);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!slots || ep < 0) bench_die("drain: %s", strerror(errno));
    double t0 = bench_now();
    for (int i = 0; i < conc; i++) {
        bs_open(&slots[i].c, o);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &slots[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, slots[i].c.fd, &ev) != 0) bench_die("epoll_ctl");
        slot_reserve(&slots[i]);
    }
    long deleted = 0;
    int open = conc;
    struct epoll_event evs[64];
    while (open > 0) {
        int k = epoll_wait(ep, evs, 64, 10000);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) bench_die("beanstalkd: no reply in 10 s");
        for (int i = 0; i < k; i++) {
            bs_slot *s = evs[i].data.ptr;
            ssize_t r = read(s->c.fd, s->c.in + s->c.len, sizeof s->c.in - s->c.len);
            if (r <= 0) bench_die("beanstalkd: connection lost");
            s->c.len += (size_t)r;
            deleted += slot_feed(s);
            if (s->step == FINISHED) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s->c.fd, NULL);
                close(s->c.fd);
                open--;
            }
        }
    }
    *secs = bench_now() - t0;
    close(ep);
    free(slots);
    return deleted;
}

/* ---- latency ------------------------------------------------------------------- */

typedef struct {
    const bs_opts *o;
    int samples;
    double *ms;
} lat_run;

static void *reserver(void *arg)
{
    lat_run *L = arg;
    bs_conn c;
    bs_open(&c, L->o);
    char line[LINE_MAX_];
    for (int i = 0; i < L->samples; i++) {
        bs_send(&c, "reserve\r\n", 9);
        bs_line(&c, line, sizeof line);
        int64_t now = bench_wall_ns();
        unsigned long long id;
        size_t bytes;
        if (sscanf(line, "RESERVED %llu %zu", &id, &bytes) != 2) bench_die("reserve: %s", line);
        bs_line(&c, line, sizeof line); /* the body: the put time, ns */
        L->ms[i] = (double)(now - atoll(line)) / 1e6;
        int k = snprintf(line, sizeof line, "delete %llu\r\n", id);
        bs_send(&c, line, (size_t)k);
        bs_line(&c, line, sizeof line);
        if (strcmp(line, "DELETED") != 0) bench_die("delete: %s", line);
    }
    close(c.fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void latency(const bs_opts *o)
{
    lat_run L = {o, o->quick ? 50 : 300, NULL};
    L.ms = calloc((size_t)L.samples, sizeof *L.ms);
    pthread_t th;
    if (!L.ms || pthread_create(&th, NULL, reserver, &L) != 0) bench_die("latency: thread");
    bench_sleep(0.1); /* the reserver is waiting */
    bs_conn c;
    bs_open(&c, o);
    char buf[128], line[LINE_MAX_];
    for (int i = 0; i < L.samples; i++) {
        char body[32];
        int blen = snprintf(body, sizeof body, "%lld", (long long)bench_wall_ns());
        int k = snprintf(buf, sizeof buf, "put 0 0 60 %d\r\n%s\r\n", blen, body);
        bs_send(&c, buf, (size_t)k);
        bs_line(&c, line, sizeof line);
        if (strncmp(line, "INSERTED ", 9) != 0) bench_die("put: %s", line);
        bench_sleep(0.005);
    }
    pthread_join(th, NULL);
    close(c.fd);
    qsort(L.ms, (size_t)L.samples, sizeof *L.ms, cmp_double);
    bench_emit("beanstalkd.latency.p50", "beanstalkd put -> reserved p50", "ms",
               L.ms[L.samples / 2], false);
    bench_emit("beanstalkd.latency.p99", "beanstalkd put -> reserved p99", "ms",
               L.ms[(L.samples * 99) / 100], false);
    free(L.ms);
}

/* ---- the scenario -------------------------------------------------------------- */

static void parse_addr(const char *s, struct sockaddr_in *at)
{
    char host[64];
    int port;
    if (sscanf(s, "%63[^:]:%d", host, &port) != 2 || port < 1 || port > 65535)
        bench_die("--addr wants HOST:PORT, got '%s'", s);
    memset(at, 0, sizeof *at);
    at->sin_family = AF_INET;
    at->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &at->sin_addr) != 1) bench_die("--addr: '%s' is no IPv4", host);
}

int bench_beanstalkd(int argc, char **argv)
{
    bs_opts o = {.n = 100000};
    const char *addr = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc)
            addr = argv[++i];
        else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
            o.pid = atoi(argv[++i]);
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            o.n = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--quick") == 0)
            o.quick = true;
        else
            bench_die("beanstalkd: unknown argument %s", argv[i]);
    }
    if (!addr || o.pid <= 0 || o.n < 1)
        bench_die("usage: lash-bench beanstalkd --addr HOST:PORT --pid PID [--n N] [--quick]");
    parse_addr(addr, &o.at);
    if (o.quick) o.n = o.n < 2000 ? o.n : 2000;
    bench_note("beanstalkd: %ld jobs per step at %s", o.n, addr);

    double secs;
    put_all(&o, o.n, &secs);
    bench_emit("beanstalkd.put.rate", "beanstalkd put, pipelined (1 conn)", "jobs/s",
               (double)o.n / secs, false);
    long rest = drain(&o, 64, &secs); /* the jobs just put, so each drain starts empty */
    if (rest != o.n) bench_die("beanstalkd: drained %ld of %ld", rest, o.n);

    static const int conc[] = {1, 10, 50, 256};
    for (size_t i = 0; i < sizeof conc / sizeof *conc; i++) {
        if (o.quick && conc[i] > 50) break;
        double cpu0 = bench_pid_cpu(o.pid);
        put_all(&o, o.n, &secs);
        long got = drain(&o, conc[i], &secs);
        double cpu1 = bench_pid_cpu(o.pid);
        if (got != o.n) bench_die("beanstalkd: drained %ld of %ld at c=%d", got, o.n, conc[i]);
        if (cpu0 < 0 || cpu1 < 0) bench_die("beanstalkd: cannot read /proc/%d/stat", o.pid);
        char key[64], label[96];
        snprintf(key, sizeof key, "beanstalkd.drain.c%d.rate", conc[i]);
        snprintf(label, sizeof label, "beanstalkd drain, 1 client c=%d", conc[i]);
        bench_emit(key, label, "jobs/s", (double)o.n / secs, false);
        snprintf(key, sizeof key, "beanstalkd.drain.c%d.server_us", conc[i]);
        snprintf(label, sizeof label, "beanstalkd c=%d: server CPU per job (put+reserve+delete)",
                 conc[i]);
        bench_emit(key, label, "us", (cpu1 - cpu0) * 1e6 / (double)o.n, false);
    }
    latency(&o);
    return 0;
}

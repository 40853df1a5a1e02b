/* url.c: Redis URL parsing (see url.h). */
#include "proto/url.h"

#include <stdio.h>
#include <string.h>

#include "proto/record.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies s[0..n) into dst (cap bytes) decoding %XX; false when it does not fit or
 * an escape is broken. */
static bool decode(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n) return false;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap) return false;
        dst[o++] = c;
    }
    dst[o] = 0;
    return true;
}

/* A DNS name or IPv4 address; inside brackets an IPv6 address (with a %zone). */
static bool host_ok(const char *h, bool bracketed)
{
    for (; *h; h++) {
        unsigned char c = (unsigned char)*h;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || (bracketed ? (c == ':' || c == '%') : c == '_');
        if (!ok) return false;
    }
    return true;
}

static lash_status parse_userinfo(const char *s, size_t n, lash_url *u, lash_err *e)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    if (!decode(u->user, sizeof u->user, s, ulen))
        return lash_fail(e, LASH_EINVAL, "Redis URL: bad or too long user name");
    if (colon && !decode(u->password, sizeof u->password, colon + 1, n - ulen - 1))
        return lash_fail(e, LASH_EINVAL, "Redis URL: bad or too long password");
    /* No colon: a user name alone (RFC 3986 userinfo), its password to come
     * from LASH_REDIS_PASSWORD; a password alone is written redis://:pw@host. */
    return LASH_OK;
}

static lash_status parse_db(const char *s, lash_url *u, lash_err *e)
{
    int64_t db;
    if (!lash_parse_i64(s, strlen(s), 0, 65535, &db))
        return lash_fail(e, LASH_EINVAL, "Redis URL: database '%.16s' is not a number 0..65535", s);
    u->db = (int)db;
    return LASH_OK;
}

/* Parses "host[:port]" or "[v6]:port" from p[0..n) into host (cap bytes) and
 * *port (left alone when absent). */
static lash_status parse_hostport(const char *p, size_t n, char *host, size_t cap, int *port,
                                  lash_err *e)
{
    const char *colon = NULL;
    if (n && p[0] == '[') { /* [::1]:6379 */
        const char *rb = memchr(p, ']', n);
        if (!rb) return lash_fail(e, LASH_EINVAL, "Redis URL: unclosed '[' in host");
        if ((size_t)(rb - p - 1) >= cap)
            return lash_fail(e, LASH_EINVAL, "Redis URL: host too long");
        memcpy(host, p + 1, (size_t)(rb - p - 1));
        host[rb - p - 1] = 0;
        if (rb + 1 < p + n) {
            if (rb[1] != ':') return lash_fail(e, LASH_EINVAL, "Redis URL: junk after ']'");
            colon = rb + 1;
        }
    } else {
        colon = memchr(p, ':', n);
        size_t hlen = colon ? (size_t)(colon - p) : n;
        if (hlen >= cap) return lash_fail(e, LASH_EINVAL, "Redis URL: host too long");
        memcpy(host, p, hlen);
        host[hlen] = 0;
    }
    if (!host[0]) return lash_fail(e, LASH_EINVAL, "Redis URL: host is empty");
    if (!host_ok(host, n && p[0] == '['))
        return lash_fail(e, LASH_EINVAL,
                         "Redis URL: host '%.64s' has a character no host name has "
                         "(?db=N belongs to unix:// URLs; TCP takes /N)",
                         host);
    if (colon) {
        int64_t v;
        if (!lash_parse_i64(colon + 1, (size_t)(p + n - colon - 1), 1, 65535, &v))
            return lash_fail(e, LASH_EINVAL, "Redis URL: port is not a number 1..65535");
        *port = (int)v;
    }
    return LASH_OK;
}

static lash_status parse_unix(const char *p, lash_url *u, lash_err *e)
{
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n == 0 || p[0] != '/' || n >= sizeof u->path)
        return lash_fail(e, LASH_EINVAL,
                         "Redis URL: unix socket path must be absolute and "
                         "under %zu bytes",
                         sizeof u->path);
    memcpy(u->path, p, n);
    u->path[n] = 0;
    if (q) {
        if (strncmp(q, "?db=", 4) != 0)
            return lash_fail(e, LASH_EINVAL, "Redis URL: only ?db=N may follow a socket path");
        return parse_db(q + 4, u, e);
    }
    return LASH_OK;
}

/* The name Sentinel knows the primary by: printable ASCII, no space. */
static lash_status parse_master(const char *s, lash_url *u, lash_err *e)
{
    if (!decode(u->master, sizeof u->master, s, strlen(s)) || !u->master[0])
        return lash_fail(e, LASH_EINVAL,
                         "Redis URL: redis-sentinel:// needs the primary's name after '#' "
                         "(1..127 bytes), as in redis-sentinel://h1:26379,h2:26379#mymaster");
    for (const char *c = u->master; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return lash_fail(e, LASH_EINVAL,
                             "Redis URL: the primary's name after '#' has a space or a "
                             "non-printable byte");
    return LASH_OK;
}

/* h1[:p1],h2[:p2],... of p[0..n) into u->sentinels. */
static lash_status parse_sentinels(const char *p, size_t n, lash_url *u, lash_err *e)
{
    const char *end = p + n;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        if (u->nsentinels == LASH_URL_SENTINELS_MAX)
            return lash_fail(e, LASH_EINVAL, "Redis URL: more than %d Sentinels",
                             LASH_URL_SENTINELS_MAX);
        lash_url_host *h = &u->sentinels[u->nsentinels];
        h->port = LASH_SENTINEL_PORT;
        lash_status st = parse_hostport(p, len, h->host, sizeof h->host, &h->port, e);
        if (st) return st;
        u->nsentinels++;
        if (!comma) break;
        p = comma + 1;
    }
    return LASH_OK;
}

lash_status lash_url_parse(const char *s, lash_url *u, lash_err *e)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!s || !*s) return lash_fail(e, LASH_EINVAL, "Redis URL is empty");
    if (strlen(s) > 1024) return lash_fail(e, LASH_EINVAL, "Redis URL is too long");
    bool unix_sock = strncmp(s, "unix://", 7) == 0;
    bool sentinel = strncmp(s, "redis-sentinel://", 17) == 0;
    if (!unix_sock && !sentinel && strncmp(s, "redis://", 8) != 0)
        return lash_fail(e, LASH_EINVAL,
                         "Redis URL '%.64s' must start with redis://, unix:// or "
                         "redis-sentinel://",
                         s);
    const char *p = s + (unix_sock ? 7 : sentinel ? 17 : 8);
    /* Sentinel URLs end in #master; the part before it is parsed like the rest. */
    char body[1025];
    if (sentinel) {
        const char *hash = strrchr(p, '#');
        if (!hash)
            return lash_fail(e, LASH_EINVAL,
                             "Redis URL: redis-sentinel:// needs the primary's name after "
                             "'#', as in redis-sentinel://h1:26379,h2:26379#mymaster");
        lash_status st = parse_master(hash + 1, u, e);
        if (st) return st;
        memcpy(body, p, (size_t)(hash - p));
        body[hash - p] = 0;
        p = body;
    }
    const char *at = strrchr(p, '@');
    lash_status st;
    if (at) {
        if ((st = parse_userinfo(p, (size_t)(at - p), u, e))) return st;
        p = at + 1;
    }
    if (unix_sock) return parse_unix(p, u, e);
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    if (sentinel)
        st = parse_sentinels(p, hostport, u, e);
    else
        st = parse_hostport(p, hostport, u->host, sizeof u->host, &u->port, e);
    if (st) return st;
    if (slash && slash[1]) return parse_db(slash + 1, u, e);
    return LASH_OK;
}

void lash_url_describe(const lash_url *u, char *buf, unsigned len)
{
    const char *auth = u->password[0] ? ":***@" : (u->user[0] ? "@" : "");
    if (u->nsentinels > 0) {
        char hosts[LASH_URL_SENTINELS_MAX * 270] = "";
        size_t o = 0;
        for (int i = 0; i < u->nsentinels && o < sizeof hosts; i++) {
            const lash_url_host *h = &u->sentinels[i];
            int n = snprintf(hosts + o, sizeof hosts - o,
                             strchr(h->host, ':') ? "%s[%s]:%d" : "%s%s:%d", i ? "," : "", h->host,
                             h->port);
            if (n < 0) break;
            o += (size_t)n;
        }
        snprintf(buf, len, "redis-sentinel://%s%s%s/%d#%s", u->user, auth, hosts, u->db, u->master);
    } else if (u->path[0])
        snprintf(buf, len, "unix://%s%s%s?db=%d", u->user, auth, u->path, u->db);
    else
        snprintf(buf, len, "redis://%s%s%s:%d/%d", u->user, auth, u->host, u->port, u->db);
}

/* keys.c: key names and name validation (see keys.h). */
#include "proto/keys.h"

#include <stdio.h>
#include <string.h>

static const char *const suffix[] = {
    [LASH_KEY_BASE] = "",
    [LASH_KEY_DUE] = ":due",
    [LASH_KEY_DONE] = ":done",
    [LASH_KEY_EVENTS] = ":events",
    [LASH_KEY_STATS] = ":stats",
    [LASH_KEY_WORKERS] = ":workers",
    [LASH_CHAN_POKE] = ":poke",
    [LASH_CHAN_CANCEL] = ":cancel",
    [LASH_CHAN_FINISHED] = ":finished",
    [LASH_CHAN_PROGRESS] = ":progress",
};

char *lash_key(char *buf, const char *queue, lash_key_kind k)
{
    snprintf(buf, LASH_KEY_MAX, "lash:{%s}%s", queue, suffix[k]);
    return buf;
}

char *lash_key_row(char *buf, const char *queue, const char *id)
{
    snprintf(buf, LASH_KEY_MAX, "lash:{%s}:p:%s", queue, id);
    return buf;
}

char *lash_key_lease(char *buf, const char *queue, const char *id)
{
    snprintf(buf, LASH_KEY_MAX, "lash:{%s}:lease:%s", queue, id);
    return buf;
}

/* Names go into keys, log lines and shell environments, so they are restricted
 * to a charset that needs no quoting anywhere. Ids may also hold ':' and '@'
 * (a schedule's firings are NAME@<ms>). */
static bool name_char(unsigned char c, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || (colon && (c == ':' || c == '@'));
}

static lash_status check_name(const char *what, const char *s, size_t len, size_t max, bool colon,
                              lash_err *e)
{
    if (!s || len == 0) return lash_fail(e, LASH_EINVAL, "%s is empty", what);
    if (len > max) return lash_fail(e, LASH_EINVAL, "%s is %zu bytes, over %zu", what, len, max);
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)s[i], colon))
            return lash_fail(e, LASH_EINVAL,
                             "%s has byte 0x%02x at %zu: allowed are A-Z a-z 0-9 . _ -%s", what,
                             (unsigned char)s[i], i, colon ? " : @" : "");
    return LASH_OK;
}

lash_status lash_queue_check(const char *q, lash_err *e)
{
    return check_name("queue name", q, q ? strlen(q) : 0, LASH_QUEUE_MAX, false, e);
}

lash_status lash_id_check(const char *id, size_t len, lash_err *e)
{
    return check_name("process id", id, len, LASH_ID_MAX, true, e);
}

lash_status lash_kind_check(const char *kind, size_t len, lash_err *e)
{
    return check_name("kind", kind, len, LASH_KIND_MAX, false, e);
}

lash_status lash_worker_id_check(const char *w, lash_err *e)
{
    size_t len = w ? strlen(w) : 0;
    if (len == 0) return lash_fail(e, LASH_EINVAL, "worker id is empty");
    if (len > LASH_WORKER_ID_MAX)
        return lash_fail(e, LASH_EINVAL, "worker id is over %d bytes", LASH_WORKER_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)w[i];
        /* A lease token is "<worker-id>:<fence>"; the fence follows the last
         * colon, so colons inside the id (host:pid) are harmless. */
        if (c <= ' ' || c >= 0x7f)
            return lash_fail(e, LASH_EINVAL, "worker id has byte 0x%02x at %zu", c, i);
    }
    return LASH_OK;
}

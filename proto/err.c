/* err.c: the error value (see err.h). */
#include "proto/err.h"

#include <stdarg.h>
#include <stdio.h>

lash_status lash_fail(lash_err *e, lash_status code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *lash_status_name(lash_status s)
{
    static const char *const names[] = {
        [LASH_OK] = "ok",
        [LASH_EINVAL] = "invalid",
        [LASH_ENOTFOUND] = "not-found",
        [LASH_ECONFLICT] = "conflict",
        [LASH_ESTALE] = "stale",
        [LASH_EREFUSED] = "refused",
        [LASH_EIO] = "unreachable",
        [LASH_EREDIS] = "redis-error",
        [LASH_ENOMEM] = "no-memory",
        [LASH_EPROTO] = "protocol",
        [LASH_EDURABLE] = "not-durable",
    };
    if ((unsigned)s < sizeof names / sizeof names[0] && names[s]) return names[s];
    return "unknown";
}

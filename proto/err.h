/* err.h: errors are values.
 *
 * Every lash call that can fail returns a lash_status and, when the caller passes
 * a lash_err, fills it with the same code and one human sentence saying what went
 * wrong. No call prints, aborts or exits on bad input.
 */
#ifndef LASH_PROTO_ERR_H
#define LASH_PROTO_ERR_H

typedef enum {
    LASH_OK = 0,
    LASH_EINVAL,    /* bad argument or malformed data (the message names it) */
    LASH_ENOTFOUND, /* no such process */
    LASH_ECONFLICT, /* same id submitted with a different registration */
    LASH_ESTALE,    /* the caller no longer holds the lease: nothing changed */
    LASH_EREFUSED,  /* the operation does not apply in the row's state */
    LASH_EIO,       /* Redis unreachable or the connection broke */
    LASH_EREDIS,    /* Redis answered with an error */
    LASH_ENOMEM,
    LASH_EPROTO,   /* Redis answered something lash does not understand */
    LASH_EDURABLE, /* written, but fewer replicas than asked confirmed it in time (WAIT) */
} lash_status;

typedef struct lash_err {
    lash_status code;
    char msg[256];
} lash_err;

/* Records code and a printf-style message in e (which may be NULL); returns code. */
lash_status lash_fail(lash_err *e, lash_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short constant name for a status, e.g. "stale". */
const char *lash_status_name(lash_status s);

#endif

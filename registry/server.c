/* server.c: INFO and FLUSHALL (see server.h). */
#include "registry/server.h"

#include <stdlib.h>
#include <string.h>

#include "registry/conn.h"
#include "registry/reply.h"

lash_status lash_server_info(lash_conn *c, const char *sections, char **text, lash_err *e)
{
    *text = NULL;
    /* INFO takes its sections as separate arguments. */
    char buf[256];
    const char *argv[16] = {"INFO"};
    int argc = 1;
    if (sections) {
        if (strlen(sections) >= sizeof buf)
            return lash_fail(e, LASH_EINVAL, "INFO: sections too long");
        strcpy(buf, sections);
        for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && argc < 16;
             w = strtok_r(NULL, " ", &save))
            argv[argc++] = w;
    }
    redisReply *r = lash_conn_command(c, NULL, "INFO", argc, argv, NULL, e);
    lash_status st = r ? lash_reply_check(r, "INFO", e) : LASH_EIO;
    if (!st && r->type != REDIS_REPLY_STRING)
        st = lash_fail(e, LASH_EPROTO, "INFO: reply is not text");
    if (!st && !(*text = strndup(r->str, r->len))) st = lash_fail(e, LASH_ENOMEM, "out of memory");
    freeReplyObject(r);
    return st;
}

lash_status lash_server_flush(lash_conn *c, lash_err *e)
{
    redisReply *r =
        lash_conn_command(c, NULL, "FLUSHALL", 2, (const char *[]){"FLUSHALL", "SYNC"}, NULL, e);
    lash_status st = r ? lash_reply_check(r, "FLUSHALL", e) : LASH_EIO;
    freeReplyObject(r);
    return st;
}

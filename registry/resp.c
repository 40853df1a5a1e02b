/* resp.c: reply objects that grow as their elements arrive (see resp.h). */
#include "registry/resp.h"

#include <stdlib.h>
#include <string.h>

/* Puts r in its parent array, if it has one, growing the parent's element
 * array by doubling (from 4) as children arrive, never past the count its
 * header declared. The reader hands children over in order; anything else
 * is refused (NULL: hiredis fails the reply as out of memory). */
static void *place(const redisReadTask *task, redisReply *r)
{
    if (!task->parent) return r;
    redisReply *p = task->parent->obj;
    size_t n = p->elements, declared = (size_t)task->parent->elements;
    if (p->type != REDIS_REPLY_ARRAY || (size_t)task->idx != n || n >= declared) goto fail;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n ? n * 2 : 4;
        if (cap > declared) cap = declared;
        redisReply **grown = realloc(p->element, cap * sizeof *grown);
        if (!grown) goto fail;
        p->element = grown;
    }
    p->element[n] = r;
    p->elements = n + 1;
    return r;
fail:
    freeReplyObject(r);
    return NULL;
}

static redisReply *make(int type)
{
    redisReply *r = calloc(1, sizeof *r);
    if (r) r->type = type;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = make(task->type);
    if (!r) return NULL;
    if (!(r->str = malloc(len + 1))) {
        free(r);
        return NULL;
    }
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return place(task, r);
}

/* The declared count is the reader's to keep (task->elements): nothing is
 * allocated for it here. */
static void *create_array(const redisReadTask *task, int elements)
{
    (void)elements;
    redisReply *r = make(REDIS_REPLY_ARRAY);
    return r ? place(task, r) : NULL;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = make(REDIS_REPLY_INTEGER);
    if (!r) return NULL;
    r->integer = value;
    return place(task, r);
}

static void *create_nil(const redisReadTask *task)
{
    redisReply *r = make(REDIS_REPLY_NIL);
    return r ? place(task, r) : NULL;
}

static redisReplyObjectFunctions lash_resp_fns = {
    .createString = create_string,
    .createArray = create_array,
    .createInteger = create_integer,
    .createNil = create_nil,
    .freeObject = freeReplyObject,
};

redisReplyObjectFunctions *lash_resp_functions(void)
{
    return &lash_resp_fns;
}

void lash_resp_adopt(redisReader *r)
{
    if (r) r->fn = &lash_resp_fns;
}

/* scripts.c: assembles the EVAL texts and the Functions library from the
 * generated Lua sources (see scripts.h). Built once, on first use. */
#include "proto/scripts.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sha1.h"

static const char *const op_names[LASH_OP_COUNT] = {
    "submit", "claim",   "renew",   "complete", "release",  "cancel", "retry", "list",      "stats",
    "trim",   "recover", "recount", "peek",     "progress", "limit",  "sched", "schedpeek",
};

/* Read-only operations may run on replicas: flagged no-writes in the library. */
static const int op_readonly[LASH_OP_COUNT] = {[LASH_OP_LIST] = 1,
                                               [LASH_OP_STATS] = 1,
                                               [LASH_OP_RECOVER] = 1,
                                               [LASH_OP_PEEK] = 1,
                                               [LASH_OP_SCHEDPEEK] = 1};

/* Operations whose EVAL text goes without lib.lua: they use none of it, and an
 * EVALSHA runs its script's whole text (the library's function definitions
 * too) on every call. The poll's peek is called most of all. */
static const int op_bare[LASH_OP_COUNT] = {[LASH_OP_SCHEDPEEK] = 1};

/* Operations whose EVAL text carries submit.lua too: a schedule's firing is a
 * submit (in the Functions library every source is there anyway). */
static const int op_with_submit[LASH_OP_COUNT] = {[LASH_OP_SCHED] = 1};

static struct {
    char *text[LASH_OP_COUNT];
    size_t len[LASH_OP_COUNT];
    char sha[LASH_OP_COUNT][41];
    char *library;
    size_t library_len;
    char version[17];
    char fname[LASH_OP_COUNT][40]; /* lash_<version>_<op> */
} S;
static pthread_once_t once = PTHREAD_ONCE_INIT;

const char *lash_op_name(lash_op op)
{
    return (unsigned)op < LASH_OP_COUNT ? op_names[op] : "invalid";
}

static const lash_lua_source *source(const char *name)
{
    for (const lash_lua_source *s = lash_lua_sources; s->name; s++)
        if (strcmp(s->name, name) == 0) return s;
    return NULL;
}

/* A growing string; out of memory here is fatal at start-up, never later. */
typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fputs("lash: out of memory assembling Lua scripts\n", stderr);
            abort();
        }
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void build(void)
{
    const lash_lua_source *lib = source("lib");
    buf all = {0};
    put(&all, lib->text, lib->len); /* the version covers everything the library runs */
    for (int op = 0; op < LASH_OP_COUNT; op++) {
        const lash_lua_source *src = source(op_names[op]);
        buf b = {0};
        if (!op_bare[op]) put(&b, lib->text, lib->len);
        if (op_with_submit[op]) {
            const lash_lua_source *sub = source("submit");
            put(&b, sub->text, sub->len);
        }
        put(&b, src->text, src->len);
        puts_(&b, "\nreturn lash_");
        puts_(&b, op_names[op]);
        puts_(&b, "(KEYS, ARGV)\n");
        S.text[op] = b.p;
        S.len[op] = b.len;
        lash_sha1_hex(b.p, b.len, S.sha[op]);
        put(&all, src->text, src->len);
    }
    char hex[41];
    lash_sha1_hex(all.p, all.len, hex);
    memcpy(S.version, hex, 16);
    S.version[16] = 0;

    buf l = {0};
    puts_(&l, "#!lua name=lash\n");
    put(&l, all.p, all.len); /* lib.lua first, then every script: each once */
    char line[256];
    for (int op = 0; op < LASH_OP_COUNT; op++) {
        /* Twice: lash_<op> for redis-cli, lash_<version>_<op> for lash's own
         * calls, which then run this very text or fail "Function not found"
         * (another version is loaded) and go by EVALSHA instead. */
        snprintf(S.fname[op], sizeof S.fname[op], "lash_%s_%s", S.version, op_names[op]);
        const char *flags = op_readonly[op] ? ", flags={'no-writes'}" : "";
        snprintf(line, sizeof line,
                 "redis.register_function{function_name='lash_%s', callback=lash_%s%s}\n"
                 "redis.register_function{function_name='%s', callback=lash_%s%s}\n",
                 op_names[op], op_names[op], flags, S.fname[op], op_names[op], flags);
        puts_(&l, line);
    }
    snprintf(line, sizeof line,
             "redis.register_function{function_name='lash_version', callback=function() return "
             "'%s' end, flags={'no-writes'}}\n",
             S.version);
    puts_(&l, line);
    S.library = l.p;
    S.library_len = l.len;
    free(all.p);
}

const char *lash_script_text(lash_op op, size_t *len)
{
    pthread_once(&once, build);
    if (len) *len = S.len[op];
    return S.text[op];
}

const char *lash_script_sha(lash_op op)
{
    pthread_once(&once, build);
    return S.sha[op];
}

const char *lash_function_library(size_t *len)
{
    pthread_once(&once, build);
    if (len) *len = S.library_len;
    return S.library;
}

const char *lash_function_name(lash_op op)
{
    pthread_once(&once, build);
    return S.fname[op];
}

const char *lash_function_version(void)
{
    pthread_once(&once, build);
    return S.version;
}

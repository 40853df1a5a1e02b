/* id.c: generated process ids (see id.h). */
#include "proto/id.h"

static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* 3 base-36 digits of counter. */
#define COUNTER_SPAN (36u * 36 * 36)

static void base36(char *out, int width, uint64_t v)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = digits[v % 36];
        v /= 36;
    }
}

void lash_idgen_init(lash_idgen *g, uint64_t seed)
{
    base36(g->prefix, 4, seed % (36ull * 36 * 36 * 36));
    g->prefix[4] = 0;
    g->counter = (uint32_t)(seed >> 32) % COUNTER_SPAN;
    g->last_ms = 0;
}

void lash_id_new(lash_idgen *g, int64_t now_ms, char out[LASH_GEN_ID_LEN + 1])
{
    /* (ms, counter) only moves forward: a clock that stalls or steps back reuses
     * the last ms, and a counter wrap inside one ms borrows the next ms. */
    if (now_ms > g->last_ms) g->last_ms = now_ms;
    if (g->counter >= COUNTER_SPAN) {
        g->counter = 0;
        g->last_ms++;
    }
    base36(out, 9, (uint64_t)g->last_ms);
    for (int i = 0; i < 4; i++)
        out[9 + i] = g->prefix[i];
    base36(out + 13, 3, g->counter++);
    out[LASH_GEN_ID_LEN] = 0;
}

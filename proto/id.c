/* id.c: generated process ids (see id.h). */
#include "proto/id.h"

static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

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
    g->counter = (uint32_t)(seed >> 32);
}

void lash_id_new(lash_idgen *g, int64_t now_ms, char out[LASH_GEN_ID_LEN + 1])
{
    base36(out, 9, (uint64_t)(now_ms < 0 ? 0 : now_ms));
    for (int i = 0; i < 4; i++)
        out[9 + i] = g->prefix[i];
    base36(out + 13, 3, g->counter++ % (36u * 36 * 36));
    out[LASH_GEN_ID_LEN] = 0;
}

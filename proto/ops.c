/* ops.c: freeing the protocol values that own memory (see ops.h). */
#include "proto/ops.h"

#include <stdlib.h>
#include <string.h>

void lash_claim_batch_free(lash_claim_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->rows[i].payload);
    for (size_t i = 0; i < b->bad; i++)
        free(b->notes[i]);
    free(b->notes);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

void lash_recovered_free(lash_recovered *r)
{
    for (size_t i = 0; i < r->n; i++)
        free((char *)r->leases[i].id);
    free(r->leases);
    memset(r, 0, sizeof *r);
}

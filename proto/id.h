/* id.h: process ids made by lash when the submitter gives none.
 *
 * 16 characters: 9 of base-36 milliseconds (so ids sort by submit time), 4 of a
 * per-process random prefix, 3 of a per-process counter. Two processes collide only
 * if they draw the same 4-character prefix (1 in 1.7 million) and submit more than
 * 46,656 ids in the same millisecond window.
 *
 * One generator's ids never repeat and strictly increase: its millisecond part
 * never goes back (a clock stepped back is ignored), and when the counter wraps
 * within one millisecond it moves on to the next, ahead of the clock if need be.
 */
#ifndef LASH_PROTO_ID_H
#define LASH_PROTO_ID_H

#include <stdint.h>

#define LASH_GEN_ID_LEN 16

typedef struct {
    char prefix[5];
    uint32_t counter; /* next counter value, 0..46655 */
    int64_t last_ms;  /* millisecond of the last id made */
} lash_idgen;

/* seed: any random bits (the caller reads them; proto does no I/O). */
void lash_idgen_init(lash_idgen *g, uint64_t seed);
/* Writes a NUL-terminated id of LASH_GEN_ID_LEN chars into out. */
void lash_id_new(lash_idgen *g, int64_t now_ms, char out[LASH_GEN_ID_LEN + 1]);

#endif

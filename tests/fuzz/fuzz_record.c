/* fuzz_record: the row decoder, as the registry drives it on an HGETALL reply.
 *
 * The input is "field\nvalue\nfield\nvalue..." (a trailing field without value is
 * dropped). Every pair goes to lash_record_set, bad ones included, because a
 * caller may keep going to name every bad field; then the record is checked,
 * rendered as JSON (lashctl shows bad rows too) and freed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "proto/record.h"
#include "split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lash_record rec;
    lash_err e;
    size_t pos = 0, flen, vlen;
    char *f;
    lash_record_init(&rec);
    while ((f = fuzz_next(data, size, &pos, '\n', &flen))) {
        char *v = fuzz_next(data, size, &pos, '\n', &vlen);
        if (!v) {
            free(f);
            break;
        }
        /* Field names are C strings to the decoder (hiredis NUL-terminates them). */
        char *name = malloc(flen + 1);
        if (!name) abort();
        memcpy(name, f, flen);
        name[flen] = 0;
        e.code = LASH_OK;
        e.msg[0] = 0;
        lash_status st = lash_record_set(&rec, name, v, vlen, &e);
        if (st != LASH_OK && (e.code != st || !e.msg[0])) {
            fprintf(stderr, "record_set failed with no message\n");
            abort();
        }
        free(name);
        free(f);
        free(v);
    }
    lash_status ok = lash_record_check(&rec, &e);
    char *json = lash_record_to_json(&rec);
    if (!json) abort();
    /* Whatever the row held, what lashctl prints is one JSON value. */
    if (lash_json_check(json, strlen(json), "record", &e) != LASH_OK) {
        fprintf(stderr, "record_to_json made bad JSON (%s): %s\n", e.msg, json);
        abort();
    }
    (void)ok;
    free(json);
    lash_record_free(&rec);
    return 0;
}

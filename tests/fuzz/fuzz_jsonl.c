/* fuzz_jsonl: lashctl's JSONL reader, one submission per line.
 *
 * Each line is read with a default kind and without one, and everything the
 * reader hands back is freed. A line it accepts must be a submission the submit
 * path accepts too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/json.h"
#include "proto/record.h"
#include "split.h"

static void one(const char *line, size_t len, const char *default_kind)
{
    lash_submission sub;
    void *holder = (void *)1;
    char *payload = (char *)1;
    lash_err e = {0};
    lash_status st =
        lash_submission_from_json(line, len, default_kind, &sub, &holder, &payload, &e);
    if (st == LASH_OK) {
        if (!sub.kind || lash_submission_check(&sub, &e) != LASH_OK) {
            fprintf(stderr, "accepted a line the submit check refuses: %s\n", e.msg);
            abort();
        }
    } else if (e.code != st || !e.msg[0]) {
        abort();
    }
    lash_json_free(holder);
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0, len;
    char *line;
    while ((line = fuzz_next(data, size, &pos, '\n', &len))) {
        one(line, len, "echo");
        one(line, len, NULL);
        free(line);
    }
    return 0;
}

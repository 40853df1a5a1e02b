/* hash.c: lash-example-hash, an exec handler that does real work.
 *
 * Reads a payload {"data": "<text>", "rounds": N} on stdin (N 1..1000000,
 * default 20000), hashes the data with SHA-1 N times over (each round hashes
 * the previous digest and the data), and prints {"sha1":"<hex>","rounds":N} on
 * stdout. A few thousand rounds cost a few milliseconds: enough to see work
 * being spread over workers. Bad input: a message on stderr and exit 2.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sha1.h"

#define MAX_INPUT (1024 * 1024)

int main(void)
{
    static char in[MAX_INPUT + 1];
    size_t n = fread(in, 1, MAX_INPUT + 1, stdin);
    if (n > MAX_INPUT) {
        fputs("payload over 1 MiB\n", stderr);
        return 2;
    }
    cJSON *p = cJSON_ParseWithLength(in, n);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(p, "data");
    const cJSON *rounds = cJSON_GetObjectItemCaseSensitive(p, "rounds");
    if (!cJSON_IsString(data)) {
        fputs("payload must be an object with a string \"data\"\n", stderr);
        cJSON_Delete(p);
        return 2;
    }
    double r = cJSON_IsNumber(rounds) ? rounds->valuedouble : 20000;
    if (!(r >= 1 && r <= 1000000)) {
        fputs("\"rounds\" must be 1..1000000\n", stderr);
        cJSON_Delete(p);
        return 2;
    }
    size_t dlen = strlen(data->valuestring);
    char *buf = malloc(40 + dlen);
    char hex[41] = "";
    if (!buf) return 1;
    for (long i = 0; i < (long)r; i++) {
        memcpy(buf, hex, 40);
        memcpy(buf + 40, data->valuestring, dlen);
        lash_sha1_hex(buf, 40 + dlen, hex);
    }
    printf("{\"sha1\":\"%s\",\"rounds\":%ld}\n", hex, (long)r);
    free(buf);
    cJSON_Delete(p);
    return 0;
}

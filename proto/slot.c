/* slot.c: Redis Cluster key slots (see slot.h). */
#include "proto/slot.h"

#include <string.h>

uint16_t lash_crc16(const char *buf, size_t len)
{
    /* Bit by bit rather than with a 256-entry table: the keys hashed here are
     * queue names (at most LASH_QUEUE_MAX bytes), hashed once per command. */
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)(unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int lash_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - from);
        /* "{}" (an empty tag) or no closing brace: the whole key is hashed. */
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - open - 1);
        }
    }
    return lash_crc16(key, len) & (LASH_SLOTS - 1);
}

int lash_queue_slot(const char *queue)
{
    return lash_crc16(queue, strlen(queue)) & (LASH_SLOTS - 1);
}

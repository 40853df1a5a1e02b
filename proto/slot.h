/* slot.h: the Redis Cluster hash slot of a key.
 *
 * A Cluster splits the key space into 16384 slots and gives each slot to one
 * primary. A key's slot is CRC16 (XMODEM: polynomial 0x1021, initial value 0) of
 * the key modulo 16384, except that a key holding a non-empty hash tag "{...}"
 * hashes only the text between its first '{' and the first '}' after it. Every
 * key of queue q is lash:{q}..., so a queue lives in exactly one slot, and one
 * script call never spans two nodes. The routing layer (registry/route.h) uses
 * this to pick the primary that owns a queue; tests check it against
 * CLUSTER KEYSLOT.
 */
#ifndef LASH_PROTO_SLOT_H
#define LASH_PROTO_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define LASH_SLOTS 16384

/* CRC16/XMODEM of buf[0..len). */
uint16_t lash_crc16(const char *buf, size_t len);
/* The slot of a key (hash tags honoured), 0..LASH_SLOTS-1. */
int lash_key_slot(const char *key, size_t len);
/* The slot of every key of queue q (that of its hash tag {q}). */
int lash_queue_slot(const char *queue);

#endif

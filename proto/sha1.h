/* sha1.h: SHA-1, only to name Lua scripts the way EVALSHA does (not for security). */
#ifndef LASH_PROTO_SHA1_H
#define LASH_PROTO_SHA1_H

#include <stddef.h>

/* Writes 40 lowercase hex digits and a NUL into hex. */
void lash_sha1_hex(const void *data, size_t len, char hex[41]);

#endif

/* version.h: which lash this is.
 *
 * The version is CMake's project version (CMakeLists.txt, project(... VERSION)),
 * the one number every binary's --version, lash-web's /api/config and
 * lash_build_info, and lash.pc show. The Lua library has a version of its own,
 * a hash of its text (lash_function_version, proto/scripts.h).
 */
#ifndef LASH_PROTO_VERSION_H
#define LASH_PROTO_VERSION_H

/* "MAJOR.MINOR.PATCH", a static string. */
const char *lash_version(void);

#endif

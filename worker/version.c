/* version.c: liblash's version, and the one source file the shared library is
 * built from (everything else comes whole from the rooms' static libraries).
 * LASH_VERSION is CMake's project version (CMakeLists.txt). */
const char *lash_version(void)
{
    return LASH_VERSION;
}

/* version.c: liblash's version, and the one source file the shared library is
 * built from (everything else comes whole from the rooms' static libraries). */
const char *lash_version(void)
{
    return "0.1.0";
}

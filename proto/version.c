/* version.c: lash_version (see version.h). LASH_VERSION is defined for this
 * file alone, by CMake, so a new version rebuilds one file. */
#include "proto/version.h"

const char *lash_version(void)
{
    return LASH_VERSION;
}

/* <lash/worker.h>: the header embedders include (installed as include/lash/worker.h).
 * Compile with `pkg-config --cflags --libs lash`. See worker/worker.h. */
#include "worker/worker.h"

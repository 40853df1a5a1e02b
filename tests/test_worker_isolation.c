/* test_worker_isolation.c: what an exec handler can reach, and how long it lives.
 *
 * A handler is the worker's configuration, but it is not the worker: it sees
 * only its stdio (never a socket on which Redis would take it for the worker),
 * nothing it starts outlives the outcome the worker records for it, it dies
 * with its worker, and a flood of output is cut at the cap rather than read to
 * the end. Real lash-worker processes, real programs (tests/wfx.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wfx.h"

TestSuite(isolation, .fini = wfx_teardown, .timeout = 90);

/* A pid written by a handler into <dir>/<name>, once it is there. */
static pid_t pid_from(const char *name)
{
    char path[256];
    path_in(path, sizeof path, name);
    long long end = lash_fx_ms() + 10000;
    while (lash_fx_ms() < end) {
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f && fscanf(f, "%d", &pid) == 1 && pid > 0) {
            fclose(f);
            return pid;
        }
        if (f) fclose(f);
        lash_fx_sleep_ms(20);
    }
    cr_assert_fail("no pid in %s", path);
    return 0;
}

static bool gone(pid_t pid)
{
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* The reviewer's case: a handler wrote a command to fd 5 and Redis ran it as
 * the worker; the unexpected reply then tripped an assertion in hiredis. The
 * handler lists every descriptor it was given beyond 0, 1, 2 and its progress
 * pipe on 3 (its own shell's script descriptor aside). */
Test(isolation, a_handler_sees_only_stdio_and_its_progress_pipe)
{
    up(NULL);
    char fds[256], handler[300];
    /* ls lists its own descriptors: the handler's, plus the one it reads
     * /proc/self/fd through. */
    script(fds, sizeof fds, "fds.sh", "exec ls -l /proc/self/fd/\n");
    snprintf(handler, sizeof handler, "fds=%s", fds);
    WORKER("w", "--queue", "q", "--handler", handler);
    submit("q", "a", "fds", "{}");
    WAIT_UNTIL(row_is("q", "a", "completed"), 10000);
    lash_record r = get("q", "a");
    cr_assert_eq(r.state, LASH_COMPLETED, "%s", r.error ? r.error : "");
    char *save = NULL;
    int listed = 0;
    for (char *line = strtok_r(r.result, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *arrow = strstr(line, " -> ");
        if (!arrow) continue; /* "total 0" */
        char *fd = arrow;
        while (fd > line && fd[-1] != ' ')
            fd--;
        int n = atoi(fd);
        listed++;
        if (n <= 2) continue;
        if (n == 3) {
            cr_expect(strstr(arrow, "pipe:"), "fd 3 is not the progress pipe:%s", arrow);
            continue;
        }
        cr_expect(n == 4 && strstr(arrow, "/fd"), "the handler was given fd %d%s", n, arrow);
    }
    cr_expect_eq(listed, 5, "0, 1, 2, the progress pipe and ls's own: %s", r.result);
    lash_record_free(&r);
}

/* The reviewer's case: a helper in the handler's process group that ignores
 * TERM survived the timeout, the KILL step and the worker's shutdown. */
Test(isolation, nothing_of_a_handler_outlives_its_recorded_outcome)
{
    up(NULL);
    char prog[512], handler[600], hp[256];
    path_in(hp, sizeof hp, "helper.pid");
    char body[1024];
    snprintf(body, sizeof body,
             "(trap '' TERM; sleep 60) &\n"
             "echo $! > %s\n"
             "sleep 60\n",
             hp);
    script(prog, sizeof prog, "stubborn.sh", body);
    snprintf(handler, sizeof handler, "stubborn=%s", prog);
    WORKER("w", "--queue", "q", "--handler", handler);
    submit_o("q", "a", "stubborn", "{}", (opts){.max_attempts = 1, .timeout_ms = 500});
    pid_t helper = pid_from("helper.pid");
    WAIT_UNTIL(row_is("q", "a", "failed"), 10000);
    cr_assert(row_is("q", "a", "failed"), "a: %s", hf("q", "a", "state"));
    WAIT_UNTIL(gone(helper), 3000);
    cr_expect(gone(helper), "the helper (pid %d) outlived the recorded timeout", (int)helper);
    if (!gone(helper)) kill(helper, SIGKILL);
}

/* The reviewer's case: the handlers of a kill -9ed worker kept running while
 * their leases ran out and another worker reran them. */
Test(isolation, a_handler_dies_with_its_worker)
{
    up(NULL);
    char prog[512], handler[600], pp[256], body[512];
    path_in(pp, sizeof pp, "handler.pid");
    snprintf(body, sizeof body, "echo $$ > %s\nexec sleep 60\n", pp);
    script(prog, sizeof prog, "long.sh", body);
    snprintf(handler, sizeof handler, "long=%s", prog);
    pid_t w = WORKER("w", "--queue", "q", "--handler", handler);
    submit("q", "a", "long", "{}");
    pid_t h = pid_from("handler.pid");
    kill9(w);
    WAIT_UNTIL(gone(h), 3000);
    cr_expect(gone(h), "the handler (pid %d) outlived its worker", (int)h);
    if (!gone(h)) kill(h, SIGKILL);
}

/* The reviewer's case: a handler writing 1 GB to stdout was read to the end
 * before the attempt failed. One that never stops would be read forever. */
Test(isolation, a_stdout_flood_is_stopped_at_the_cap)
{
    up(NULL);
    char prog[512], handler[600];
    script(prog, sizeof prog, "flood.sh", "exec yes\n");
    snprintf(handler, sizeof handler, "flood=%s", prog);
    WORKER("w", "--queue", "q", "--handler", handler);
    submit_o("q", "a", "flood", "{}", (opts){.max_attempts = 1});
    WAIT_UNTIL(row_is("q", "a", "failed"), 15000);
    cr_assert(row_is("q", "a", "failed"), "a: %s", hf("q", "a", "state"));
    cr_expect(strstr(hf("q", "a", "error"), "over 65536 bytes"), "%s", hf("q", "a", "error"));
}

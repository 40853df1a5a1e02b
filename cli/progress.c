/* progress.c: a one-line progress bar on stderr, for terminals only. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

int64_t cli_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_progress_start(cli_progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->on = isatty(STDERR_FILENO);
    p->label = label;
    p->total = total > 0 ? total : 0;
    p->start_ms = cli_mono_ms();
    p->last_draw_ms = -1000;
    struct winsize ws;
    p->width =
        p->on && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

void cli_progress_update(cli_progress *p, int64_t done, const char *note)
{
    if (!p->on) return;
    int64_t now = cli_mono_ms();
    bool last = p->total && done >= p->total;
    /* Ten redraws a second are plenty for a human and cost nothing in a bulk load. */
    if (!last && now - p->last_draw_ms < 100) return;
    p->last_draw_ms = now;
    if (p->total) {
        int bar = p->width - (int)strlen(p->label) - 40;
        if (bar > 50) bar = 50;
        if (bar < 10) bar = 10;
        int fill = (int)(last ? bar : (double)done / (double)p->total * bar);
        char b[64];
        for (int i = 0; i < bar; i++)
            b[i] = i < fill ? '#' : '.';
        b[bar] = 0;
        fprintf(stderr, "\r%s [%s] %3d%% %s\033[K", p->label, b,
                (int)(last ? 100 : done * 100 / p->total), note ? note : "");
    } else {
        fprintf(stderr, "\r%s %lld %s\033[K", p->label, (long long)done, note ? note : "");
    }
    fflush(stderr);
}

void cli_progress_clear(cli_progress *p)
{
    if (!p->on) return;
    fprintf(stderr, "\r\033[K");
    p->last_draw_ms = -1000;
}

void cli_progress_end(cli_progress *p)
{
    if (!p->on) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

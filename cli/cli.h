/* cli.h: what the pieces of lashctl share.
 *
 * lashctl is a thin shell over the registry API (registry/registry.h): each
 * command parses and validates its arguments, makes one or a few registry calls,
 * and prints the result as text or, with --json, as JSON documents (one per
 * result) on stdout. Everything else (errors, warnings, progress bars) goes to
 * stderr, so stdout stays safe to pipe.
 *
 * Exit codes, the same for every command:
 *   0  ok
 *   1  the operation was refused: not found, conflict, stale, not all completed,
 *      an invalid row, a skipped line
 *   2  usage: a bad flag, a missing or malformed argument
 *   3  Redis unreachable (or the connection broke)
 */
#ifndef LASH_CLI_H
#define LASH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "registry/inspect.h"
#include "registry/registry.h"

/* lashctl's exit codes (README, "Exit codes"): every command returns one. */
enum {
    CLI_OK = 0,          /* done */
    CLI_REFUSED = 1,     /* Redis answered no: not found, refused, conflict, ... */
    CLI_USAGE = 2,       /* bad flags or arguments */
    CLI_UNREACHABLE = 3, /* Redis could not be reached, or broke off */
};

/* The global flags, shared by every command. */
typedef struct {
    const char *redis_url; /* --redis, else LASH_REDIS_URL, else redis://127.0.0.1:6379 */
    const char *queue;     /* --queue, else LASH_QUEUE, else "default" */
    bool json;             /* --json */
    bool url_from_args;    /* --redis was given: warn if it carries a password */
    int failover_ms;       /* --failover-ms (0: $LASH_FAILOVER_MS, else the registry's 30 s) */
} cli_ctx;

/* ---- errors and exit codes (main.c) ---------------------------------------- */

/* Prints "lashctl: <message>" on stderr as one line; returns code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The exit code for a failed registry call, after printing e's message. */
int cli_fail(lash_status st, const lash_err *e);
/* The exit code a lash_status maps to. */
int cli_exit_code(lash_status st);

/* ---- argument parsing (args.c) --------------------------------------------- */

/* One option of a command. `name` is the long form without dashes ("payload");
 * after cli_parse, `val` holds the value (or "" for a flag) when it was seen. */
typedef struct {
    const char *name;
    bool has_arg;
    const char *val;
} cli_opt;

/* Parses argv[0..argc) (the words after the command name) against opts (an
 * array ended by a {NULL} entry). The global flags (--redis, --queue, --json)
 * are accepted anywhere and recorded in ctx. Words that are not options land in
 * pos (capacity max_pos; pos[*npos] stays valid up to argc). "--" ends options;
 * "-" is a word. Returns CLI_OK, CLI_USAGE (message printed), or -1 when
 * --help/-h was asked for (the caller prints its help and exits 0). */
int cli_parse(cli_ctx *ctx, int argc, char **argv, cli_opt *opts, const char **pos, int max_pos,
              int *npos);
/* Handles the global flag at argv[*i] (--redis, --queue, --json, --failover-ms), if it is one:
 * returns 1 (and moves *i onto its value), 0 when argv[*i] is not a global flag, -1 (message
 * printed) when its value is missing. */
int cli_global_flag(cli_ctx *ctx, int argc, char **argv, int *i);
/* Checks the global flags (URL syntax, queue name) and warns about a password
 * given on the command line. Returns CLI_OK or CLI_USAGE. */
int cli_globals_check(const cli_ctx *ctx);

/* A command's start: parses its words with cli_parse, prints its help on
 * --help, checks the global flags and that it got min_pos..max_pos words.
 * Returns true to go on; false when the command is over, *rc saying how. */
bool cli_begin(cli_ctx *ctx, const char *cmd, int argc, char **argv, cli_opt *opts,
               const char **pos, int min_pos, int max_pos, int *npos, int *rc);

/* The option named name, or NULL when it was not given. */
const char *cli_opt_val(const cli_opt *opts, const char *name);

/* Value parsers: each prints "lashctl: <flag>: <why>" and returns CLI_USAGE on
 * bad input, CLI_OK with *out set otherwise. */
int cli_parse_int(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out);
/* "500ms", "30s", "15m", "2h", "7d", "1w"; a unit is required. Result in ms. */
int cli_parse_duration(const char *flag, const char *s, int64_t min_ms, int64_t max_ms,
                       int64_t *out_ms);
/* ISO 8601 with a zone: 2024-05-01T12:00:00Z, 2024-05-01T14:00:00.250+02:00,
 * also ' ' for 'T', seconds optional, +hhmm / +hh offsets. Result: ms since epoch. */
int cli_parse_iso8601(const char *flag, const char *s, int64_t *out_ms);
/* The same parses, without printing: NULL on success, else why not. */
const char *cli_iso8601_ms(const char *s, int64_t *out_ms);
const char *cli_duration_ms(const char *s, int64_t *out_ms);

/* ---- Redis ----------------------------------------------------------------- */

/* Connects with the global flags and makes sure the Functions library is loaded
 * (best effort: a server that refuses FUNCTION LOAD still serves lashctl, since
 * lashctl itself runs the scripts with EVALSHA). Returns CLI_OK or prints and
 * returns the exit code. */
int cli_connect(const cli_ctx *ctx, lash_conn **out);
/* ---- output ---------------------------------------------------------------- */

struct cJSON;
/* The stats as a flat JSON object: one field per state, each total_*, due, done,
 * oldest_due_ms, workers, now_ms. */
struct cJSON *cli_stats_json(const lash_stats *s, const char *queue);

/* Prints a cJSON-built or lash-built JSON text and a newline, frees it. A NULL
 * text (no memory) is an error line and returns CLI_REFUSED. */
int cli_print_json(char *text);
/* Formats ms since epoch as "2024-05-01T12:00:00.250Z" into buf (32 bytes). */
char *cli_fmt_time(int64_t ms, char *buf, size_t len);
/* Formats a duration in ms the short way: "850ms", "12.3s", "4m05s", "3h02m", "2d04h". */
char *cli_fmt_age(int64_t ms, char *buf, size_t len);

/* ---- progress bars (progress.c) -------------------------------------------- */

/* A one-line bar redrawn on stderr at most ten times a second, and only when
 * stderr is a terminal (it is silent otherwise, so logs stay clean). */
typedef struct {
    bool on;
    const char *label;
    int64_t total; /* 0: unknown, show a count only */
    int64_t last_draw_ms;
    int64_t start_ms;
    int width;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label, int64_t total);
/* done: units so far; note: a short tail ("1.2k/s"), or NULL. */
void cli_progress_update(cli_progress *p, int64_t done, const char *note);
/* Erases the bar for a moment, so a message can be printed on a clean line; the
 * next update draws it again. */
void cli_progress_clear(cli_progress *p);
/* Erases the bar so what follows starts on a clean line. */
void cli_progress_end(cli_progress *p);
/* Monotonic ms. */
int64_t cli_mono_ms(void);

/* ---- the commands ---------------------------------------------------------- */

typedef int (*cli_cmd_fn)(cli_ctx *ctx, int argc, char **argv);

int cli_cmd_submit(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_submit_bulk(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_get(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_list(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_workers(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_queues(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_events(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_top(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_wait(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_cancel(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_retry(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_poke(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_trim(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_limit(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_functions(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_schedule(cli_ctx *ctx, int argc, char **argv);

/* Each command's help text (main.c), printed by `lashctl CMD --help`. */
void cli_help(const char *cmd);
/* Prints "lashctl: <cmd>: <why> (see lashctl <cmd> --help)"; returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

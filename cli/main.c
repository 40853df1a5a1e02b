/* main.c: lashctl's global flags, help texts and command dispatch. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/scripts.h"
#include "proto/version.h"

int cli_error(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line, whatever the message holds. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "lashctl: %s\n", msg);
    return code;
}

int cli_exit_code(lash_status st)
{
    switch (st) {
    case LASH_OK:
        return CLI_OK;
    case LASH_EIO:
        return CLI_UNREACHABLE;
    default:
        return CLI_REFUSED;
    }
}

int cli_fail(lash_status st, const lash_err *e)
{
    return cli_error(cli_exit_code(st), "%s", e && e->msg[0] ? e->msg : lash_status_name(st));
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cli_error(CLI_USAGE, "%s: %s (see lashctl %s --help)", cmd, msg, cmd);
}

/* ---- help ------------------------------------------------------------------ */

static const char *const overview =
    "usage: lashctl [--redis URL] [--queue NAME] [--json] COMMAND [ARGS...]\n"
    "\n"
    "Operates a lash queue: submits processes, inspects them, waits for them.\n"
    "\n"
    "Global flags (accepted before or after the command):\n"
    "  --redis URL    redis://[user[:password]@]host[:port][/db] or unix:///path.sock[?db=N]\n"
    "                 (default: $LASH_REDIS_URL, else redis://127.0.0.1:6379). Give passwords\n"
    "                 through $LASH_REDIS_URL or $LASH_REDIS_PASSWORD, not on the command line.\n"
    "                 Any node of a Redis Cluster will do; under Sentinel name the Sentinels:\n"
    "                 redis-sentinel://[user@]h1:26379,h2:26379[/db]#<master-name>\n"
    "                 (their own password: $LASH_SENTINEL_PASSWORD, user $LASH_SENTINEL_USER)\n"
    "  --queue NAME   the queue (default: $LASH_QUEUE, else 'default')\n"
    "  --json         machine-readable output: one JSON document per result on stdout\n"
    "  --failover-ms MS  Cluster, Sentinel: how long a command keeps trying while a primary\n"
    "                 is replaced or a slot moves (default: $LASH_FAILOVER_MS, else 30000)\n"
    "  --version      print lashctl's version and its Lua library version, then exit\n"
    "\n"
    "Commands:\n"
    "  submit KIND      submit one process; prints its id\n"
    "  submit-bulk KIND submit one process per line of stdin (JSON Lines)\n"
    "  get ID           show one process\n"
    "  list             list processes, optionally by state\n"
    "  stats            rows per state, totals, oldest waiting, workers alive\n"
    "  workers          workers and seconds since each one's heartbeat\n"
    "  events           the transition log (--follow to keep reading)\n"
    "  top              a live screen of rates, states and workers\n"
    "  wait ID...       block until the processes end; exit 0 only if all completed\n"
    "  cancel ID        cancel a process (a running one is stopped by its worker)\n"
    "  retry ID         re-open a failed, cancelled or abandoned process\n"
    "  poke             wake every worker of the queue\n"
    "  trim             delete finished rows beyond retention\n"
    "  limit            fleet-wide concurrency and rate limits per kind (set, list, rm)\n"
    "  functions        load (or update) the Redis Functions library 'lash'\n"
    "  schedule ...     recurring schedules: add, list, rm, pause, resume\n"
    "\n"
    "`lashctl COMMAND --help` describes each command.\n"
    "\n"
    "Exit codes: 0 ok; 1 refused (not found, conflict, not all completed, invalid row,\n"
    "skipped lines); 2 usage error; 3 Redis unreachable. Errors are one line on stderr.\n";

static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *help;
} commands[] = {
    {"submit", cli_cmd_submit,
     "usage: lashctl submit KIND [--payload JSON | --payload-file FILE | -] [--id ID]\n"
     "                      [--delay MS | --at ISO8601] [--max-attempts N] [--timeout MS]\n"
     "                      [--backoff fixed:MS|exp:BASE_MS:CAP_MS] [--on-lost rerun|abandon]\n"
     "                      [--priority N] [--after ID[,ID...]]\n"
     "                      [--wait-replicas N [--wait-timeout MS]]\n"
     "\n"
     "Submits one process of KIND and prints its id.\n"
     "  --payload JSON       the payload, a JSON value (default: null)\n"
     "  --payload-file FILE  read the payload from FILE ('-' or a bare '-' word: stdin)\n"
     "  --id ID              the id (A-Z a-z 0-9 . _ - : @, up to 128); default: a new one.\n"
     "                       Submitting the same id with the same registration again is a\n"
     "                       no-op (prints the id); with a different one it is refused.\n"
     "  --delay MS           run no sooner than MS milliseconds from now (0..31536000000)\n"
     "  --at ISO8601         run no sooner than this time, e.g. 2030-01-02T03:04:05Z or\n"
     "                       2030-01-02T05:04:05.250+02:00 (a zone is required)\n"
     "  --max-attempts N     attempts before it fails for good (1..1000, default 3)\n"
     "  --timeout MS         kill an attempt after MS milliseconds (0 = none, up to a week)\n"
     "  --backoff SPEC       delay between attempts: fixed:MS or exp:BASE_MS:CAP_MS\n"
     "                       (default exp:1000:60000)\n"
     "  --on-lost POLICY     when its worker dies: rerun (default) or abandon\n"
     "  --priority N         -1000..1000 (default 0): among the rows that are due, higher\n"
     "                       runs first, equal ones by due time (aging: README \"Priorities\")\n"
     "  --after ID[,ID...]   run only once all these processes (of this queue, up to 1000)\n"
     "                       completed; if one ends failed, cancelled or abandoned, this one\n"
     "                       ends cancelled, its error naming it (README \"Dependencies\")\n"
     "  --wait-replicas N    durable acknowledgement: after the write, WAIT until N replicas\n"
     "                       have it (1..100); exit 1 when fewer confirm within the timeout\n"
     "                       (the id is printed all the same: the process is on the primary)\n"
     "  --wait-timeout MS    how long to WAIT (1..600000, default 1000)\n"
     "With --json: {\"id\":..., \"status\":\"created\"|\"exists\"}.\n"},
    {"submit-bulk", cli_cmd_submit_bulk,
     "usage: lashctl submit-bulk KIND [--wait-replicas N [--wait-timeout MS]] < FILE.jsonl\n"
     "\n"
     "Submits one process per line of stdin. A line is either a bare JSON payload (the\n"
     "process gets KIND), or a full submission object such as\n"
     "  {\"kind\":\"k\",\"payload\":{...},\"id\":\"x\",\"max_attempts\":5,\"timeout_ms\":1000,\n"
     "   \"delay_ms\":0,\"run_at\":MS,\"backoff\":\"fixed:500\",\"on_lost\":\"abandon\",\n"
     "   \"priority\":5,\"after\":\"id1,id2\"}\n"
     "(an object is a full submission when it has a \"kind\" or \"payload\" key).\n"
     "Lines are sent pipelined in chunks of 10,000. A bad line is reported on stderr as\n"
     "'line N: <reason>' and skipped; the others go in. Blank lines are ignored. A progress\n"
     "bar is drawn on stderr when it is a terminal. At the end a report of the counts and\n"
     "the rate is printed (with --json, as one object).\n"
     "--wait-replicas N and --wait-timeout MS: WAIT after each chunk, as for submit; the\n"
     "run stops at the first chunk fewer replicas confirmed.\n"
     "Exit 0 when every line went in (created, or already there with the same\n"
     "registration), 1 when any line was skipped or refused.\n"},
    {"get", cli_cmd_get,
     "usage: lashctl get ID\n"
     "\n"
     "Shows one process: state, attempts, times, payload, result or error.\n"
     "Exit 1 when there is no such process, or when the row is malformed (what parsed is\n"
     "still shown, and the bad field named).\n"},
    {"list", cli_cmd_list,
     "usage: lashctl list [--state STATE] [--limit N] [--cursor C]\n"
     "\n"
     "Lists processes: live ones (pending, running) by when they are next due, then\n"
     "finished ones newest first.\n"
     "  --state STATE  only pending|running|completed|failed|cancelled|abandoned\n"
     "  --limit N      rows per page (1..10000, default 100)\n"
     "  --cursor C     continue where a previous page stopped (its 'next' cursor)\n"
     "The next cursor, when there are more rows, is printed on stderr (with --json it is the\n"
     "\"next\" field; \"0\" means the end).\n"},
    {"stats", cli_cmd_stats,
     "usage: lashctl stats [--recount]\n"
     "\n"
     "Rows per state, running totals since the queue began, the age of the oldest process\n"
     "waiting to run, and the number of workers alive (heartbeat within a minute).\n"
     "  --recount   first set the per-state counts from the rows themselves (they drift\n"
     "              when rows are written or deleted by hand); it reads every row in one\n"
     "              call, holding Redis for a time that grows with the queue\n"},
    {"queues", cli_cmd_queues,
     "usage: lashctl queues\n"
     "\n"
     "Every queue Redis holds (each one that ever had a submit: its lash:{q}:stats hash,\n"
     "found with SCAN; on a Cluster, on every primary), with its rows per state and its\n"
     "workers alive. --queue is not needed. SCAN walks the whole keyspace.\n"},
    {"workers", cli_cmd_workers,
     "usage: lashctl workers\n"
     "\n"
     "Lists the workers of the queue (the zset lash:{q}:workers) with the seconds since\n"
     "each one's last heartbeat (measured on the Redis server's clock).\n"},
    {"events", cli_cmd_events,
     "usage: lashctl events [--count N] [--follow]\n"
     "\n"
     "Prints the newest N entries (1..100000, default 20) of the transition log\n"
     "(lash:{q}:events), oldest first.\n"
     "  --follow   then keep printing new entries as they come (Ctrl-C to stop)\n"
     "With --json: one object per entry.\n"},
    {"top", cli_cmd_top,
     "usage: lashctl top [--all] [--iterations N]\n"
     "\n"
     "A live screen refreshed every second: rates per second (from the running totals),\n"
     "rows per state, the oldest waiting process, and the workers. Press q or Ctrl-C to\n"
     "quit. When stdout is not a terminal, prints one frame per second as plain lines.\n"
     "  --all            every queue, a line each (as `lashctl queues` finds them, again\n"
     "                   every 10 frames; on a Cluster, on every primary): rates\n"
     "                   submitted, completed and failed per second, rows per state, workers\n"
     "  --iterations N   stop after N frames (1..1000000)\n"},
    {"wait", cli_cmd_wait,
     "usage: lashctl wait ID... [--timeout MS]\n"
     "\n"
     "Blocks until every ID is finished, then prints each one's final state. It listens\n"
     "on lash:{q}:finished before it looks at the rows, so no ending is missed. A\n"
     "progress bar is drawn on stderr for many ids on a terminal.\n"
     "  --timeout MS   give up after MS milliseconds (1..604800000)\n"
     "Exit 0 only if every process completed; 1 if any failed, was cancelled or\n"
     "abandoned, does not exist, or the timeout passed.\n"},
    {"cancel", cli_cmd_cancel,
     "usage: lashctl cancel ID [--reason TEXT]\n"
     "\n"
     "Cancels a process. A pending one is cancelled at once; a running one is flagged and\n"
     "its worker stops it and records it cancelled. Exit 1 when it does not exist or has\n"
     "already finished.\n"},
    {"retry", cli_cmd_retry,
     "usage: lashctl retry ID\n"
     "\n"
     "Re-opens a failed, cancelled or abandoned process as pending, with its attempts\n"
     "counted from zero again. Exit 1 when it does not exist or is not in such a state.\n"},
    {"poke", cli_cmd_poke,
     "usage: lashctl poke\n"
     "\n"
     "Wakes every worker of the queue (PUBLISH lash:{q}:poke).\n"},
    {"trim", cli_cmd_trim,
     "usage: lashctl trim [--keep N] [--older-than DURATION]\n"
     "\n"
     "Deletes finished rows beyond retention; prints how many went.\n"
     "  --keep N                keep the newest N finished rows (0..1000000000)\n"
     "  --older-than DURATION   delete finished rows older than this: 30s, 15m, 2h, 7d, 1w\n"
     "With neither flag the workers' defaults apply: keep 10000, none older than 7d.\n"
     "With one flag only, the other bound is off.\n"},
    {"limit", cli_cmd_limit,
     "usage: lashctl limit set KIND [--concurrency N|none] [--rate R/PERIOD|none]\n"
     "       lashctl limit list\n"
     "       lashctl limit rm KIND\n"
     "\n"
     "Fleet-wide limits per kind, enforced by the claim script however many workers run:\n"
     "  --concurrency N   at most N processes of KIND running at once (1..1000000)\n"
     "  --rate R/PERIOD   at most R starts of KIND in any PERIOD (sliding window):\n"
     "                    100/1s, 5/1m, 20/500ms (R 1..100000, PERIOD up to 1d)\n"
     "`none` removes that one limit; set changes only what it is given. A process held\n"
     "back stays pending and is looked at again when a slot frees or the window reopens.\n"
     "list shows each limited kind, its processes holding a slot (RUNNING) and those\n"
     "waiting for one (HELD). rm removes both limits (exit 1 when KIND had none).\n"},
    {"functions", cli_cmd_functions,
     "usage: lashctl functions\n"
     "\n"
     "Loads the Redis Functions library 'lash' (or replaces an older version), so that\n"
     "redis-cli can FCALL lash_submit, lash_cancel, lash_stats ... In a Redis Cluster it\n"
     "does so on every primary (replicas get it from their primary). Every lashctl command\n"
     "does this when it finds the library missing or outdated; this command reports it.\n"
     "Workers never do: their least-privilege Redis user has no FUNCTION LOAD (they call\n"
     "the library by FCALL where this version is loaded, else the same Lua by EVALSHA).\n"},
    {"schedule", cli_cmd_schedule,
     "usage: lashctl schedule add NAME --cron SPEC [--tz ZONE] KIND [--payload JSON]\n"
     "                        [--max-attempts N] [--timeout MS] [--backoff SPEC]\n"
     "                        [--on-lost rerun|abandon]\n"
     "       lashctl schedule list | rm NAME | pause NAME | resume NAME\n"
     "\n"
     "Recurring schedules, kept in Redis with the queue (lash:{q}:schedules and\n"
     "lash:{q}:sched:NAME). The workers fire them: each firing is an ordinary process\n"
     "of KIND with the id NAME@<fire time, ms since epoch>, created once however many\n"
     "workers run. After a downtime only the latest missed firing runs (never a burst).\n"
     "  NAME         A-Z a-z 0-9 . _ - , up to 64 bytes\n"
     "  --cron SPEC  5 fields 'minute hour day-of-month month day-of-week' with lists,\n"
     "               ranges, steps and names ('*/5 * * * *', '0 9 * * mon-fri'), a\n"
     "               shortcut (@hourly @daily @weekly @monthly @yearly), or\n"
     "               '@every N{s,m,h}' (multiples of N since the epoch; ignores --tz)\n"
     "  --tz ZONE    the wall clock the fields follow, e.g. Europe/Paris (default UTC);\n"
     "               read from $TZDIR or /usr/share/zoneinfo here and on the workers.\n"
     "               Across DST a time that happens twice fires once, a skipped one at\n"
     "               the end of the gap.\n"
     "Adding the same definition again changes nothing; another definition replaces it.\n"
     "pause stops the firings; resume starts again from now (the paused time is not\n"
     "caught up); rm deletes the schedule (processes it created stay). Exit 1 when NAME\n"
     "does not exist.\n"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

void cli_help(const char *cmd)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, cmd) == 0) {
            fputs(commands[i].help, stdout);
            fputs(
                "\nGlobal flags: --redis URL, --queue NAME, --json, --failover-ms MS (see lashctl "
                "--help).\n",
                stdout);
            return;
        }
    }
    fputs(overview, stdout);
}

int main(int argc, char **argv)
{
    cli_ctx ctx = {0};
    const char *env = getenv("LASH_REDIS_URL");
    ctx.redis_url = env && *env ? env : "redis://127.0.0.1:6379";
    env = getenv("LASH_QUEUE");
    ctx.queue = env && *env ? env : "default";
    /* A closed pipe (lashctl events | head) ends us quietly through EPIPE. */
    signal(SIGPIPE, SIG_IGN);

    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(overview, stdout);
            return CLI_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("lashctl %s (lua library %s)\n", lash_version(), lash_function_version());
            return CLI_OK;
        }
        int g = cli_global_flag(&ctx, argc, argv, &i);
        if (g < 0) return CLI_USAGE;
        if (g == 0)
            return cli_error(CLI_USAGE, "unknown option '%s' (see lashctl --help)", argv[i]);
    }
    if (i >= argc) return cli_error(CLI_USAGE, "no command given (see lashctl --help)");
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        cli_help(i + 1 < argc ? argv[i + 1] : "");
        return CLI_OK;
    }
    for (size_t k = 0; k < NCOMMANDS; k++) {
        if (strcmp(commands[k].name, name) == 0) {
            int rc = commands[k].fn(&ctx, argc - i - 1, argv + i + 1);
            if (fflush(stdout) != 0 && rc == CLI_OK) rc = CLI_REFUSED;
            return rc;
        }
    }
    return cli_error(CLI_USAGE, "unknown command '%s' (see lashctl --help)", name);
}

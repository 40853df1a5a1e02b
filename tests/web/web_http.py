"""web_http.py: lash-web over plain HTTP (run by tests/web/run.sh).

Modes (each an argument):
  metrics   /metrics parsed by prometheus_client; every value equals Redis's
  security  tokens, cross-site and Host rules, input validation, escaping in JSON
  fuzz      10,000 random requests: never a 5xx, never a dropped connection
  down      Redis stopped: the API answers 503, /metrics says lash_up 0
  up        Redis back: both recover without a restart
Environment: WEB_URL, WEB_SOCK (the Redis socket), LASH_WEB_TOKEN.
"""
import http.client
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

URL = urllib.parse.urlparse(os.environ["WEB_URL"])
HOST, PORT = URL.hostname, URL.port
SOCK = os.environ["WEB_SOCK"]
TOKEN = os.environ["LASH_WEB_TOKEN"]
STATES = ["pending", "running", "completed", "failed", "cancelled", "abandoned"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def redis(*args):
    out = subprocess.run(["redis-cli", "-s", SOCK, "--raw", *args], capture_output=True, text=True)
    return out.stdout.strip()


def request(method, path, headers=None, body=None):
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    h = {"Host": f"{HOST}:{PORT}"}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def get_json(path, **kw):
    st, h, data = request("GET", path, **kw)
    return st, json.loads(data) if data else None


def scrape():
    st, h, data = request("GET", "/metrics")
    check(st == 200, f"/metrics status {st}")
    check(h.get("Content-Type", "").startswith("text/plain; version=0.0.4"), "metrics content type")
    samples = {}
    for fam in text_string_to_metric_families(data.decode()):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def metrics():
    s = scrape()
    check(metric(s, "lash_up") == 1, "lash_up is 1")
    check(metric(s, "lash_queues") == 3, "three queues discovered")
    for q in ("web", "other", "idle"):
        stats = dict(zip(*[iter(redis("HGETALL", f"lash:{{{q}}}:stats").split("\n"))] * 2))
        for st in STATES:
            check(metric(s, "lash_processes", queue=q, state=st) == int(stats.get(st, 0)),
                  f"{q} {st}: {metric(s, 'lash_processes', queue=q, state=st)} vs {stats.get(st)}")
        for name, field in [("submitted", "total_submitted"), ("completed", "total_completed"),
                            ("failed", "total_failed"), ("retried", "total_retried"),
                            ("lost_leases", "total_lost"), ("cancelled", "total_cancelled"),
                            ("abandoned", "total_abandoned")]:
            # prometheus_client reports a counter's samples under the _total name.
            v = metric(s, f"lash_{name}_total", queue=q)
            check(v == int(stats.get(field, 0)), f"{q} lash_{name}_total {v} vs {stats.get(field)}")
        # Milliseconds, like the scores: whole seconds would leave out rows
        # submitted earlier in the current second.
        sec, usec = redis("TIME").split("\n")[:2]
        now = int(sec) * 1000 + int(usec) // 1000
        due = int(redis("ZCARD", f"lash:{{{q}}}:due"))
        check(metric(s, "lash_due_processes", queue=q) == due, f"{q} due")
        check(metric(s, "lash_retained_processes", queue=q) == int(redis("ZCARD", f"lash:{{{q}}}:done")),
              f"{q} retained")
        eligible = int(redis("ZCOUNT", f"lash:{{{q}}}:due", "-inf", str(now)))
        check(metric(s, "lash_eligible_processes", queue=q) == eligible, f"{q} eligible")
        workers = [w for w in redis("ZRANGE", f"lash:{{{q}}}:workers", "0", "-1").split("\n") if w]
        check(metric(s, "lash_workers_alive", queue=q) == len(workers), f"{q} workers alive")
        for w in workers:
            age = metric(s, "lash_worker_heartbeat_age_seconds", queue=q, worker=w)
            check(age is not None and 0 <= age < 15, f"{q} {w} heartbeat age {age}")  # a beat every 5 s
    # web has 30 rows an hour out and nothing eligible: the oldest wait is 0.
    check(metric(s, "lash_oldest_eligible_age_seconds", queue="web") == 0, "no eligible row waits")
    check(metric(s, "lash_due_processes", queue="web") == 30, "30 rows later")
    check(metric(s, "lash_processes", queue="web", state="failed") == 7, "7 failed")
    check(metric(s, "lash_scrape_redis_commands") == 6, "2 commands per queue")
    # idle has no workers: its 5 rows are eligible, the oldest waiting since submit.
    check(metric(s, "lash_eligible_processes", queue="idle") == 5, "idle: 5 eligible")
    oldest = int(redis("ZRANGE", "lash:{idle}:due", "0", "0", "WITHSCORES").split("\n")[1])
    age = metric(s, "lash_oldest_eligible_age_seconds", queue="idle")
    check(abs(age - (now - oldest) / 1000) < 2, f"idle: oldest age {age} vs {(now - oldest) / 1000}")
    check(metric(s, "lash_workers_alive", queue="idle") == 0, "idle: no workers")
    # HEAD gets the headers only.
    st, h, data = request("HEAD", "/metrics")
    check(st == 200 and data == b"", "HEAD /metrics")
    print("metrics: parsed, values equal Redis's")


def security():
    action = "/api/retry?queue=web&id=broken-1"
    st, _, _ = request("POST", action)
    check(st == 401, f"no token: {st}")
    st, _, _ = request("POST", action, {"X-Lash-Token": TOKEN + "x"})
    check(st == 403, f"wrong token: {st}")
    st, _, _ = request("POST", action, {"X-Lash-Token": TOKEN, "Origin": "http://evil.example"})
    check(st == 403, f"cross-origin: {st}")
    st, _, _ = request("POST", action, {"X-Lash-Token": TOKEN, "Sec-Fetch-Site": "cross-site"})
    check(st == 403, f"cross-site: {st}")
    st, _, _ = request("GET", "/api/queues", {"Host": "rebind.evil.example"})
    check(st == 421, f"foreign Host: {st}")
    st, _, _ = request("GET", action)
    check(st == 405, f"GET of an action: {st}")
    check(redis("HGET", "lash:{web}:p:broken-1", "state") == "failed", "refused actions changed nothing")
    # A cancel of a finished row is a conflict, named.
    st, body = 0, None
    st, _, data = request("POST", "/api/cancel?queue=web&id=broken-1", {"X-Lash-Token": TOKEN})
    check(st == 409, f"cancel of a failed row: {st}")
    st, _, data = request("POST", "/api/retry?queue=web&id=nope", {"X-Lash-Token": TOKEN})
    check(st == 404, f"retry of a missing row: {st}")
    for path in ["/api/processes?queue=a%20b", "/api/process?queue=web&id=%3Cscript%3E",
                 "/api/processes?queue=web&cursor=zz", "/api/processes?queue=web&limit=100000",
                 "/api/processes?queue=web&queue=web", "/api/workers"]:
        st, body = get_json(path)
        check(st == 400 and isinstance(body.get("error"), str), f"{path}: {st} {body}")
    st, body = get_json("/api/process?queue=web&id=never-was")
    check(st == 404, f"a missing process: {st}")
    # Responses carry the headers that keep a browser from running or framing them.
    st, h, _ = request("GET", "/")
    check("script-src 'self'" in h.get("Content-Security-Policy", ""), "CSP on the page")
    check(h.get("X-Content-Type-Options") == "nosniff" and h.get("X-Frame-Options") == "DENY",
          "nosniff, no framing")
    print("security: refusals and headers as specified")


def fuzz():
    rnd = random.Random(int(os.environ.get("WEB_FUZZ_SEED", "12")))
    paths = ["/", "/metrics", "/healthz", "/app.js", "/app.css", "/favicon.svg", "/api/config",
             "/api/queues", "/api/workers", "/api/processes", "/api/process", "/api/retry",
             "/api/cancel", "/api/poke", "/api/", "/api/processes/", "//metrics", "/%2e%2e/etc",
             "/../../etc/passwd", "/api/process%00", "/" + "a" * 3000]
    names = ["queue", "id", "state", "cursor", "limit", "reason", "x", "", "queue[]", "%00"]
    values = ["web", "other", "default", "broken-1", "flaky-2", "later-3", "failed", "completed",
              "t0", "d5", "t999999999999", "0", "-1", "500", "501", "<script>", "'\"", "a b",
              "%ff%fe", "%00", "\u00e9", "x" * 300, ""]
    methods = ["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
    counts = {}
    t0 = time.time()
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    for i in range(10000):
        path = rnd.choice(paths)
        args = []
        for _ in range(rnd.randrange(0, 6)):
            n, v = rnd.choice(names), rnd.choice(values)
            if rnd.random() < 0.2:
                v = "".join(chr(rnd.randrange(1, 256)) for _ in range(rnd.randrange(1, 20)))
            args.append(urllib.parse.quote(n, safe="") + ("" if rnd.random() < 0.05 else
                                                          "=" + urllib.parse.quote(v, safe="")))
        if rnd.random() < 0.05:
            args.append("&&==&")
        target = path + ("?" + "&".join(args) if args else "")
        h = {"Host": f"{HOST}:{PORT}"}
        if rnd.random() < 0.3:
            h["X-Lash-Token"] = rnd.choice([TOKEN, "wrong", ""])
        if rnd.random() < 0.1:
            h["Origin"] = rnd.choice(["http://evil.example", f"http://{HOST}:{PORT}", "null"])
        if rnd.random() < 0.1:
            h["Host"] = rnd.choice(["evil.example", "localhost", "[::1]:1"])
        method = rnd.choice(methods)
        # Destructive actions only ever on rows no other check looks at.
        if method == "POST" and ("broken" in target or "flaky" in target):
            method = "GET"
        try:
            c.request(method, target, headers=h)
            r = c.getresponse()
            r.read()
            st = r.status
            if r.getheader("Connection", "").lower() == "close":
                c.close()
                c = http.client.HTTPConnection(HOST, PORT, timeout=10)
        except (http.client.HTTPException, ConnectionError) as e:
            failures.append(f"request {i} {method} {target[:80]!r}: {e!r}")
            c.close()
            c = http.client.HTTPConnection(HOST, PORT, timeout=10)
            continue
        counts[st] = counts.get(st, 0) + 1
        check(st < 500, f"request {i} {method} {target[:120]!r}: {st}")
        if len(failures) > 20:
            break
    c.close()
    dt = time.time() - t0
    print(f"fuzz: 10,000 requests in {dt:.1f} s, statuses {dict(sorted(counts.items()))}")


def down():
    st, body = get_json("/api/queues")
    check(st == 503 and "redis unreachable" in body.get("error", ""), f"api with Redis down: {st} {body}")
    s = scrape()
    check(metric(s, "lash_up") == 0, "lash_up 0 with Redis down")
    st, _, _ = request("GET", "/healthz")
    check(st == 200, "healthz does not need Redis")
    print("down: 503 and lash_up 0")


def up():
    s = scrape()
    check(metric(s, "lash_up") == 1, "lash_up back to 1")
    st, body = get_json("/api/queues")
    check(st == 200, f"api back: {st}")
    print("up: recovered without a restart")


def worker():
    """One worker's own /metrics: parsed, and consistent with what Redis saw."""
    text = urllib.request.urlopen(os.environ["WORKER_METRICS_URL"], timeout=10).read().decode()
    s = {}
    for fam in text_string_to_metric_families(text):
        for x in fam.samples:
            s[(x.name, tuple(sorted(x.labels.items())))] = x.value
    check(metric(s, "lash_worker_slots") == 16, "slots = concurrency 16")
    check(metric(s, "lash_worker_running") == 0, "nothing running at rest")
    check(metric(s, "lash_worker_prefetched") == 0, "nothing prefetched at rest (no --prefetch)")
    ran = sum(v for (n, l), v in s.items() if n == "lash_worker_handler_seconds_count")
    claimed = metric(s, "lash_worker_rows_claimed_total")
    recorded = metric(s, "lash_worker_rows_recorded_total")
    check(ran > 0 and claimed >= ran and recorded == ran, f"ran {ran}, claimed {claimed}, recorded {recorded}")
    noop = metric(s, "lash_worker_handler_seconds_count", kind="noop")
    inf = metric(s, "lash_worker_handler_seconds_bucket", kind="noop", le="+Inf")
    check(noop and inf == noop, "the +Inf bucket counts every noop")
    check(metric(s, "lash_worker_claims_total") > 0, "claims counted")
    # Both workers together ran every job Redis recorded an outcome for.
    st, body = get_json("/api/queues")
    print(f"worker: this worker ran {ran:.0f} jobs ({noop:.0f} noop), claimed {claimed:.0f}")


for mode in sys.argv[1:]:
    globals()[mode]()
if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)

#!/usr/bin/env bash
# check-static.sh: the deployment files, checked without a Docker engine.
#
#   tests/deploy/check-static.sh            (from anywhere; exits non-zero on failure)
#
# There is no Docker engine on our machines, so nothing here builds an image or
# starts a container. What it does instead:
#   - docker-compose.yml: `docker-compose config -q` (Debian's compose v1, which
#     validates against the compose spec) with a dummy .env, plus the properties
#     the deployment relies on (env-only worker config, grace period, profiles);
#   - deploy/Dockerfile: a lint of our own (stages, non-root USER, HEALTHCHECK,
#     ENTRYPOINT, runtime-only packages, every COPY source present and not
#     dockerignored), then a replay of the build stage: the files the Dockerfile
#     copies, and only those, are copied to a temp dir and its cmake steps run
#     there; the binaries' shared libraries must come from the runtime packages;
#   - deploy/users.acl + deploy/redis.conf: a real redis-server loads both (on a
#     temp unix socket), ACL LIST and ACL DRYRUN confirm the permissions, and the
#     committed hashes match the documented development passwords;
#   - the systemd units: `systemd-analyze verify` and `systemd-analyze security`;
#   - every deploy shell script: bash -n, and shellcheck when installed.
# The last line is "N passed, N failed".
set -uo pipefail
# `python3 ... | tally` must count in this shell, not in a pipeline subshell.
shopt -s lastpipe

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
TMP=$(mktemp -d /tmp/lash-static.XXXXXX)
REDIS_PID=""

cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=tests/deploy/tap.sh
. "$ROOT/tests/deploy/tap.sh"
skip() { echo "skipped - $*"; }
# Reads "ok NAME" / "fail NAME: WHY" lines (from the python checks) into the tally.
tally() {
    local kind rest
    while read -r kind rest; do
        case "$kind" in
        ok) ok "$rest" ;;
        fail) bad "$rest" ;;
        skip) skip "$rest" ;;
        *) echo "$kind $rest" ;;
        esac
    done
}

DEV_WORKER_PASSWORD=lash-worker-dev-password
DEV_OPERATOR_PASSWORD=lash-operator-dev-password

# --- docker-compose.yml ------------------------------------------------------
echo "# docker-compose.yml"
cat >"$TMP/dummy.env" <<EOF
LASH_WORKER_PASSWORD=dummy-worker-password
LASH_OPERATOR_PASSWORD=dummy-operator-password
EOF
: >"$TMP/empty.env"
if ! command -v docker-compose >/dev/null; then
    bad "docker-compose not installed (apt-get install docker-compose)"
else
    if out=$(docker-compose --project-directory "$ROOT" --env-file "$TMP/dummy.env" \
        -f docker-compose.yml config -q 2>&1); then
        ok "docker-compose config -q accepts docker-compose.yml"
    else
        bad "docker-compose config -q: $out"
    fi
    # Without the passwords compose must refuse, not start Redis-less workers
    # with an empty password.
    if out=$(docker-compose --project-directory "$ROOT" --env-file "$TMP/empty.env" \
        -f docker-compose.yml config -q 2>&1); then
        bad "compose accepted a missing LASH_WORKER_PASSWORD"
    elif grep -q "LASH_.*PASSWORD" <<<"$out"; then
        ok "compose refuses to start without the passwords, and says which"
    else
        bad "compose failed without the passwords, but not saying so: $out"
    fi
    if docker-compose --project-directory "$ROOT" --env-file "$TMP/dummy.env" \
        -f docker-compose.yml config >"$TMP/compose.yml" 2>"$TMP/compose.err"; then
        python3 - "$TMP/compose.yml" "$ROOT" <<'PY' | tally
import os, re, sys, yaml

doc = yaml.safe_load(open(sys.argv[1]))
root = sys.argv[2]
svc = doc.get("services", {})

def check(name, cond, why=""):
    print(("ok " + name) if cond else ("fail " + name + (": " + why if why else "")))

def seconds(v):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", str(v))
    if not m:
        return None
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, None: n, "m": n * 60}[m.group(2)]

r, w, c = svc.get("redis", {}), svc.get("worker", {}), svc.get("lashctl", {})
check("compose has redis, worker and lashctl services", r and w and c, str(list(svc)))
check("redis image is redis:7.0", r.get("image") == "redis:7.0", str(r.get("image")))
check("redis runs with the mounted redis.conf",
      r.get("command") == ["redis-server", "/usr/local/etc/redis/redis.conf"], str(r.get("command")))
mounts = {}
for v in r.get("volumes", []):
    parts = v.split(":") if isinstance(v, str) else [v.get("source"), v.get("target")]
    mounts[parts[1]] = parts[0]
for target, want in (("/usr/local/etc/redis/redis.conf", "deploy/redis.conf"),
                     ("/usr/local/etc/redis/users.acl", "deploy/users.acl")):
    src = mounts.get(target, "")
    check("redis mounts %s from %s (exists)" % (target, want),
          src == os.path.join(root, want) and os.path.isfile(src), src)
check("redis keeps its data in a named volume",
      mounts.get("/data") in (doc.get("volumes") or {}), str(mounts.get("/data")))
check("redis has a healthcheck", bool(r.get("healthcheck", {}).get("test")))

env = w.get("environment", {})
check("worker is built from deploy/Dockerfile",
      w.get("build", {}).get("dockerfile") == "deploy/Dockerfile", str(w.get("build")))
check("worker is configured only by LASH_* environment (no command, no env_file)",
      "command" not in w and "env_file" not in w and env and all(k.startswith("LASH_") for k in env),
      str(sorted(env)))
url = env.get("LASH_REDIS_URL", "")
check("worker URL names user lash-worker and carries no password",
      re.fullmatch(r"redis://lash-worker@redis:6379", url) is not None, url)
check("worker password comes from the environment (.env)",
      env.get("LASH_REDIS_PASSWORD") == "dummy-worker-password", "not taken from .env")
grace = int(env.get("LASH_GRACE_MS", "10000")) / 1000
sgp = seconds(w.get("stop_grace_period", "10s"))
check("worker stop_grace_period (%ss) covers LASH_GRACE_MS (%ss) plus a margin" % (sgp, grace),
      sgp is not None and grace + 2 <= sgp <= grace + 30)
check("worker can be scaled (no container_name, no fixed host ports)",
      "container_name" not in w and not w.get("ports"))
dep = w.get("depends_on", {})
check("worker waits for a healthy redis",
      isinstance(dep, dict) and dep.get("redis", {}).get("condition") == "service_healthy", str(dep))
check("worker drops all capabilities, read-only root, no-new-privileges",
      w.get("cap_drop") == ["ALL"] and w.get("read_only") is True
      and "no-new-privileges:true" in (w.get("security_opt") or []))

cenv = c.get("environment", {})
check("lashctl sits under profile tools", c.get("profiles") == ["tools"], str(c.get("profiles")))
check("lashctl entrypoint is lashctl", c.get("entrypoint") == ["lashctl"], str(c.get("entrypoint")))
check("lashctl uses the lash-operator user, password from .env",
      cenv.get("LASH_REDIS_URL") == "redis://lash-operator@redis:6379"
      and cenv.get("LASH_REDIS_PASSWORD") == "dummy-operator-password", str(cenv))
PY
    else
        bad "docker-compose config: $(cat "$TMP/compose.err")"
    fi
fi
conf=deploy/redis.conf
for want in "appendonly yes" "appendfsync everysec" "maxmemory-policy noeviction" \
    "aclfile /usr/local/etc/redis/users.acl"; do
    if grep -qx "$want" "$conf"; then ok "redis.conf: $want"; else bad "redis.conf lacks '$want'"; fi
done
if grep -qE '^[[:space:]]*requirepass' "$conf"; then
    bad "redis.conf sets requirepass next to aclfile"
else
    ok "redis.conf leaves passwords to the ACL file"
fi

# --- deploy/Dockerfile: lint -------------------------------------------------
echo "# deploy/Dockerfile"
python3 - "$ROOT" <<'PY' | tally
import fnmatch, json, os, re, shlex, subprocess, sys

root = sys.argv[1]
text = open(os.path.join(root, "deploy/Dockerfile")).read()
# Join continuation lines, drop comments and blanks.
lines, cur = [], ""
for raw in text.splitlines():
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if s.startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    lines.append((cur + s).strip())
    cur = ""

stages = []
for l in lines:
    op, _, arg = l.partition(" ")
    op = op.upper()
    if op == "FROM":
        stages.append({"from": arg, "ins": []})
    elif stages:
        stages[-1]["ins"].append((op, arg.strip()))

def check(name, cond, why=""):
    print(("ok " + name) if cond else ("fail " + name + (": " + why if why else "")))

check("multi-stage: two or more FROM", len(stages) >= 2, str(len(stages)))
check("every stage is FROM debian:12-slim",
      all(s["from"].split()[0] == "debian:12-slim" for s in stages), str([s["from"] for s in stages]))
build = next((s for s in stages if re.search(r"\bAS\s+build\b", s["from"], re.I)), None)
check("a build stage named 'build'", build is not None)
final = stages[-1]

def ins(stage, op):
    return [a for o, a in stage["ins"] if o == op]

def installed(stage):
    pk = []
    for run in ins(stage, "RUN"):
        for part in re.split(r"&&|;", run):
            words = part.split()
            if "apt-get" in words and "install" in words:
                check("apt-get install --no-install-recommends (%s stage)" % ("final" if stage is final else "build"),
                      "--no-install-recommends" in words)
                pk += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
        if "apt-get install" in run:
            check("apt lists removed in the same RUN (%s stage)" % ("final" if stage is final else "build"),
                  "rm -rf /var/lib/apt/lists" in run)
    return pk

if build:
    bpk = installed(build)
    need = {"cmake", "gcc", "pkg-config", "libhiredis-dev", "libev-dev", "libcjson-dev"}
    check("build stage installs the build deps", need <= set(bpk), str(sorted(need - set(bpk))))
    runs = " ".join(ins(build, "RUN"))
    check("build stage builds with -DLASH_TESTS=OFF", "-DLASH_TESTS=OFF" in runs)
fpk = installed(final)
check("final stage installs exactly the runtime libraries",
      set(fpk) == {"libhiredis0.14", "libev4", "libcjson1"}, str(fpk))
check("final stage installs no -dev package or compiler",
      not [p for p in fpk if p.endswith("-dev") or p in ("gcc", "cmake", "make")], str(fpk))
if subprocess.run(["sh", "-c", "command -v apt-cache"], capture_output=True).returncode == 0:
    allp = (bpk if build else []) + fpk
    missing = [p for p in allp
               if subprocess.run(["apt-cache", "show", p], capture_output=True).returncode != 0]
    check("every apt package exists in Debian 12 (apt-cache show)", not missing, str(missing))
else:
    print("skip apt package names: no apt-cache")

users = ins(final, "USER")
check("final stage switches to a non-root USER",
      bool(users) and users[-1].split(":")[0] not in ("root", "0"), str(users))
if users:
    run = " ".join(ins(final, "RUN"))
    check("USER %s is created in the final stage" % users[-1],
          re.search(r"useradd\b.*\b%s\b" % re.escape(users[-1]), run) is not None)

def exec_form(arg):
    try:
        v = json.loads(arg)
        return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
    except ValueError:
        return None

ep = ins(final, "ENTRYPOINT")
check("ENTRYPOINT [\"lash-worker\"] (exec form)", bool(ep) and exec_form(ep[-1]) == ["lash-worker"],
      str(ep))
hc = ins(final, "HEALTHCHECK")
hcmd = exec_form(hc[-1].split("CMD", 1)[1].strip()) if hc and "CMD" in hc[-1] else None
check("HEALTHCHECK CMD [\"lash-worker\", \"--check\"] (exec form)",
      hcmd is not None and hcmd[:2] == ["lash-worker", "--check"], str(hc))
envs = " ".join(ins(final, "ENV"))
check("final stage sets LASH_HEALTH_FILE for the health check", "LASH_HEALTH_FILE=" in envs, envs)

# COPY sources: present in the repo and not excluded by .dockerignore.
ignore = []
p = os.path.join(root, ".dockerignore")
if os.path.exists(p):
    ignore = [l.strip() for l in open(p) if l.strip() and not l.startswith("#")]
check(".dockerignore exists and keeps build trees and .git out",
      {".git", "build", "build-*"} <= set(ignore), str(ignore))

def ignored(rel):
    rel = rel.rstrip("/")
    hit = False
    for pat in ignore:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            pre = "/".join(parts[:i])
            if fnmatch.fnmatchcase(pre, pat) or (pat.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pat[3:])):
                hit = not neg
                break
    return hit

bad = []
ncopy = 0
for st in stages:
    for op, arg in st["ins"]:
        if op not in ("COPY", "ADD"):
            continue
        words = shlex.split(arg)
        if any(w.startswith("--from") for w in words):
            continue
        srcs = [w for w in words[:-1] if not w.startswith("--")]
        for s in srcs:
            ncopy += 1
            full = os.path.join(root, s)
            if not os.path.exists(full):
                bad.append(s + " (missing)")
            elif ignored(s):
                bad.append(s + " (dockerignored)")
            elif os.path.isdir(full) and not any(
                    not ignored(os.path.relpath(os.path.join(d, f), root))
                    for d, _, fs in os.walk(full) for f in fs):
                bad.append(s + " (empty: git does not keep empty directories)")
check("all %d COPY sources exist, are non-empty and are in the build context" % ncopy, not bad,
      ", ".join(bad))
PY

# --- deploy/Dockerfile: replay of the build stage --------------------------------
# Copy exactly what the build stage COPYs into a scratch dir that stands for
# WORKDIR, run its cmake steps there, and check that the files the final stage
# takes --from=build exist. This catches a forgotten COPY (a missing source dir)
# and a build that needs the tests or bench trees.
echo "# deploy/Dockerfile build replay"
python3 - "$ROOT" "$TMP/replay" >"$TMP/replay.plan" <<'PY'
import os, re, shlex, sys

root, dest = sys.argv[1], sys.argv[2]
text = re.sub(r"\\\n", " ", open(os.path.join(root, "deploy/Dockerfile")).read())
stage, workdir = None, "/"
for line in text.splitlines():
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    op, _, arg = s.partition(" ")
    op = op.upper()
    if op == "FROM":
        stage = "build" if re.search(r"\bAS\s+build\b", arg, re.I) else "other"
        workdir = "/"
        continue
    if op == "WORKDIR":
        workdir = os.path.join(workdir, arg.strip())
    if stage == "build" and op == "COPY":
        words = shlex.split(arg)
        for src in words[:-1]:
            print("copy\t%s\t%s" % (src, os.path.join(dest, words[-1])))
    elif stage == "build" and op == "RUN" and "apt-get" not in arg:
        print("run\t%s" % arg.strip())
    elif stage == "other" and op == "COPY" and "--from=build" in arg:
        words = [w for w in shlex.split(arg) if not w.startswith("--")]
        for src in words[:-1]:
            print("want\t%s" % src)
    if stage == "build":
        print("workdir\t%s" % workdir)
PY
mkdir -p "$TMP/replay"
src_root=""
replay_ok=1
while IFS=$'\t' read -r kind a b; do
    case "$kind" in
    workdir) src_root=$a ;;
    copy)
        # Docker copies a directory's contents into the destination directory.
        mkdir -p "$b"
        if [ -d "$ROOT/$a" ]; then
            cp -a "$ROOT/$a/." "$b/" || replay_ok=0
        else
            cp -a "$ROOT/$a" "$b/" || replay_ok=0
        fi
        ;;
    run)
        echo "  RUN $a"
        if ! (cd "$TMP/replay" && sh -c "$a") >"$TMP/replay.log" 2>&1; then
            bad "build replay: '$a' failed: $(tail -n 15 "$TMP/replay.log")"
            replay_ok=0
            break
        fi
        ;;
    want)
        rel=${a#"$src_root"/}
        if [ -x "$TMP/replay/$rel" ]; then
            ok "build replay produced $a"
            echo "$TMP/replay/$rel" >>"$TMP/replay.bins"
        else
            bad "build replay did not produce $a"
            replay_ok=0
        fi
        ;;
    esac
done <"$TMP/replay.plan"
if [ "$replay_ok" = 1 ] && [ -s "$TMP/replay.bins" ]; then
    ok "build replay: the build stage's COPYs are enough to build"
    # Every shared library the binaries name must come from a package the final
    # stage installs (or libc6, which debian:12-slim has).
    allowed=" libc6 libhiredis0.14 libev4 libcjson1 "
    libs_bad=""
    while read -r bin; do
        while read -r lib; do
            # "libx.so => /path (addr)", or "/lib64/ld-linux-x86-64.so.2 (addr)"
            # for the dynamic loader.
            path=$(ldd "$bin" | awk -v l="$lib" '$1 == l { print $3 } $1 ~ ("/" l "$") { print $1 }')
            pkg=""
            for p in "$path" "$(readlink -f "$path")" "${path/#\/lib\//\/usr\/lib\/}"; do
                [ -n "$p" ] || continue
                pkg=$(dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
            done
            case "$allowed" in
            *" $pkg "*) ;;
            *) libs_bad+=" $(basename "$bin"):$lib(${pkg:-no package})" ;;
            esac
        done < <(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }')
    done <"$TMP/replay.bins"
    if [ -z "$libs_bad" ]; then
        ok "the binaries need only libc6 and the runtime packages"
    else
        bad "libraries not provided by the final stage:$libs_bad"
    fi
fi

# --- deploy/users.acl + redis.conf in a real redis-server ------------------------
echo "# deploy/users.acl"
if out=$(LASH_WORKER_PASSWORD=$DEV_WORKER_PASSWORD LASH_OPERATOR_PASSWORD=$DEV_OPERATOR_PASSWORD \
    deploy/make-acl.sh 2>&1) && [ "$out" = "$(cat deploy/users.acl)" ]; then
    ok "users.acl carries the hashes of the documented development passwords"
else
    bad "users.acl differs from make-acl.sh with the development passwords: $out"
fi
if grep -qE '(^| )(>|nopass( |$))' deploy/users.acl; then
    bad "users.acl holds a cleartext password or a nopass user"
else
    ok "users.acl holds only #<sha256> password hashes"
fi
# Redis 7 checks every command a script calls against the caller's ACL: each one
# the Lua scripts use must be granted to both users, or that path of the worker
# breaks in production only.
mapfile -t lua_cmds < <(grep -ohE "redis\.p?call\(['\"][A-Za-z_]+" proto/lua/*.lua |
    sed -E "s/.*\(['\"]//" | tr '[:upper:]' '[:lower:]' | sort -u)
for u in lash-worker lash-operator; do
    line=" $(grep "^user $u " deploy/users.acl) "
    missing=""
    for c in "${lua_cmds[@]}"; do
        [[ $line == *" +$c "* ]] || missing+=" $c"
    done
    if [ "${#lua_cmds[@]}" -gt 0 ] && [ -z "$missing" ]; then
        ok "$u is granted all ${#lua_cmds[@]} commands the Lua scripts call"
    else
        bad "$u lacks commands the Lua scripts call:${missing:- (none found in proto/lua)}"
    fi
done
# The test copy adds an admin user, so that ACL LIST and ACL DRYRUN can be asked.
admin_pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
{
    cat deploy/users.acl
    echo "user lash-static-admin on #$(printf '%s' "$admin_pw" | sha256sum | cut -d' ' -f1) ~* &* +@all"
} >"$TMP/users.acl"
sock="$TMP/redis.sock"
redis-server deploy/redis.conf --dir "$TMP" --port 0 --unixsocket "$sock" --unixsocketperm 700 \
    --aclfile "$TMP/users.acl" --save '' --appendonly no --daemonize no >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do
    [ -S "$sock" ] && break
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
done
admin() { REDISCLI_AUTH=$admin_pw redis-cli -s "$sock" --user lash-static-admin "$@" 2>&1; }
if [ -S "$sock" ] && [ "$(admin PING)" = PONG ]; then
    ok "redis-server starts with deploy/redis.conf and the ACL file"
    acl=$(admin ACL LIST)
    for u in default lash-worker lash-operator; do
        if grep -q "^user $u " <<<"$acl"; then ok "ACL LIST has user $u"; else bad "ACL LIST lacks $u: $acl"; fi
    done
    if grep -q "^user default off " <<<"$acl"; then
        ok "the default user is off"
    else
        bad "the default user is not off: $(grep '^user default' <<<"$acl")"
    fi
    for u in lash-worker lash-operator; do
        line=$(grep "^user $u " <<<"$acl")
        if grep -q ' ~lash:\* ' <<<"$line " && grep -q ' &lash:\* ' <<<"$line " &&
            [ "$(grep -o ' [~%][^ ]*' <<<"$line" | wc -l)" = 1 ] &&
            [ "$(grep -o ' &[^ ]*' <<<"$line" | wc -l)" = 1 ]; then
            ok "$u: keys ~lash:* and channels &lash:* only"
        else
            bad "$u: unexpected key or channel patterns: $line"
        fi
    done
    dry() { admin ACL DRYRUN "$@"; }
    for u in lash-worker lash-operator; do
        for cmd in "flushall" "flushdb" "config get *" "keys *" "debug sleep 0" "shutdown" \
            "acl list" "scan 0" "function flush" "script flush" "client kill id 1" \
            "monitor" "module list" "save" "replicaof no one" "get other" "set other 1"; do
            # shellcheck disable=SC2086 # word splitting of the command is intended
            r=$(dry "$u" $cmd)
            if [ "$r" = OK ]; then bad "$u may run '$cmd'"; else ok "$u may not run '$cmd'"; fi
        done
        for cmd in "evalsha 0000000000000000000000000000000000000000 1 lash:{q}" \
            "eval return(1) 1 lash:{q}" "fcall lash_claim 1 lash:{q}" "hgetall lash:{q}:p:x" \
            "zrangebyscore lash:{q}:due 0 1" "xrange lash:{q}:events - +" "publish lash:{q}:poke x" \
            "subscribe lash:{q}:poke" "script load x" "ping" "time"; do
            # shellcheck disable=SC2086
            r=$(dry "$u" $cmd)
            if [ "$r" = OK ]; then ok "$u may run '$cmd'"; else bad "$u may not run '$cmd': $r"; fi
        done
    done
    for cmd in "function load x" "function list" "info"; do
        # shellcheck disable=SC2086
        r=$(dry lash-operator $cmd)
        if [ "$r" = OK ]; then ok "lash-operator may run '$cmd'"; else bad "lash-operator may not run '$cmd': $r"; fi
        # shellcheck disable=SC2086
        r=$(dry lash-worker $cmd)
        if [ "$r" = OK ]; then bad "lash-worker may run '$cmd'"; else ok "lash-worker may not run '$cmd'"; fi
    done
    for pair in "lash-worker:$DEV_WORKER_PASSWORD" "lash-operator:$DEV_OPERATOR_PASSWORD"; do
        r=$(REDISCLI_AUTH=${pair#*:} redis-cli -s "$sock" --user "${pair%%:*}" PING 2>&1)
        if [ "$r" = PONG ]; then ok "${pair%%:*} logs in with its development password"; else bad "${pair%%:*} login: $r"; fi
    done
else
    bad "redis-server did not start with the ACL file: $(tail -n 5 "$TMP/redis.log")"
fi
kill "$REDIS_PID" 2>/dev/null
wait "$REDIS_PID" 2>/dev/null
REDIS_PID=""

# --- systemd units -----------------------------------------------------------
echo "# systemd units"
for f in deploy/lash-worker.service deploy/lash-worker@.service; do
    for d in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
        ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes \
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" LockPersonality=yes \
        MemoryDenyWriteExecute=yes SystemCallFilter=@system-service KillMode=mixed \
        Restart=on-failure DynamicUser=yes; do
        grep -qx "$d" "$f" || bad "$f lacks $d"
    done
    ok "$f has the hardening and lifecycle directives"
    stop=$(sed -nE 's/^TimeoutStopSec=([0-9]+)s?$/\1/p' "$f")
    if [ -n "$stop" ] && [ "$stop" -gt 10 ]; then
        ok "$f: TimeoutStopSec=${stop}s exceeds the default 10 s grace"
    else
        bad "$f: TimeoutStopSec '${stop}' must exceed LASH_GRACE_MS (10 s)"
    fi
done
if grep -qx 'EnvironmentFile=/etc/lash/%i.env' deploy/lash-worker@.service; then
    ok "lash-worker@.service reads /etc/lash/%i.env"
else
    bad "lash-worker@.service does not read /etc/lash/%i.env"
fi
if ! command -v systemd-analyze >/dev/null; then
    skip "systemd-analyze verify: systemd-analyze is not installed"
else
    # verify insists that ExecStart exists: point it at a real binary when we
    # have one, else at /bin/true (the unit is what is being checked).
    exe=/bin/true
    for b in "${LASH_BIN_DIR:-$ROOT/build/bin}/lash-worker" "$(head -n 1 "$TMP/replay.bins" 2>/dev/null)"; do
        if [ -n "$b" ] && [ -x "$b" ]; then
            exe=$b
            break
        fi
    done
    mkdir -p "$TMP/units"
    for f in lash-worker.service lash-worker@.service; do
        sed "s#^ExecStart=/usr/local/bin/lash-worker#ExecStart=$exe#" "deploy/$f" >"$TMP/units/$f"
    done
    for u in lash-worker.service lash-worker@images.service; do
        # verify exits 0 on unknown keys and bad values, printing them: any
        # output is a failure.
        if out=$(cd "$TMP/units" && systemd-analyze verify "$u" 2>&1) && [ -z "$out" ]; then
            ok "systemd-analyze verify $u (ExecStart=$exe)"
        else
            bad "systemd-analyze verify $u: $out"
        fi
    done
    if out=$(systemd-analyze security --offline=yes "$TMP/units/lash-worker.service" 2>&1); then
        level=$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p' <<<"$out")
        if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
            ok "systemd-analyze security: exposure $level (<= 2.0)"
        else
            bad "systemd-analyze security: exposure '${level}' above 2.0"
        fi
    else
        skip "systemd-analyze security --offline: not supported here ($(tail -n 1 <<<"$out"))"
    fi
fi
bad_keys=$(grep -vE '^(#|$)' deploy/lash-worker.env.example | grep -vE '^LASH_[A-Z_]+=' || true)
if [ -z "$bad_keys" ]; then
    ok "lash-worker.env.example sets only LASH_* variables"
else
    bad "lash-worker.env.example has other lines: $bad_keys"
fi

# --- shell scripts -----------------------------------------------------------
echo "# shell scripts"
scripts=(deploy/make-acl.sh tests/deploy/*.sh)
for s in "${scripts[@]}"; do
    if bash -n "$s" 2>"$TMP/bashn"; then ok "bash -n $s"; else bad "bash -n $s: $(cat "$TMP/bashn")"; fi
done
if command -v shellcheck >/dev/null; then
    if out=$(shellcheck "${scripts[@]}" 2>&1); then
        ok "shellcheck ${#scripts[@]} scripts"
    else
        bad "shellcheck: $out"
    fi
else
    skip "shellcheck: not installed"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

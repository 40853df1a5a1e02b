#!/usr/bin/env python3
"""lint-deploy.py: properties of deploy/Dockerfile and docker-compose.yml that
running them does not show.

    tests/deploy/lint-deploy.py dockerfile ROOT
    tests/deploy/lint-deploy.py compose RESOLVED.yml ROOT

`compose` reads the output of `docker-compose config` (the resolved file, with
the passwords of a dummy .env). Prints one line per check, "ok NAME" or
"fail NAME: WHY", for tests/deploy/check-static.sh to count; exits 0 either
way (the caller counts), 2 on bad usage.

tests/deploy/containers-test.sh builds the image and runs the stack for real,
so what it proves is not repeated here (that COPY sources exist, that the build
works, that the binaries find their libraries, USER, HEALTHCHECK, ENTRYPOINT,
mounts). What stays is what a working stack can still get wrong: a base that
needs a registry, a fatter or less private image, a weaker sandbox, a password
where `ps` or `inspect` shows it, a grace period that cuts the drain short.
"""
import os
import re
import sys


def check(name, cond, why=""):
    print(("ok " + name) if cond else ("fail " + name + (": " + why if why else "")))


def dockerfile_stages(text):
    """[{"from": "image [AS name]", "ins": [(OP, args), ...]}, ...] with
    continuation lines joined and comments dropped."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("#") or (not cur and not s):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append((cur + s).strip())
        cur = ""
    stages = []
    for line in lines:
        op, _, arg = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            stages.append({"from": arg.strip(), "ins": []})
        elif stages:
            stages[-1]["ins"].append((op, arg.strip()))
    return stages


def apt_installs(stage, label):
    """Packages a stage installs; checks how it installs them."""
    pkgs = []
    for op, run in stage["ins"]:
        if op != "RUN" or "apt-get" not in run:
            continue
        for part in re.split(r"&&|;", run):
            words = part.split()
            if "apt-get" in words and "install" in words:
                check("apt-get install --no-install-recommends (%s)" % label,
                      "--no-install-recommends" in words)
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
        if "apt-get install" in run:
            check("apt lists removed in the same RUN (%s)" % label,
                  "rm -rf /var/lib/apt/lists" in run)
    return pkgs


def lint_dockerfile(root):
    text = open(os.path.join(root, "deploy/Dockerfile")).read()
    # BuildKit fetches the frontend named by a syntax line from a registry
    # before it reads anything else: offline, the build fails at once.
    check("no '# syntax=' line (BuildKit would pull a frontend image)",
          not re.search(r"^#\s*syntax\s*=", text, re.M | re.I))
    stages = dockerfile_stages(text)
    check("every stage is FROM debian:12-slim (the base deploy/debian-base.sh makes offline)",
          stages and all(s["from"].split()[0] == "debian:12-slim" for s in stages),
          str([s["from"] for s in stages]))
    names = {}
    for s in stages:
        m = re.search(r"\bAS\s+(\S+)", s["from"], re.I)
        if m:
            names[m.group(1).lower()] = s
    final = stages[-1]
    check("the last (default) stage is the unnamed worker image, not a named target",
          not re.search(r"\bAS\b", final["from"], re.I), final["from"])
    fpk = apt_installs(final, "worker image")
    check("worker image installs exactly the runtime libraries",
          set(fpk) == {"libhiredis0.14", "libev4", "libcjson1"}, str(fpk))
    redis = names.get("redis")
    check("a stage named 'redis' for the compose file's Redis", redis is not None)
    if redis:
        rpk = apt_installs(redis, "redis image")
        check("redis image installs only Debian's redis-server", rpk == ["redis-server"], str(rpk))
        users = [a for o, a in redis["ins"] if o == "USER"]
        check("redis image runs as user redis", users[-1:] == ["redis"], str(users))
    if "build" in names:
        apt_installs(names["build"], "build stage")
    # The build context: never history, build trees or local secrets.
    ignore = []
    p = os.path.join(root, ".dockerignore")
    if os.path.exists(p):
        ignore = [l.strip() for l in open(p) if l.strip() and not l.startswith("#")]
    want = {".git", "build", "build-*", ".env", "deploy/*.local.acl"}
    check(".dockerignore keeps .git, build trees, .env and rendered ACL files out of the context",
          want <= set(ignore), str(sorted(want - set(ignore))))


def seconds(v):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", str(v))
    if not m:
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60}[m.group(2)]


def lint_compose(resolved, root):
    import yaml  # python3-yaml: a dependency of docker-compose

    doc = yaml.safe_load(open(resolved))
    svc = doc.get("services", {})
    r, w, c = svc.get("redis", {}), svc.get("worker", {}), svc.get("lashctl", {})
    rb = r.get("build", {})
    check("redis is built from deploy/Dockerfile, target redis (no registry needed)",
          rb.get("target") == "redis" and rb.get("dockerfile") == "deploy/Dockerfile", str(rb))
    check("no service publishes a port on the host", not any(s.get("ports") for s in svc.values()))

    env = w.get("environment", {})
    check("worker is configured only by LASH_* environment (no command, no env_file)",
          "command" not in w and "env_file" not in w and env
          and all(k.startswith("LASH_") for k in env), str(sorted(env)))
    url = env.get("LASH_REDIS_URL", "")
    check("worker URL names user lash-worker and carries no password",
          re.fullmatch(r"redis://lash-worker@redis:6379", url) is not None, url)
    check("worker password comes from .env (LASH_WORKER_PASSWORD)",
          env.get("LASH_REDIS_PASSWORD") == "dummy-worker-password")
    grace = int(env.get("LASH_GRACE_MS", "10000")) / 1000
    sgp = seconds(w.get("stop_grace_period", "10s"))
    check("worker stop_grace_period (%ss) covers LASH_GRACE_MS (%ss) plus a margin" % (sgp, grace),
          sgp is not None and grace + 2 <= sgp <= grace + 30)
    check("worker can be scaled (no container_name)", "container_name" not in w)
    dep = w.get("depends_on", {})
    check("worker waits for a healthy redis",
          isinstance(dep, dict) and dep.get("redis", {}).get("condition") == "service_healthy",
          str(dep))
    check("worker drops all capabilities, read-only root, no-new-privileges, init",
          w.get("cap_drop") == ["ALL"] and w.get("read_only") is True and w.get("init") is True
          and "no-new-privileges:true" in (w.get("security_opt") or []))

    cenv = c.get("environment", {})
    check("lashctl sits under profile tools", c.get("profiles") == ["tools"], str(c.get("profiles")))
    check("lashctl uses the lash-operator user, password from .env",
          cenv.get("LASH_REDIS_URL") == "redis://lash-operator@redis:6379"
          and cenv.get("LASH_REDIS_PASSWORD") == "dummy-operator-password", str(cenv))


def main(argv):
    if len(argv) == 3 and argv[1] == "dockerfile":
        lint_dockerfile(argv[2])
    elif len(argv) == 4 and argv[1] == "compose":
        lint_compose(argv[2], argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

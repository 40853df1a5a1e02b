#!/usr/bin/env bash
# make-acl.sh: render a Redis ACL file for lash with your own passwords.
#
#   LASH_WORKER_PASSWORD=... LASH_OPERATOR_PASSWORD=... deploy/make-acl.sh > users.local.acl
#   deploy/make-acl.sh --env-file .env --out deploy/users.local.acl
#
# The rules (which commands, keys and channels each user gets) live in one place,
# deploy/users.acl; this script copies that file and replaces only the
# `#<sha256>` password hash of the lash-worker and lash-operator users with the
# hashes of the passwords you give. Redis ACL files cannot hold comments, so the
# explanation lives here and in the README:
#
#   deploy/users.acl as committed carries the hashes of DEVELOPMENT DEFAULTS,
#       lash-worker    lash-worker-dev-password
#       lash-operator  lash-operator-dev-password
#   which anyone can read here. They exist so that the tests and a first
#   `docker compose up` on a laptop work; change them before Redis is reachable
#   by anyone else. Only hashes are written: the cleartext never reaches Redis's
#   configuration, and this script never puts a password on a command line.
#
#   The default user is off and has no password (no client can log in as it),
#   but may run every command on lash:* keys: Redis 7.0 replays the AOF as the
#   default user and silently drops each MULTI/EXEC (one script's writes) that
#   user may not run, including rewritten commands such as PEXPIREAT.
#
# Passwords come from the environment (LASH_WORKER_PASSWORD, LASH_OPERATOR_PASSWORD)
# or from KEY=VALUE lines of --env-file (the compose .env); the file wins.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template="$here/users.acl"
out=""
envfile=""

usage() {
    echo "usage: $0 [--env-file FILE] [--template FILE] [--out FILE]" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    -e | --env-file) envfile=${2:-}; shift 2 || usage ;;
    -t | --template) template=${2:-}; shift 2 || usage ;;
    -o | --out) out=${2:-}; shift 2 || usage ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
done

# Reads KEY=VALUE lines without executing the file (it is data, not a script).
env_from_file() {
    local key=$1 line value
    [ -n "$envfile" ] || return 1
    line=$(grep -E "^[[:space:]]*${key}=" "$envfile" | tail -n 1) || return 1
    value=${line#*=}
    value=${value%$'\r'}
    # Strip one pair of matching surrounding quotes, as compose does.
    if [[ $value == \"*\" || $value == \'*\' ]]; then
        value=${value:1:${#value}-2}
    fi
    printf '%s' "$value"
}

password_for() {
    local var=$1 pw
    if ! pw=$(env_from_file "$var"); then
        pw=${!var:-}
    fi
    if [ -z "$pw" ]; then
        echo "make-acl.sh: $var is not set (environment or --env-file)" >&2
        exit 1
    fi
    if [ "${#pw}" -lt 12 ]; then
        echo "make-acl.sh: $var is shorter than 12 characters" >&2
        exit 1
    fi
    printf '%s' "$pw" | sha256sum | cut -d' ' -f1
}

[ -z "$envfile" ] || [ -r "$envfile" ] || { echo "make-acl.sh: cannot read $envfile" >&2; exit 1; }
[ -r "$template" ] || { echo "make-acl.sh: cannot read $template" >&2; exit 1; }

worker_hash=$(password_for LASH_WORKER_PASSWORD)
operator_hash=$(password_for LASH_OPERATOR_PASSWORD)

rendered=$(sed -E \
    -e "/^user lash-worker /s/ #[0-9a-f]{64}( |\$)/ #${worker_hash}\\1/" \
    -e "/^user lash-operator /s/ #[0-9a-f]{64}( |\$)/ #${operator_hash}\\1/" \
    "$template")

# Each of the two users must carry exactly its new hash, or the template changed
# shape and we would silently ship the old password.
for pair in "lash-worker:$worker_hash" "lash-operator:$operator_hash"; do
    user=${pair%%:*}
    hash=${pair#*:}
    if [ "$(grep -cE "^user $user .* #$hash( |\$)" <<<"$rendered")" != 1 ]; then
        echo "make-acl.sh: $template has no single 'user $user ... #<sha256>' line" >&2
        exit 1
    fi
done

if [ -n "$out" ]; then
    tmp="$out.tmp.$$"
    printf '%s\n' "$rendered" >"$tmp"
    chmod 0644 "$tmp" # redis-server reads it as its own user; it holds hashes only
    mv -f "$tmp" "$out"
else
    printf '%s\n' "$rendered"
fi

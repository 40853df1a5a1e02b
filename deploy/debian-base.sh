#!/usr/bin/env bash
# debian-base.sh: make debian:12-slim locally, for hosts that reach a Debian
# mirror but no container registry.
#
#   deploy/debian-base.sh [--mirror URL] [--force]        (as root; podman)
#
# deploy/Dockerfile starts FROM debian:12-slim. Where no registry can be
# reached, `podman build` cannot pull it; this script builds the same thing
# from Debian packages instead:
#   debootstrap --variant=minbase bookworm into a temp dir, from the mirror apt
#   already uses (read from /etc/apt/sources.list and sources.list.d; --mirror
#   overrides), trimmed the way the official slim image is (no docs, man pages
#   or locales, apt caches off), then imported with `podman import` as
#   localhost/debian:12-slim and tagged docker.io/library/debian:12-slim, so
#   that an unmodified `FROM debian:12-slim` resolves locally and nothing is
#   pulled.
# It does nothing when that image is already there (--force makes it again).
# podman honours CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so the image lands
# in whatever storage the caller chose. debootstrap takes about a minute.
set -euo pipefail

SUITE=bookworm
NAME=localhost/debian:12-slim
ALIAS=docker.io/library/debian:12-slim
mirror=""
force=0

usage() {
    echo "usage: $0 [--mirror URL] [--force]" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
    --mirror) mirror=${2:-}; shift 2 || usage ;;
    --force) force=1; shift ;;
    *) usage ;;
    esac
done
die() {
    echo "debian-base.sh: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (debootstrap needs it)"
for tool in debootstrap podman tar; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install debootstrap podman)"
done

if [ "$force" = 0 ] && podman image exists "$ALIAS" && podman image exists "$NAME"; then
    echo "debian-base.sh: $ALIAS is already there (--force to make it again)"
    exit 0
fi

# apt_uri SUITE: the first URI apt uses for a `deb` source of SUITE, from
# one-line (sources.list) or deb822 (*.sources) files.
apt_uri() {
    local suite=$1 f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        awk -v s="$suite" '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v s="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && uri != "") print uri
                types = suites = uri = ""
            }
            /^[[:space:]]*$/ { flush(); next }
            /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
            /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
            /^URIs:/ { uri = $2 }
            END { flush() }' "$f"
    done
}
if [ -z "$mirror" ]; then
    mirror=$(apt_uri "$SUITE" | head -n 1)
    [ -n "$mirror" ] || die "no 'deb ... $SUITE' source in /etc/apt/sources.list*; give --mirror URL"
fi
security=$(apt_uri "$SUITE-security" | head -n 1)

work=$(mktemp -d "${TMPDIR:-/var/tmp}/lash-debian-base.XXXXXX")
rootfs=$work/rootfs
cleanup() {
    # debootstrap mounts /proc and /sys inside the target; a failed run can
    # leave them mounted, and rm -rf must not walk into them.
    local m
    awk -v r="$rootfs" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "debian-base.sh: debootstrap --variant=minbase $SUITE from $mirror"
t0=$SECONDS
if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
fi

# Trim as the official slim image does, and keep later `apt-get install`s in
# derived images as small: no docs (copyright files stay), man pages, info or
# locales; no apt package caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/slim" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::Install-Recommends "false";
EOF
find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
{
    echo "deb $mirror $SUITE main"
    echo "deb $mirror $SUITE-updates main"
    [ -z "$security" ] || echo "deb $security $SUITE-security main"
} >"$rootfs/etc/apt/sources.list"
# A container gets its own; these would be the build host's.
: >"$rootfs/etc/hostname"
rm -f "$rootfs/etc/resolv.conf"

tar -C "$rootfs" --numeric-owner -c . |
    podman import --quiet --change 'CMD ["bash"]' - "$NAME" >/dev/null
podman tag "$NAME" "$ALIAS"
echo "debian-base.sh: $NAME and $ALIAS ($(podman image inspect --format '{{.Size}}' "$NAME") bytes) in $((SECONDS - t0)) s"

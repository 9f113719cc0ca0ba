#!/usr/bin/env bash
# Build the example's two images offline, both FROM scratch:
#   lb   HAProxy from the host's Debian package (apt-get install haproxy): the binary, every
#        library `ldd` lists and the loader, at the same paths;
#   web  the app, on a static busybox (apt-get install busybox-static), one image per version.
#
#   ./build-images.sh            build lb and web v1 and v2
#   ./build-images.sh v3 v4      build lb and these web versions
#
# Image names come from compose.yaml (`docker compose config`), so a renamed copy builds its
# own. HAPROXY and BUSYBOX override /usr/sbin/haproxy and /bin/busybox.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
BUSYBOX=${BUSYBOX:-/bin/busybox}

die() { printf 'build-images: %s\n' "$*" >&2; exit 2; }

# image SERVICE [VERSION]: the image compose.yaml names for SERVICE.
image() {
    VERSION=${2:-v1} docker compose config --format json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["services"][sys.argv[1]]["image"])' "$1"
}

build_lb() {
    [[ -x $HAPROXY ]] || die "$HAPROXY not found; install Debian's haproxy (or set HAPROXY)"
    local rootfs=lb/rootfs file
    rm -rf "$rootfs"
    # ldd prints "libx.so => /path/libx.so (0x...)" and the loader as "/lib64/ld-... (0x...)".
    for file in "$HAPROXY" $(ldd "$HAPROXY" | grep -o '/[^ ]* (0x' | cut -d' ' -f1); do
        mkdir -p "$rootfs$(dirname "$file")"
        cp -L "$file" "$rootfs$file" # the file itself, not the symlink
    done
    mkdir -p "$rootfs/usr/local/etc/haproxy"
    local ref
    ref=$(image lb)
    cat >lb/Dockerfile.generated <<DOCKERFILE
FROM scratch
COPY rootfs/ /
EXPOSE 8080
ENTRYPOINT ["$HAPROXY", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
DOCKERFILE
    echo "build-images: $ref ($("$HAPROXY" -v | head -n 1))"
    docker build --quiet --file lb/Dockerfile.generated --tag "$ref" lb >/dev/null
    rm -f lb/Dockerfile.generated
}

build_web() {
    [[ -x $BUSYBOX ]] || die "$BUSYBOX not found; install Debian's busybox-static (or set BUSYBOX)"
    if command -v file >/dev/null && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
        die "$BUSYBOX is not statically linked; install busybox-static"
    fi
    cmp -s "$BUSYBOX" app/busybox 2>/dev/null || cp "$BUSYBOX" app/busybox
    local version ref
    for version in "$@"; do
        ref=$(image web "$version")
        echo "build-images: $ref"
        # Its RUN step needs no network (offline by construction).
        docker build --quiet --network none --build-arg "VERSION=$version" --tag "$ref" app >/dev/null
    done
}

if [[ $# -eq 0 ]]; then
    set -- v1 v2
fi
build_lb
build_web "$@"

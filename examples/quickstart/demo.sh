#!/usr/bin/env bash
# compose-rollback quickstart: deploy v1, ship a broken v2 and watch it roll back by itself,
# deploy v3, then revert. Works offline: the image is built FROM scratch with a static busybox.
#
#   ./demo.sh            run the walk-through
#   ./demo.sh --pause    stop before each step until you press Enter
#   ./demo.sh --down     remove what the demo created (containers, images, .rollback/)
#
# Uses `docker compose rollback` when the plugin is installed, else `python3 -m
# compose_rollback` from this checkout; ROLLBACK_CMD overrides both (e.g. ROLLBACK_CMD="docker
# rollback"). QUICKSTART_PORT changes the published port (default 8088).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PORT=${QUICKSTART_PORT:-8088}
URL="http://127.0.0.1:$PORT/"
PAUSE=false
bold="" plain=""
if [[ -t 1 ]]; then
    bold=$(tput bold 2>/dev/null || true)
    plain=$(tput sgr0 2>/dev/null || true)
fi

say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }

# show ARGS...: print a command line the way a user would type it.
show() {
    local line="" arg
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            line+="$arg "
        else
            line+="\"$arg\" "
        fi
    done
    printf '%s$ %s%s\n' "$bold" "${line% }" "$plain"
}

pause() {
    if $PAUSE && [[ -t 0 ]]; then
        read -r -p "(press Enter to continue) " _
    fi
}

# The project name compose uses, taken from compose.yaml so a renamed copy cleans up itself.
project_name() {
    docker compose config --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])'
}

# The web image's repository (compose.yaml's `image:` without the tag).
image_repo() {
    sed -n 's/^ *image: *\([^:$]*\):.*/\1/p' compose.yaml | head -n 1
}

down() {
    local name repo
    name=$(project_name)
    repo=$(image_repo)
    say "Removing the demo: containers, network, images and recorded revisions"
    show docker compose down --remove-orphans
    docker compose down --remove-orphans
    local tags
    tags=$(docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" |
        grep -E ":(v[0-9]+|rollback-$name-[0-9a-f]+)$" || true)
    if [[ -n $tags ]]; then
        # shellcheck disable=SC2086 # one reference per word
        show docker image rm $tags
        # shellcheck disable=SC2086
        docker image rm $tags >/dev/null
    fi
    show rm -rf .rollback
    rm -rf .rollback
}

# The command that runs compose-rollback, as an array.
resolve_rollback() {
    if [[ -n ${ROLLBACK_CMD:-} ]]; then
        read -r -a ROLLBACK <<<"$ROLLBACK_CMD"
    elif docker compose rollback version >/dev/null 2>&1; then
        ROLLBACK=(docker compose rollback)
    else
        local root
        root=$(cd ../.. && pwd)
        if ! PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" python3 -c 'import compose_rollback' 2>/dev/null; then
            echo "demo: compose-rollback is not installed (see the top-level README)," >&2
            echo "      and python3 cannot import it from $root either; set ROLLBACK_CMD." >&2
            exit 2
        fi
        export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
        ROLLBACK=(python3 -m compose_rollback)
    fi
}

# The image is built FROM scratch, so it needs a busybox that runs without a libc.
prepare() {
    local busybox=${BUSYBOX:-/bin/busybox}
    if [[ ! -x $busybox ]]; then
        echo "demo: $busybox not found; install Debian's busybox-static (or set BUSYBOX)" >&2
        exit 2
    fi
    if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
        echo "demo: $busybox is not statically linked; install busybox-static" >&2
        exit 2
    fi
    cmp -s "$busybox" app/busybox 2>/dev/null || cp "$busybox" app/busybox
}

# rollback [VAR=value...] ARGS...: show and run a compose-rollback command; return its code.
rollback() {
    local envs=()
    while [[ $# -gt 0 && $1 == *=* && $1 != -* ]]; do
        envs+=("$1")
        shift
    done
    show "${envs[@]}" "${ROLLBACK[@]}" "$@"
    env "${envs[@]}" "${ROLLBACK[@]}" "$@"
}

fetch() {
    show curl -s "$URL"
    if command -v curl >/dev/null; then
        curl -fsS --max-time 5 "$URL" || true
    else
        wget -q -T 5 -O - "$URL" || busybox wget -q -O - "$URL" || true
    fi
}

main() {
    for arg in "$@"; do
        case $arg in
            --down) down; exit 0 ;;
            --pause) PAUSE=true ;;
            -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) echo "demo: unknown option $arg (try --help)" >&2; exit 2 ;;
        esac
    done
    prepare
    resolve_rollback
    echo "compose-rollback command: ${ROLLBACK[*]}"

    say "1. Deploy v1. Every image is pinned; revision 1 is recorded once v1 stays healthy 3s."
    pause
    rollback VERSION=v1 up --build -m "v1"
    fetch

    say "2. Ship v2, which has a bug: its health check fails."
    echo "   compose-rollback sees the failing health gate, puts v1 back and exits 1."
    pause
    local rc=0
    rollback VERSION=v2 up --build -m "v2 (broken)" || rc=$?
    echo "exit code: $rc (1 = the deploy failed and the last good revision was restored)"
    fetch

    say "3. What happened, as recorded: v2 failed, v1 is current."
    pause
    rollback history
    rollback status
    local current
    current=".rollback/$(project_name)/current.yaml"
    if [[ -f $current ]]; then
        echo
        echo "The current revision is a plain compose override; v1's image is pinned by id:"
        show cat "$current"
        cat "$current"
    fi

    say "4. Ship a fixed v3."
    pause
    rollback VERSION=v3 up --build -m "v3"
    fetch

    say "5. Changed our mind: revert to the previous good revision (v1)."
    pause
    rollback revert
    fetch

    say "6. What differs between two revisions (images and configuration)."
    pause
    rollback diff || true

    say "Done."
    echo "Revisions are plain compose files in .rollback/$(project_name)/; plain compose can"
    echo "reproduce the current one:  docker compose -f compose.yaml -f .rollback/$(project_name)/current.yaml up -d"
    echo "Clean up with: $0 --down"
}

main "$@"

#!/usr/bin/env bash
# Install compose-rollback for the current user, so that `docker compose rollback ...` and
# `docker rollback ...` work.
#
#   ./install.sh                 install (or update) from this directory
#   ./install.sh --with-docker   first provision Docker engine and Compose (Debian, root/sudo)
#   ./install.sh --uninstall     remove it and put the docker config back as it was
#
# What it does:
#   - a virtualenv $CR_HOME/venv with this package installed into it (not editable);
#   - $CR_HOME/cli-plugins/docker-compose: a small sh shim that hands `compose ... rollback`
#     to compose-rollback and execs the real Compose plugin (found now) for everything else;
#   - $CR_HOME/cli-plugins/docker-rollback: the same tool as a top-level docker plugin;
#   - that plugin dir prepended to cliPluginsExtraDirs in the docker config.json (every other
#     key kept); what is needed to undo it is kept in $CR_HOME/install-state.json.
# CR_HOME is $COMPOSE_ROLLBACK_HOME, default ~/.local/share/compose-rollback.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CR_HOME=${COMPOSE_ROLLBACK_HOME:-$HOME/.local/share/compose-rollback}
DOCKER_CONFIG_DIR=${DOCKER_CONFIG:-$HOME/.docker}

say() { printf 'install: %s\n' "$*"; }
die() {
    local code=$1
    shift
    printf 'install: error: %s\n' "$*" >&2
    exit "$code"
}

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

mode=install
with_docker=false
for arg in "$@"; do
    case $arg in
        --uninstall) mode=uninstall ;;
        --with-docker) with_docker=true ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die 2 "unknown argument: $arg" ;;
    esac
done

command -v python3 >/dev/null 2>&1 || die 5 "python3 is required"
case $CR_HOME in /*) ;; *) CR_HOME=$PWD/$CR_HOME ;; esac
case $DOCKER_CONFIG_DIR in /*) ;; *) DOCKER_CONFIG_DIR=$PWD/$DOCKER_CONFIG_DIR ;; esac
PLUGIN_DIR=$CR_HOME/cli-plugins
STATE=$CR_HOME/install-state.json
CONFIG_JSON=$DOCKER_CONFIG_DIR/config.json
VENV=$CR_HOME/venv
ENTRY=$VENV/bin/compose-rollback

# JSON and file work in Python: docker's config.json must be edited, not pattern-replaced.
HELPER=$(
    cat <<'PY'
import base64
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

SHIM_MARKER = b"compose-rollback-shim"
KEY = "cliPluginsExtraDirs"
SYSTEM_PLUGIN_DIRS = [
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
]


def fail(message, code=1):
    print(f"install: error: {message}", file=sys.stderr)
    sys.exit(code)


def read_bytes(path):
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def parse_config(raw, path):
    if raw is None or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        fail(f"{path} is not valid JSON ({e}); fix it and run again", 2)
    if not isinstance(data, dict):
        fail(f"{path} is not a JSON object", 2)
    return data


def write_atomic(path, data, mode):
    # Write through a symlinked config.json instead of replacing the link.
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def dump_config(data):
    # Docker writes config.json tab-indented; keep that look.
    return (json.dumps(data, indent="\t", ensure_ascii=False) + "\n").encode()


def b64(raw):
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def is_shim(path):
    with open(path, "rb") as f:
        head = f.read(1024)
    return head.startswith(b"#!") and SHIM_MARKER in head


def find_real_compose(config_json, config_dir, own_dir):
    """Docker's plugin search order, skipping our own dir and any compose-rollback shim."""
    data = parse_config(read_bytes(config_json), config_json)
    extra = data.get(KEY) or []
    dirs = [d for d in extra if isinstance(d, str)]
    dirs += [os.path.join(config_dir, "cli-plugins"), *SYSTEM_PLUGIN_DIRS]
    own = os.path.realpath(own_dir)
    for d in dirs:
        if not d or os.path.realpath(d) == own:
            continue
        candidate = os.path.join(d, "docker-compose")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and not is_shim(candidate):
            print(os.path.abspath(candidate))
            return
    fail(
        "no Docker Compose v2 plugin found (looked in: " + ", ".join(dirs) + "); "
        "run ./install.sh --with-docker to install Docker and Compose",
        5,
    )


def sh_double_quoted(value):
    return re.sub(r'([\\"$`])', r"\\\1", value)


def render(template, dest, *pairs):
    text = Path(template).read_text()
    for pair in pairs:
        name, _, value = pair.partition("=")
        text = text.replace(f"@{name}@", sh_double_quoted(value))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        fail(f"{template}: placeholders not filled: {sorted(set(left))}")
    write_atomic(dest, text.encode(), 0o755)


def add_entry(config_json, state_path, plugin_dir):
    raw = read_bytes(config_json)
    data = parse_config(raw, config_json)
    state = json.loads(Path(state_path).read_text()) if os.path.exists(state_path) else None
    if state is not None and state["config"] != config_json:
        fail(
            f"already installed for the docker config {state['config']}; "
            "run install.sh --uninstall with that DOCKER_CONFIG first",
            2,
        )
    if state is None:
        # First install: remember the config exactly as it was, to undo it later.
        mode = os.stat(config_json).st_mode & 0o7777 if raw is not None else 0o600
        state = {
            "config": config_json,
            "existed": raw is not None,
            "original": b64(raw),
            "mode": mode,
            "key_existed": KEY in data,
            "plugin_dir": plugin_dir,
        }
    dirs = data.get(KEY)
    if dirs is None:
        dirs = []
    if not isinstance(dirs, list):
        fail(f"{config_json}: {KEY} is not a list", 2)
    data[KEY] = [plugin_dir] + [d for d in dirs if d != plugin_dir]
    new = dump_config(data)
    if new != raw:
        write_atomic(config_json, new, state["mode"])
    state["written"] = b64(new)
    write_atomic(state_path, (json.dumps(state, indent=2) + "\n").encode(), 0o600)


def remove_entry(config_json, state_path, plugin_dir):
    state = json.loads(Path(state_path).read_text()) if os.path.exists(state_path) else None
    if state is not None:
        config_json = state["config"]
        plugin_dir = state["plugin_dir"]
    raw = read_bytes(config_json)
    if state is not None and raw is not None and b64(raw) == state.get("written"):
        # Untouched since we wrote it: put back exactly what was there.
        if state["existed"]:
            write_atomic(config_json, base64.b64decode(state["original"]), state["mode"])
            print(f"restored {config_json}")
        else:
            os.unlink(config_json)
            print(f"removed {config_json} (it did not exist before the install)")
        return
    data = parse_config(raw, config_json)
    dirs = data.get(KEY)
    if not isinstance(dirs, list) or plugin_dir not in dirs:
        return
    # Changed since the install: take out only our entry.
    dirs = [d for d in dirs if d != plugin_dir]
    key_existed = state["key_existed"] if state is not None else False
    if dirs or key_existed:
        data[KEY] = dirs
    else:
        del data[KEY]
    mode = os.stat(config_json).st_mode & 0o7777
    write_atomic(config_json, dump_config(data), mode)
    print(f"removed {plugin_dir} from {KEY} in {config_json}")


def copy_source(src, dest):
    # Build from a clean copy: an in-tree build would leave build/ and *.egg-info in the
    # checkout, and a stale build/ can put deleted files into the wheel.
    shutil.copytree(
        src,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
            ".mypy_cache", ".pytest_cache", ".ruff_cache", ".rollback", ".hypothesis",
        ),
    )


COMMANDS = {
    "find-real-compose": find_real_compose,
    "render": render,
    "add-entry": add_entry,
    "remove-entry": remove_entry,
    "copy-source": copy_source,
}

COMMANDS[sys.argv[1]](*sys.argv[2:])
PY
)
helper() { python3 -c "$HELPER" "$@"; }
# Exit 0 when python3's pip can install into another interpreter's environment (--python).
PIP_CAN_TARGET='
import sys
from importlib.metadata import version
sys.exit(tuple(int(p) for p in version("pip").split(".")[:2]) < (22, 3))
'

uninstall() {
    helper remove-entry "$CONFIG_JSON" "$STATE" "$PLUGIN_DIR"
    rm -rf "$CR_HOME"
    say "removed $CR_HOME; docker's own Compose is back in charge of 'docker compose'"
}

install() {
    if $with_docker; then
        say "provisioning Docker engine and Compose (scripts/provision.sh)"
        bash "$SRC/scripts/provision.sh"
    fi
    command -v docker >/dev/null 2>&1 \
        || die 5 "no docker CLI on PATH; run ./install.sh --with-docker to install Docker and Compose"

    local real_compose version
    real_compose=$(helper find-real-compose "$CONFIG_JSON" "$DOCKER_CONFIG_DIR" "$PLUGIN_DIR")
    version=$(sed -n 's/^__version__ = "\([0-9A-Za-z.+!-]*\)"$/\1/p' "$SRC/compose_rollback/__init__.py")
    [[ -n $version ]] || die 1 "no __version__ in $SRC/compose_rollback/__init__.py"
    say "real Compose plugin: $real_compose"

    # python3's own pip installs into the venv where it can (pip 22.3 and newer: --python): a
    # venv of its own pip (ensurepip copies and byte-compiles pip into it) is ~7 s of CPU, a
    # third of an install. Otherwise, and for a venv that has its pip already, the venv's pip.
    local outer_pip=false
    python3 -c "$PIP_CAN_TARGET" 2>/dev/null && outer_pip=true
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        say "creating virtualenv $VENV"
        rm -rf "$VENV"
        local no_pip=()
        $outer_pip && no_pip=(--without-pip)
        python3 -m venv ${no_pip[@]+"${no_pip[@]}"} "$VENV" \
            || die 1 "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    local pip=("$VENV/bin/python" -m pip)
    if ! "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
        if $outer_pip; then
            pip=(python3 -m pip --python "$VENV/bin/python")
        else
            "$VENV/bin/python" -m ensurepip --default-pip >/dev/null \
                || die 1 "$VENV has no pip and python3's pip cannot install into it"
        fi
    fi
    local build
    build=$(mktemp -d)
    # shellcheck disable=SC2064  # expand $build now
    trap "rm -rf '$build'" EXIT
    helper copy-source "$SRC" "$build/src"
    say "installing compose-rollback $version into $VENV"
    "${pip[@]}" install --quiet --disable-pip-version-check "$build/src"
    [[ -x $ENTRY ]] || die 1 "pip did not create $ENTRY"

    mkdir -p "$PLUGIN_DIR"
    helper render "$SRC/compose_rollback/shim/docker-compose" "$PLUGIN_DIR/docker-compose" \
        "REAL_COMPOSE=$real_compose" "ENTRY=$ENTRY"
    helper render "$SRC/compose_rollback/shim/docker-rollback" "$PLUGIN_DIR/docker-rollback" \
        "ENTRY=$ENTRY" "VERSION=$version"
    helper add-entry "$CONFIG_JSON" "$STATE" "$PLUGIN_DIR"

    cat <<EOF
install: compose-rollback $version is installed for $(id -un).
  plugins:        $PLUGIN_DIR (first in cliPluginsExtraDirs of $CONFIG_JSON)
  real Compose:   $real_compose (every other 'docker compose' command goes there unchanged)

Use it:
  docker compose rollback --help
  docker compose rollback up        # deploy, pinned and gated; reverts by itself on failure
  docker compose rollback revert    # back to the last good revision
  (also as 'docker rollback ...')

Remove it: $SRC/install.sh --uninstall
EOF
}

"$mode"

#!/usr/bin/env bash
# The real steps of the example pipelines (Jenkinsfile, github-actions.yml, gitlab-ci.yml):
# each stage of each of them runs one of these, so the three stay the same pipeline.
#
#   deploy.sh build    build the image, tagged with the commit (IMAGE_TAG)
#   deploy.sh test     test the built image (a throw-away container, nothing deployed)
#   deploy.sh push     push it to $REGISTRY
#   deploy.sh deploy   docker compose rollback up --json -m "$GIT_COMMIT" --commit
#                      > rollback.json; exits with the tool's exit code
#   deploy.sh all      the four in order (what a pipeline run does)
#
# Environment:
#   REGISTRY      the registry to push to, host[:port] (required; e.g. 127.0.0.1:5000)
#   GIT_COMMIT    the commit being built (default: git rev-parse HEAD; Jenkins sets it,
#                 the other files map theirs onto it)
#   APP_REPO      the image repository in the registry (default ci-example-web)
#   ROLLBACK_CMD  how to run compose-rollback (default: docker compose rollback)
#   RESULT        where the deploy's JSON result goes (default rollback.json)
#   WATCH         up --watch DURATION after the deploy (default 0: no watch)
#   BUSYBOX       the static busybox the example's image is built from (default /bin/busybox)
#
# Exit codes of `deploy` are compose-rollback's, so the pipeline reads them directly:
#   0 deployed and healthy · 1 failed, the last good revision restored (mark the build
#   failed) · 2 bad input, nothing changed · 3 failed and not restored (a person must look)
#   · 4 another deploy holds the lock (retry later) · 5 engine or registry unreachable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

: "${REGISTRY:?set REGISTRY to the registry to push to (host:port)}"
GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse HEAD)}
IMAGE_TAG=${GIT_COMMIT:0:12}
export REGISTRY GIT_COMMIT IMAGE_TAG
read -r -a ROLLBACK <<<"${ROLLBACK_CMD:-docker compose rollback}"
RESULT=${RESULT:-rollback.json}

log() { printf 'deploy.sh: %s\n' "$*" >&2; }

build() {
    # The example's own need (an offline base): a real app's Dockerfile has its FROM.
    [[ -f app/busybox ]] || cp "${BUSYBOX:-/bin/busybox}" app/busybox
    log "building $IMAGE_TAG"
    docker compose build --quiet web
}

test_image() {
    # The app's own test: the page it renders names the release. (A health check bug is
    # what this test does not catch: the deploy's gate does, and restores the last good one.)
    local page
    page=$(docker compose run --rm --no-deps -T --entrypoint /bin/sh web -c \
        'printf "hello from %s\n" "$VERSION"')
    [[ $page == "hello from $IMAGE_TAG" ]] || { log "test failed: got '$page'"; return 1; }
    log "test passed"
}

push() {
    log "pushing to $REGISTRY"
    docker compose push --quiet web
}

deploy() {
    local code=0
    # --commit: the decided revision (deployed or failed) is committed to this repository;
    # the pipeline pushes that commit if it wants the record shared.
    # WATCH (e.g. 10m): keep every gate running that long after the deploy and revert on a
    # failure (`up --watch`); 0, the default, does not watch.
    "${ROLLBACK[@]}" up --json -m "$GIT_COMMIT" --commit --watch "${WATCH:-0}" >"$RESULT" \
        || code=$?
    case $code in
        0) log "deployed" ;;
        1) log "the release failed its gates; the last good revision is back (see $RESULT)" ;;
        3) log "the release failed and nothing good could be restored: a person must look" ;;
        4) log "another deploy holds the lock: run this stage again later" ;;
        *) log "compose-rollback exited with $code (see $RESULT and the log above)" ;;
    esac
    return "$code"
}

case ${1:-all} in
    build) build ;;
    test) test_image ;;
    push) push ;;
    deploy) deploy ;;
    all) build && test_image && push && deploy ;;
    *) log "unknown step '$1' (build, test, push, deploy or all)"; exit 2 ;;
esac

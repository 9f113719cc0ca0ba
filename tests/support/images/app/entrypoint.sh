#!/bin/sh
# Test application entrypoint. $MODE (baked per variant, overridable at runtime) selects:
#   healthy | nohealthcheck   serve; /health is 200
#   unhealthy                 serve; /health is 500
#   flaky                     serve; /health is 200, then 500 once FAIL_AFTER seconds passed
#   slow                      serve; /health is 503 until SLOW_START seconds passed, then 200
#   crash                     exit 3 after CRASH_AFTER seconds
#   exit0 | exit1             one-shot job: exit 0 / 1 after JOB_SECONDS seconds
# Whatever the mode, `touch /tmp/fail-health` (docker exec) makes /health fail from then on.
# /cgi-bin/ready is /health and READY_CODE (default 200): READY_CODE=500 is a release Docker
# calls healthy that an HTTP gate on /cgi-bin/ready refuses.
# Every answer says which release served it: `/` is $RELEASE (default $VERSION), the CGI
# answers carry `X-Release: $RELEASE`.
# $ON_SIGTERM: `exit` (default) traps SIGTERM and exits at once; `ignore` sets no trap, so the
# shell, PID 1, never sees the signal and `docker stop` waits the whole stop grace period (an
# app with a long or broken graceful shutdown).
set -u
RELEASE=${RELEASE:-$VERSION}
export RELEASE
if [ "${ON_SIGTERM:-exit}" != ignore ]; then
    trap 'exit 143' TERM INT
fi

# Start time on the kernel's monotonic uptime clock, in seconds with two decimals; the CGI
# scripts compare against it (see lib.sh).
read -r started _ < /proc/uptime
echo "$started" > /tmp/started
printf '%s' "$RELEASE" > /app/www/index.html
echo "crt-app: mode=$MODE version=$VERSION release=$RELEASE on_sigterm=${ON_SIGTERM:-exit}" >&2

case "$MODE" in
    crash)
        sleep "$CRASH_AFTER"
        echo "crt-app: crashing with exit code 3" >&2
        exit 3
        ;;
    exit0 | exit1)
        sleep "$JOB_SECONDS"
        echo "crt-app: job finished ($MODE)" >&2
        exit "${MODE#exit}"
        ;;
    healthy | nohealthcheck | unhealthy | flaky | slow) ;;
    *)
        echo "crt-app: unknown MODE '$MODE'" >&2
        exit 2
        ;;
esac

httpd -f -p "$PORT" -h /app/www &
server=$!
# sh is PID 1 here; without a trap SIGTERM is ignored and `docker stop` waits for its kill
# timeout: what ON_SIGTERM=ignore is for.
if [ "${ON_SIGTERM:-exit}" != ignore ]; then
    trap 'kill -TERM "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
fi
wait "$server"

# Shared by the CGI scripts (sourced). httpd passes the container environment through.

# after SECONDS: true once SECONDS (may be fractional) have passed since the entrypoint started.
after() {
    awk -v start="$(cat /tmp/started)" -v limit="$1" '{ exit !($1 - start >= limit) }' /proc/uptime
}

# elapsed: seconds since the entrypoint started, two decimals.
elapsed() {
    awk -v start="$(cat /tmp/started)" '{ printf "%.2f", $1 - start }' /proc/uptime
}

# respond CODE BODY: a complete CGI response with a text body.
respond() {
    case "$1" in
        200) reason="OK" ;;
        404) reason="Not Found" ;;
        500) reason="Internal Server Error" ;;
        503) reason="Service Unavailable" ;;
        *) reason="Status $1" ;;
    esac
    printf 'Status: %s %s\r\nContent-Type: text/plain\r\nX-Release: %s\r\n\r\n%s\n' \
        "$1" "$reason" "${RELEASE:-$VERSION}" "$2"
}

# health_code: the HTTP status /health answers right now.
health_code() {
    if [ -e /tmp/fail-health ]; then
        echo 500
        return
    fi
    case "$MODE" in
        healthy | nohealthcheck) echo 200 ;;
        flaky) if after "$FAIL_AFTER"; then echo 500; else echo 200; fi ;;
        slow) if after "$SLOW_START"; then echo 200; else echo 503; fi ;;
        *) echo 500 ;;
    esac
}

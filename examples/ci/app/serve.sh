#!/bin/sh
# Serve "hello from <version>" on :8080 until stopped.
printf 'hello from %s\n' "$VERSION" > /www/index.html
httpd -f -p 8080 -h /www &
server=$!
# PID 1 ignores SIGTERM unless it traps it: without this, every stop would wait 10 s.
trap 'kill "$server"; wait "$server"; exit 0' TERM INT
wait "$server"

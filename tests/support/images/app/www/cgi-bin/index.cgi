#!/bin/sh
# busybox httpd runs this for a directory without index.html. /health is such a directory
# (httpd redirects /health to /health/), which gives the image a plain /health endpoint.
case "$REQUEST_URI" in
    /health/*) exec /app/www/cgi-bin/health ;;
esac
. /app/lib.sh
respond 404 "not found: $REQUEST_URI"

#!/bin/sh
# Graceful reload that keeps runtime states (drain, maint, weights): save
# them to the server-state file that the configuration loads, then ask the
# master process (PID 1) to reload.
set -eu
socket=${HAPROXY_ADMIN_SOCKET:-/run/haproxy-admin/admin.sock}
state=${HAPROXY_STATE_FILE:-/var/lib/haproxy/state/server-state}
echo "show servers state" | socat - "UNIX-CONNECT:$socket" > "$state.tmp"
mv "$state.tmp" "$state"
kill -USR2 1

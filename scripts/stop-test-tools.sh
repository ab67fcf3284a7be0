#!/usr/bin/env bash
# Stop what scripts/test-tools.sh started (the Docker engine, if it started one), so a CI
# run leaves nothing running. An engine that was already running is left alone.
set -uo pipefail
pidfile="${TMPDIR:-/tmp}/algostream-dockerd.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
rm -f "$pidfile"
kill "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 1; done
kill -9 "$pid" 2>/dev/null || true

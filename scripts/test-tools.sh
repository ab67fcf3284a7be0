#!/usr/bin/env bash
# Install the tools the test suite needs besides Python packages and the Kafka broker
# (those come from `make venv` and `algostream broker start`), and start the Docker engine:
#
#   prometheus, promtool   Debian package `prometheus` (rules, dashboards, metrics tests)
#   docker, dockerd        Debian package `docker.io` (the compose test runs the stack)
#   docker compose         the compose plugin, built from the Go module proxy (Debian has none)
#   debootstrap            Debian package `debootstrap` (local base images, no registry here)
#   chromium               Debian package `chromium` (the backtest report opened in a browser)
#
# `make test` runs it. Idempotent: what is there is kept. Where something cannot be
# installed (not root, not Debian) it stops with the package and the command to run.
set -euo pipefail
COMPOSE_VERSION=v2.40.3
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

say() { printf '[test-tools] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null && sudo -n true 2>/dev/null && SUDO="sudo -n"
fi

apt_install() { # apt_install PACKAGE... (only the missing ones are passed in)
  [ $# -eq 0 ] && return
  if ! command -v apt-get >/dev/null; then
    die "missing: $* (this is not a Debian system: install the equivalent packages of: $*)"
  fi
  if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then
    die "missing: $* (run as root: apt-get update && apt-get install -y --no-install-recommends $*)"
  fi
  say "apt-get install $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || missing+=(chromium)
apt_install "${missing[@]}"
# the Debian package starts a system Prometheus on :9090 where it can; tests run their own
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  $SUDO pkill -x prometheus 2>/dev/null || true
fi

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || [ -n "$SUDO" ] || die "no Docker engine answers (start it as root: dockerd &)"
  say "starting dockerd (log: /var/log/algostream-dockerd.log)"
  # its pid is kept so CI can stop the engine it started (scripts/stop-test-tools.sh)
  ( $SUDO nohup dockerd >/var/log/algostream-dockerd.log 2>&1 </dev/null &
    echo $! > "${TMPDIR:-/tmp}/algostream-dockerd.pid" )
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not answer in 60 s: see /var/log/algostream-dockerd.log"
fi

if ! docker compose version >/dev/null 2>&1; then
  command -v go >/dev/null || die "the docker compose plugin is missing and Go (1.23+) is not on PATH to build it"
  say "building the docker compose plugin $COMPOSE_VERSION from the Go module proxy"
  build=$(mktemp -d)
  (
    cd "$build" && go mod init tmp >/dev/null 2>&1
    dir=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
          | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
    cp -r "$dir" src && chmod -R u+w src && cd src
    $SUDO mkdir -p "$PLUGIN_DIR"
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
      -o "$build/docker-compose" ./cmd
    $SUDO install -m 0755 "$build/docker-compose" "$PLUGIN_DIR/docker-compose"
  ) || die "could not build the docker compose plugin (see above)"
  rm -rf "$build"
fi
say "ready: $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3); $(docker compose version); engine $(docker version -f '{{.Server.Version}}')"

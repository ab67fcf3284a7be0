#!/usr/bin/env bash
# Everything `docker compose` needs, built here:
#
#   docker/wheels/      every Python dependency of the app image as wheels, built on this
#                       host (`pip wheel`); the image installs them with `--no-index`, so
#                       building the app image needs no network (and is faster).
#   docker/images.env   PYTHON_IMAGE, KAFKA_IMAGE, PROMETHEUS_IMAGE for compose: the
#                       upstream images when a registry answers, else local equivalents
#                       built below (LOCAL_IMAGES=1 forces them):
#     algostream/python:3.11-bookworm      Debian bookworm (debootstrap) + python3 + venv
#     algostream/kafka:3.9.1               Apache Kafka 3.9.1 from the same Maven-fetched
#                                          jars as `algostream broker` (.kafka/libs), on
#                                          Debian's OpenJDK 17 (docker/kafka/)
#     algostream/prometheus:bookworm       Debian's prometheus package
#
# Needs root (debootstrap, docker), a running Docker engine, and the Kafka jars
# (`algostream broker start` fetches them). Idempotent: images that exist are kept
# (REBUILD=1 rebuilds them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-.venv/bin/python}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=${ALGOSTREAM_IMAGE_WORK:-/var/tmp/algostream-images}
LOCAL_PYTHON=algostream/python:3.11-$SUITE
LOCAL_KAFKA=algostream/kafka:3.9.1
LOCAL_PROMETHEUS=algostream/prometheus:$SUITE
UPSTREAM_PYTHON=python:3.11-slim
UPSTREAM_KAFKA=apache/kafka:3.9.1
UPSTREAM_PROMETHEUS=prom/prometheus:v2.55.1

say() { printf '[images] %s\n' "$*" >&2; }
have_image() { [ "${REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

build_wheels() {
  mkdir -p docker/wheels
  say "building wheels on the host into docker/wheels"
  # the project's dependencies (with the ml extra) and the build backend for its own
  # editable install; the project's own wheel is not used (the image installs /app)
  "$PY" -m pip wheel -q --wheel-dir docker/wheels ".[ml]" "setuptools>=68" "wheel" "pip" \
    "Cython>=3.0"
  rm -f docker/wheels/algostream-*.whl
  # the book stage's compiled path, built here (the image has no compiler: its editable
  # install warns that it cannot compile it and keeps this one, copied in with the source)
  say "building the compiled book path in place (setup.py build_ext --inplace)"
  "$PY" setup.py -q build_ext --inplace
}

# debootstrap NAME PACKAGES CHANGES... : a minimal Debian root with PACKAGES, imported
debian_image() {
  local tag=$1 packages=$2; shift 2
  local dir="$WORK/rootfs-${tag//[\/:]/-}"
  say "debootstrap $SUITE + $packages -> $tag"
  rm -rf "$dir"; mkdir -p "$WORK/cache"
  debootstrap --variant=minbase --cache-dir="$WORK/cache" --include="$packages" \
    "$SUITE" "$dir" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; return 1; }
  if [ -n "${ROOTFS_HOOK:-}" ]; then "$ROOTFS_HOOK" "$dir"; fi
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
         "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/var/log/*.log
  tar -C "$dir" -c . | docker import "$@" - "$tag" >/dev/null
  rm -rf "$dir"
}

prometheus_rootfs() { # the data directory the compose volume mounts, owned by prometheus
  mkdir -p "$1/prometheus"
  chroot "$1" chown prometheus:prometheus /prometheus
}

registry_answers() {
  [ "${LOCAL_IMAGES:-0}" = 1 ] && return 1
  have_image "$UPSTREAM_PYTHON" && return 0
  timeout 60 docker pull -q "$UPSTREAM_PYTHON" >/dev/null 2>&1
}

main() {
  command -v docker >/dev/null || { say "docker is not installed"; exit 1; }
  docker info >/dev/null 2>&1 || { say "no Docker engine answers (start dockerd)"; exit 1; }
  build_wheels
  if registry_answers; then
    say "a registry answers: compose uses the upstream images"
    printf 'PYTHON_IMAGE=%s\nKAFKA_IMAGE=%s\nPROMETHEUS_IMAGE=%s\n' \
      "$UPSTREAM_PYTHON" "$UPSTREAM_KAFKA" "$UPSTREAM_PROMETHEUS" > docker/images.env
    return
  fi
  say "no registry answers: building local images from Debian and Maven Central"
  command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  have_image "$LOCAL_PYTHON" || debian_image "$LOCAL_PYTHON" python3,python3-venv,ca-certificates \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]'
  have_image algostream/jre:17-$SUITE || debian_image algostream/jre:17-$SUITE \
    openjdk-17-jre-headless,ca-certificates --change 'ENV LANG=C.UTF-8'
  if ! have_image "$LOCAL_PROMETHEUS"; then
    ROOTFS_HOOK=prometheus_rootfs debian_image "$LOCAL_PROMETHEUS" prometheus,wget,ca-certificates \
      --change 'USER prometheus' --change 'WORKDIR /prometheus' --change 'EXPOSE 9090' \
      --change 'ENTRYPOINT ["/usr/bin/prometheus"]' \
      --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
  fi
  [ -d .kafka/libs ] || "$PY" -c 'from pathlib import Path; from algostream.kafka.local_broker import LocalBroker; LocalBroker(Path(".kafka")).fetch()'
  rm -rf docker/kafka/libs && cp -r .kafka/libs docker/kafka/libs
  say "docker build -> $LOCAL_KAFKA"
  docker build -q -t "$LOCAL_KAFKA" --build-arg BASE=algostream/jre:17-$SUITE docker/kafka >/dev/null
  rm -rf docker/kafka/libs
  printf 'PYTHON_IMAGE=%s\nKAFKA_IMAGE=%s\nPROMETHEUS_IMAGE=%s\n' \
    "$LOCAL_PYTHON" "$LOCAL_KAFKA" "$LOCAL_PROMETHEUS" > docker/images.env
  say "wrote docker/images.env"
}

main "$@"

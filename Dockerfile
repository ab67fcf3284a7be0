# algostream application image: every `algostream ...` command (sim, ingest, worker, topics).
#
#   docker/build-images.sh        # wheels into docker/wheels (+ local base images if no registry)
#   docker build -t algostream:local .      (docker compose builds it for you)
#
# Two stages: the build stage makes a virtualenv from the wheels built on the host
# (`pip install --no-index`: air-gapped and faster; with docker/wheels empty it falls back
# to the package index); the final stage has that virtualenv, the source, a non-root
# user, and no compilers, pip caches or wheels.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
COPY docker/wheels /wheels
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY algostream ./algostream
COPY streams ./streams
COPY config ./config
COPY topics ./topics
# Editable install: the package finds config/system.json and topics/topics.toml next to
# itself under /app (a plain site-packages install would not carry those two files). The
# book stage's compiled module comes built from the host with the source (this stage has
# no compiler: setup.py warns and keeps it); the last check fails the build without it.
RUN python3 -m venv /opt/venv \
    && if ls /wheels/*.whl >/dev/null 2>&1; then \
         /opt/venv/bin/pip install --no-index --find-links /wheels --editable ".[ml]"; \
       else \
         /opt/venv/bin/pip install --editable ".[ml]"; \
       fi \
    && /opt/venv/bin/pip uninstall -y -q pip setuptools wheel \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
    && /opt/venv/bin/algostream --help >/dev/null \
    && /opt/venv/bin/python -c "import algostream.marketdata._fastbook"

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ALGOSTREAM__KAFKA__DATA_DIR=/data
RUN groupadd --system --gid 10001 algostream \
    && useradd --system --uid 10001 --gid algostream --home-dir /app --shell /usr/sbin/nologin algostream \
    && mkdir -p /data && chown algostream:algostream /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER algostream
# metrics: 9401 ingestor, 9402-9404 workers, 9406 simulator; 8765 simulator WS + REST
EXPOSE 8765 9401 9402 9403 9404 9406
VOLUME ["/data"]
ENTRYPOINT ["algostream"]
CMD ["--help"]

# algostream application image: every `algostream ...` command (sim, ingest, worker, topics).
#   docker build -t algostream:local .   (docker compose builds it for you)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ALGOSTREAM__KAFKA__DATA_DIR=/data

RUN groupadd --system --gid 10001 algostream \
    && useradd --system --uid 10001 --gid algostream --home-dir /app --shell /usr/sbin/nologin algostream \
    && mkdir -p /app /data && chown algostream:algostream /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY algostream ./algostream
COPY streams ./streams
COPY config ./config
COPY topics ./topics
# Editable install: the package finds config/system.json and topics/topics.toml next to
# itself under /app (a plain site-packages install would not carry those two files).
RUN pip install --editable . && algostream --help >/dev/null

USER algostream
# metrics: 9401 ingestor, 9402-9404 workers, 9406 simulator; 8765 simulator WS + REST
EXPOSE 8765 9401 9402 9403 9404 9406
VOLUME ["/data"]
ENTRYPOINT ["algostream"]
CMD ["--help"]

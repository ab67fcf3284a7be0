# algostream: the commands in README. `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv native tools images broker broker-stop topics test unit integration demo bench bench-backtest soak lint up clean

help:
	@echo "make demo   - broker + simulator + every worker, live, on this machine"
	@echo "make test   - the whole test suite against a real local Kafka broker"
	@echo "make broker - start the local Kafka broker (KRaft) and leave it running"
	@echo "make bench  - benchmarks, results in bench/BENCHMARKS.md"
	@echo "make bench-backtest - only the backtest speed section (about 30 s)"
	@echo "make soak   - the whole pipeline for 10 minutes, results in bench/BENCHMARKS.md"
	@echo "make lint   - ruff + mypy"
	@echo "make up     - docker compose up (needs a Docker engine; builds the images)"

$(STAMP): pyproject.toml setup.py
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,ml,bench]"
	touch $(STAMP)

venv: $(STAMP)

# the book stage's compiled path (algostream/marketdata/_fastbook.pyx, setup.py), rebuilt
# in place when its source changed (the editable install builds it once)
native: $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace

# Prometheus/promtool, the Docker engine + compose plugin, debootstrap, Chromium: the
# tools the tests use besides Python packages and the broker (scripts/test-tools.sh)
tools:
	bash scripts/test-tools.sh

# wheels for the app image, and local base images where no registry answers
images: native broker
	PY=$(BIN)/python bash docker/build-images.sh

broker: $(STAMP)
	$(BIN)/algostream broker start

broker-stop: $(STAMP)
	$(BIN)/algostream broker stop

topics: broker
	$(BIN)/algostream topics apply

# every tool is installed first, so nothing is skipped for a missing one
test: tools broker native
	ALGOSTREAM_REQUIRE_PROMTOOL=1 ALGOSTREAM_REQUIRE_DOCKER_COMPOSE=1 $(BIN)/pytest -q tests

unit: native
	$(BIN)/pytest -q tests/unit

integration: broker native
	$(BIN)/pytest -q tests/integration

demo: topics native
	$(BIN)/algostream demo

bench: topics native
	$(BIN)/python -m bench.run

bench-backtest: native
	$(BIN)/python -m bench.run --backtest

soak: topics native
	$(BIN)/python -m bench.run --soak --layout colocated

lint: $(STAMP)
	$(BIN)/ruff check algostream streams tests bench
	$(BIN)/ruff format --check algostream streams tests bench
	$(BIN)/mypy

up: images
	docker compose --env-file docker/images.env $(if $(wildcard .env),--env-file .env) up --build

clean:
	-$(BIN)/algostream broker stop
	rm -rf .data .pytest_cache

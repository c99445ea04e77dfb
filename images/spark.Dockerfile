# syntax=docker/dockerfile:1
# The application image of a DeadlineJob (spec.application.image): Apache Spark with Python 3 for
# the driver and executor pods, and the example applications of examples/dynaspark/.
#
#   docker build -f images/spark.Dockerfile -t REGISTRY/mlscale-spark:TAG .
#
# What the operator's pods run in it (controllers/sparkpods.py):
# - driver: /opt/spark/bin/spark-submit in client mode (MLSCALE_SPARK_SUBMIT on the operator
#   changes the path), in the image's working directory. A relative mainApplicationFile, as the
#   examples' dynaspark/kmeans.py, is read from there: the applications are copied to
#   /opt/spark/work-dir/dynaspark/. Your own applications go anywhere in the image: name them
#   with local:///path/app.py.
# - executors: /bin/sh starts `python3 -I /opt/mlscale/cpu-meter/cpu_meter.py` in the background
#   (the operator mounts that file from a ConfigMap; it needs the standard library only), then
#   `exec /opt/entrypoint.sh executor` (MLSCALE_SPARK_ENTRYPOINT changes the path).
# The applications import pyspark only, which the Spark distribution in the image provides: no
# package of this project is needed in the image.
#
# The Spark version is the one requirements/engines.txt pins pyspark to; the official images'
# "-python3" variants carry python3. Spark 4.3 needs Python 3.11 or newer.

ARG SPARK_VERSION=4.3.0
ARG SPARK_IMAGE=apache/spark:${SPARK_VERSION}-scala2.13-java17-python3-ubuntu

FROM ${SPARK_IMAGE}
ARG SPARK_VERSION
# Fail the build rather than the DeadlineJob when the base image lacks what the pods run.
RUN set -eu; \
    test -x /opt/spark/bin/spark-submit || { echo "no /opt/spark/bin/spark-submit in the base image" >&2; exit 1; }; \
    test -x /opt/entrypoint.sh || { echo "no /opt/entrypoint.sh in the base image" >&2; exit 1; }; \
    grep -q "^Spark ${SPARK_VERSION} " /opt/spark/RELEASE \
        || { echo "the base image is not Spark ${SPARK_VERSION}: $(head -n 1 /opt/spark/RELEASE)" >&2; exit 1; }; \
    python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Spark 4.3 needs Python 3.11+, the base image has " + sys.version)'

WORKDIR /opt/spark/work-dir
COPY examples/dynaspark/*.py dynaspark/
# The official image's spark user, numeric so that the kubelet can check runAsNonRoot.
USER 185:185

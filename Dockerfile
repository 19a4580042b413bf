# syntax=docker/dockerfile:1
# Three images, one build target each (compose.yaml names them):
#   api    digits-api    `digits serve` on ONNX Runtime: no torch, no Streamlit, no compiler
#   ui     digits-ui     `digits ui`: Streamlit and the API client
#   train  digits-train  `digits trainer`: torch, runs the retraining jobs the API queues
# BASE_IMAGE: any Debian-based Python 3.11 with `python` and venv (scripts/test-containers.sh
# builds one with debootstrap where Docker Hub cannot be reached).
# The api stages come first: a builder without BuildKit builds every stage up to its target.
ARG BASE_IMAGE=python:3.11-slim

# The package and what serving needs, into /opt/venv; every image starts from this venv.
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY digits ./digits
RUN pip install .

# Serving needs none of: pip and setuptools, the libraries' own test suites, ONNX Runtime's
# model tooling (quantisation, transformer optimisers, converters; serving only runs sessions),
# the pen-drawn characters (3.3 MB: training, the probe's fit and the benchmarks read them; the
# digits-train image keeps them).
FROM build AS build-api
RUN site="$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")" \
    && pip uninstall --yes setuptools pip \
    && find "$site" -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf "$site"/onnxruntime/transformers "$site"/onnxruntime/quantization \
        "$site"/onnxruntime/tools "$site"/onnxruntime/datasets "$site"/digits/datasets/pen

# What every image shares: the unprivileged user and the data folder. /data/spool exists, owned
# by that user, so that a fresh named volume mounted there inherits the ownership (Docker copies
# it on first mount).
FROM ${BASE_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 --user-group digits \
    && mkdir -p /data/spool \
    && chown -R digits:digits /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DIGITS_DATA_DIR=/data \
    DIGITS_SPOOL_DIR=/data/spool
USER 10001:10001
WORKDIR /home/digits

FROM runtime AS api
COPY --from=build-api /opt/venv /opt/venv
ENV DIGITS_HOST=0.0.0.0 DIGITS_PORT=8000
EXPOSE 8000
# /readyz: the model is loaded and predictions can be stored (the spool counts when the DB is down).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
# `digits serve` waits for the database (DIGITS_DB_WAIT_S), migrates it to head (safe with
# several replicas), then serves.
CMD ["digits", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM build AS build-ui
RUN pip install ./[ui] && pip uninstall --yes pip

FROM runtime AS ui
COPY --from=build-ui /opt/venv /opt/venv
ENV DIGITS_UI_PORT=8501 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["digits", "ui", "--host", "0.0.0.0"]

FROM build AS build-train
# CPU-only torch, pinned like pyproject.toml: the default wheel would bring several GB of CUDA
# libraries that a CPU service never uses. A build without PyTorch's index sets TORCH_INDEX_URL
# to PyPI and PIP_FIND_LINKS (pip reads it) to a folder of wheels holding the +cpu build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0
RUN pip install ./[train] && pip uninstall --yes pip
# What the torch wheel carries for building C++ extensions and testing itself (headers, protoc,
# test binaries): without a compiler in the image nothing can use them. torch_shm_manager stays.
RUN torch="$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/torch" \
    && rm -rf "$torch/include" "$torch/test" \
    && find "$torch/bin" -mindepth 1 -maxdepth 1 ! -name torch_shm_manager -exec rm -rf {} +

FROM runtime AS train
COPY --from=build-train /opt/venv /opt/venv
# Healthy once the trainer has exported the missing ONNX graphs and takes jobs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os; os.stat('/tmp/digits-trainer.ready')"]
CMD ["digits", "trainer", "--ready-file", "/tmp/digits-trainer.ready"]

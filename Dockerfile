# syntax=docker/dockerfile:1
# One image for the API (default command) and the UI (`digits ui`, see compose.yaml).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU-only torch from PyTorch's CPU index, pinned like pyproject.toml: the default wheel would
# bring several GB of CUDA libraries that a CPU service never uses.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY digits ./digits
RUN pip install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --user-group digits \
    && mkdir -p /data/spool \
    && chown -R digits:digits /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DIGITS_DATA_DIR=/data \
    DIGITS_SPOOL_DIR=/data/spool \
    DIGITS_HOST=0.0.0.0 \
    DIGITS_PORT=8000 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0
USER 10001:10001
WORKDIR /home/digits
EXPOSE 8000 8501
# /readyz: the model is loaded and predictions can be stored (the spool counts when the DB is down).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
# `digits serve` migrates the database to head before it serves (safe with several replicas).
CMD ["digits", "serve", "--host", "0.0.0.0", "--port", "8000"]

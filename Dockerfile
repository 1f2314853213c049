# video-audit: one image for the recorder, the API and the simulated cameras.
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      python3 python3-venv make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN bash scripts/install-system-deps.sh && python3 -m venv .venv \
    && .venv/bin/pip install --quiet . && rm -rf /var/lib/apt/lists/*
ENV PATH=/app/.venv/bin:$PATH
ENTRYPOINT ["vaudit"]

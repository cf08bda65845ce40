# stemscribe on Ray's own image, so every pod runs the Ray and Python versions
# that pyproject.toml pins (a Ray cluster needs the same Ray and Python everywhere).
#
# Build args:
#   RAY_IMAGE_TAG    Tag of rayproject/ray, "<ray version>-py<python>-<platform>".
#                    Default 2.60.0-py311-cpu (Ubuntu, no CUDA). For GPU workers use a
#                    CUDA variant that Ray publishes for the same release, e.g.
#                    2.60.0-py311-cu128 ("-gpu" is Ray's alias for its default CUDA).
#                    The Ray version must equal the ray[serve] pin in pyproject.toml.
#   TORCH_INDEX_URL  Extra package index that supplies the torch wheel pinned in
#                    pyproject.toml: https://download.pytorch.org/whl/cpu (default) for
#                    the CPU image; .../whl/cu128 (matching the image's CUDA) for GPU.
#   BAKE_MODELS      Space-separated models downloaded into the image at build time,
#                    so pods start without reaching a model hub: Demucs names as they
#                    are (htdemucs, htdemucs_ft, mdx_extra...) and faster-whisper specs
#                    prefixed with "whisper:" (whisper:large-v3, whisper:distil-large-v3).
#                    Default: exactly the models k8s/base/rayservice.yaml enables
#                    (tests/unit/test_k8s_models.py keeps the two equal). After baking,
#                    the Hugging Face hub is switched off (HF_HUB_OFFLINE=1): a Whisper
#                    model that is not baked fails to load instead of downloading.
#
#   docker build -t stemscribe:0.1.0-ray2.60.0-py311-cpu .
#   docker build -t stemscribe:0.1.0-ray2.60.0-py311-cu128 \
#     --build-arg RAY_IMAGE_TAG=2.60.0-py311-cu128 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# No credentials are baked in: storage endpoints, keys and API keys come from the
# environment at run time (STEMSCRIBE_*, see config/settings.py).

ARG RAY_IMAGE_TAG=2.60.0-py311-cpu
FROM rayproject/ray:${RAY_IMAGE_TAG}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG BAKE_MODELS="htdemucs htdemucs_ft htdemucs_6s mdx_extra whisper:large-v3 whisper:small whisper:base whisper:tiny whisper:distil-large-v3"

# Ray's images run as the unprivileged user "ray" (uid 1000, gid 100 "users") and
# own their Python environment, so pip needs no root. Numeric, so Kubernetes can
# check runAsNonRoot.
USER 1000:100
RUN mkdir -p /home/ray/app /home/ray/models /home/ray/data
WORKDIR /home/ray/app

# Model caches at fixed paths inside the image: baked weights are found at run
# time whatever HOME a platform sets. Local storage (single container) in data/.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_HOME=/home/ray/models/torch \
    HF_HOME=/home/ray/models/huggingface \
    STEMSCRIBE_DATA_DIR=/home/ray/data

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when
# the pins change, not on every code change.
COPY --chown=1000:100 pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps))" \
    && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Weights next, with only the code that loads them (pipelines/, config/): a change
# to deployments/ or the serve configs does not download them again. Same loading
# code as the replicas (pipelines.separation, pipelines.transcription).
COPY --chown=1000:100 config ./config
COPY --chown=1000:100 pipelines ./pipelines
COPY --chown=1000:100 scripts/bake_models.py ./scripts/bake_models.py
RUN python -m scripts.bake_models "${BAKE_MODELS}"
# From here on, pods never reach the Hugging Face hub: what is baked is what runs.
ENV HF_HUB_OFFLINE=1

# serve_config.container.yaml: serve_config.yaml on all interfaces, for `docker run`.
# On Kubernetes, KubeRay replaces the command (ray start) and serveConfigV2 is used.
COPY --chown=1000:100 deployments ./deployments
COPY --chown=1000:100 serve_config.yaml serve_config.offline.yaml ./
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import yaml; c = yaml.safe_load(open('serve_config.yaml')); c['http_options']['host'] = '0.0.0.0'; yaml.safe_dump(c, open('serve_config.container.yaml', 'w'), sort_keys=False)"

EXPOSE 8000 8265
# Liveness of the app through the Serve proxy. On Kubernetes this is ignored:
# KubeRay's own probes (raylet and proxy health) decide pod readiness there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/healthz', timeout=4)"]

CMD ["serve", "run", "serve_config.container.yaml"]

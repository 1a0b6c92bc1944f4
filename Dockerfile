# seqserve serving image: the server, its runtime dependencies and the bundled default model.
# No torch, no compilers, no pip in the final stage; runs as uid 10001 on a read-only root.
#
#   docker build -t seqserve .
#   docker run --rm --read-only -p 127.0.0.1:8000:8000 -p 127.0.0.1:8001:8001 seqserve
#
# Behind a TLS-intercepting proxy, mount its CA bundle and name it (podman, as CI does):
#   podman build --format docker --network host \
#     -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a venv in /opt/seqserve with the dependencies, then the project ----
FROM ${PYTHON_IMAGE} AS build
ARG PIP_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# binutils' strip, for uvloop's extension (below); the final stage copies only the venv
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils \
    > /dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/seqserve
WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
# The runtime ones plus the `redis` extra (the image serves state_store=redis too) and the
# `grpc` extra (the KServe V2 / Triton gRPC service on 8001). Of tritonclient the server uses
# only the generated protobuf modules (service/api/grpc/protos.py loads them from their
# files), so it goes in without its client's dependencies (rapidjson, ml_dtypes: 31 MB) and
# protobuf is named instead. Wheels only: nothing is compiled, so no compiler either.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
x = p['optional-dependencies']; grpc = [r for r in x['grpc'] if not r.startswith('tritonclient')]; \
print('\n'.join(p['dependencies'] + x['redis'] + grpc + ['protobuf>=6.30,<7']))" > /tmp/requirements.txt \
 && python -c "import tomllib; x = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']; \
print(next(r for r in x['grpc'] if r.startswith('tritonclient')).replace('[grpc]', ''))" > /tmp/no-deps.txt \
 && /opt/seqserve/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} --only-binary=:all: -r /tmp/requirements.txt \
 && /opt/seqserve/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} --only-binary=:all: --no-deps -r /tmp/no-deps.txt \
 && strip --strip-unneeded /opt/seqserve/lib/python3.11/site-packages/uvloop/*.so
# (uvloop's wheel ships its extension with symbols: 13 MB of which 1.6 MB is code)

# Then the project itself (seqserve/ with the CLI, service/ with the bundled model repository, model/).
COPY README.md ./
COPY seqserve ./seqserve
COPY service ./service
COPY model ./model
# Then trim what serving never runs: pip and setuptools (nothing is installed at run time);
# onnxruntime's offline tooling (tools/, quantization/, transformers/: conversion and tuning
# scripts that `import onnxruntime` never imports) and its libonnxruntime.so (34 MB: the C API
# library for programs and plugin providers linking against it; the Python binding carries its
# own runtime and never opens it, checked with strace); the tests some wheels ship; and every
# bytecode file pip wrote. Bytecode is then written back only for the modules the server imports
# (import the app, load uvicorn's config, run the bundled model): the root is read-only at run
# time, and precompiling all of site-packages would add ~30 MB.
ARG SITE=/opt/seqserve/lib/python3.11/site-packages
RUN /opt/seqserve/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} --no-deps . \
 && /opt/seqserve/bin/python -m pip uninstall -y -q pip setuptools \
 && rm -rf $SITE/pkg_resources $SITE/_distutils_hack $SITE/distutils-precedence.pth \
      $SITE/onnxruntime/tools $SITE/onnxruntime/quantization $SITE/onnxruntime/transformers \
      $SITE/onnxruntime/capi/libonnxruntime.so.* \
 && find /opt/seqserve -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
 && cd /tmp && PYTHONDONTWRITEBYTECODE= /opt/seqserve/bin/python -c "import glob, uvicorn, \
onnxruntime, seqserve.service.__main__, seqserve.service.state.redis_store, \
seqserve.service.api.grpc.server, seqserve.service.api.grpc.servicer; \
from seqserve.service.app import create_app; \
from seqserve.service.settings import Settings; uvicorn.Config(create_app(Settings()), loop='uvloop', \
http='httptools').load(); onnxruntime.InferenceSession(glob.glob('$SITE/seqserve/service/model_repository\
/*/*/model.onnx')[0], providers=['CPUExecutionProvider'])" \
 && /opt/seqserve/bin/python -m compileall -q $SITE/seqserve > /dev/null

# ---- final: the venv on a clean base, a numeric non-root user, nothing else ----
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 seqserve \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data \
      --shell /usr/sbin/nologin seqserve \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/seqserve /opt/seqserve
ENV PATH=/opt/seqserve/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SEQSERVE_HOST=0.0.0.0 \
    SEQSERVE_PORT=8000 \
    SEQSERVE_GRPC_PORT=8001
# The only place the server writes (a memory-store snapshot, when SEQSERVE_SNAPSHOT_PATH points
# here, e.g. /data/sessions.snapshot). Everything else may be mounted read-only.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8000 8001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, socket, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SEQSERVE_PORT', '8000'), timeout=2); g = os.environ.get('SEQSERVE_GRPC_PORT'); g and socket.create_connection(('127.0.0.1', int(g)), timeout=2).close()"]
ENTRYPOINT ["seqserve", "serve"]

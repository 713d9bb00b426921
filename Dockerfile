# syntax=docker/dockerfile:1
# One image for the operator (`ciclo run`) and the serving runtime (`ciclo serve`,
# `ciclo fetch`): the chart's image.repository/tag and the operator's CICLO_RUNTIME_IMAGE
# name the same thing. `make image` builds it without a daemon or a registry (docs/install.md).

# Any Debian-based image whose `python` has `venv`: the public one by default; `make image`
# passes a bookworm base it makes with debootstrap (python3.11 in /usr/bin).
ARG BASE=python:3.12-slim-bookworm

# Build stage: compilers and headers stay here.
FROM ${BASE} AS build
# pip's CA bundle instead of certifi's, when given: `make image` passes the machine's bundle,
# which trusts a TLS-intercepting proxy if there is one. The build stage only.
ARG PIP_CERT
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The newest pip on either base: Debian's (23.0) backtracks for many minutes over grpcio-*'s
# protobuf bounds where today's resolves at once.
RUN python -m venv --upgrade-deps /opt/ciclo
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# The runtime serves every supported model format, and reads s3:// and gs:// artifacts.
# xgboost-cpu is XGBoost without its CUDA libraries (480 MB of NCCL the CPU runtime never loads).
RUN /opt/ciclo/bin/pip install ".[sklearn,lightgbm,onnx,s3,gcs,parquet]" "xgboost-cpu>=2"

# Final stage: the interpreter, the virtualenv, a non-root user; no compilers.
FROM ${BASE}
LABEL org.opencontainers.image.title="ciclo" \
      org.opencontainers.image.description="ciclo operator and model serving runtime" \
      org.opencontainers.image.source="https://github.com/ciclo-dev/ciclo" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/ciclo /opt/ciclo
# libgomp1: LightGBM loads OpenMP's runtime (neither base has it; the compilers brought
# it into the build stage). 65532: the uid the chart's restricted security context runs as.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 ciclo \
    && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin ciclo
ENV PATH=/opt/ciclo/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /tmp
EXPOSE 8000 8080 8081
ENTRYPOINT ["ciclo"]
CMD ["run"]

# syntax=docker/dockerfile:1
#
# Two images from one build:
#   docker build --target webhook -t ghcr.io/kubectl-backup/backup-webhook:0.1.0 .
#   docker build --target plugin  -t ghcr.io/kubectl-backup/kubectl-backup:0.1.0 .
# `webhook` runs the admission webhook Deployment (manifests/), `plugin` runs
# `kubectl-backup` in the schedule CronJobs (in-cluster config).
# Both are distroless, non-root (uid 65532), with no shell.

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS build
# etcd-client's build script runs prost-build, which needs protoc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p backup-webhook -p kubectl-backup \
 && mkdir -p /out \
 && cp target/release/backup-webhook target/release/kubectl-backup /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS webhook
COPY --from=build /out/backup-webhook /usr/local/bin/backup-webhook
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/backup-webhook"]

FROM gcr.io/distroless/cc-debian12:nonroot AS plugin
COPY --from=build /out/kubectl-backup /usr/local/bin/kubectl-backup
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kubectl-backup"]

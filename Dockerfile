# syntax=docker/dockerfile:1
#
# task-mcp container image: one fully static musl binary on `scratch`.
#
#   docker build -t task-mcp:dev .
#   docker run --rm -p 8443:8443 -p 9464:9464 \
#     -v "$PWD/certs:/certs:ro" -v "$PWD:/repo" \
#     -e AUTH_TOKENS_FILE=/certs/tokens.json task-mcp:dev
#
# The image listens on 0.0.0.0, and the server refuses a non-loopback address unless it has a
# certificate, a key and at least one token (it exits with status 2 otherwise). Mount them under
# /certs (tls.crt, tls.key, tokens.json) or point TLS_CERT / TLS_KEY / AUTH_TOKENS_FILE elsewhere.
# docs/DEPLOYMENT.md walks through it.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
# Builder: a static x86_64-unknown-linux-musl release binary, built from the committed Cargo.lock.
# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

ARG TARGET=x86_64-unknown-linux-musl

# musl-tools gives musl-gcc, which ring's C and assembly parts are compiled with for this target.
# The Debian mirror is a moving snapshot of one stable release, so its versions are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"

WORKDIR /src
COPY . .

# The release profile in Cargo.toml sets lto, codegen-units = 1 and strip; they are repeated here
# so the image cannot silently lose them if the manifest changes. RUSTFLAGS pins a static C
# runtime and keeps this container's absolute paths out of panic messages.
ENV CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=/src=. --remap-path-prefix=/usr/local/cargo=cargo"

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" --bin task-mcp \
 && cp "target/${TARGET}/release/task-mcp" /task-mcp

# The root file system of the final image: the binary, CA roots, a passwd/group naming the
# non-root user 65532, and the mount points owned by that user (so named volumes inherit it).
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/certs /rootfs/repo /rootfs/data /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group \
 && chown 65532:65532 /rootfs/certs /rootfs/repo /rootfs/data \
 && chmod 1777 /rootfs/tmp \
 && install -m 0555 /task-mcp /rootfs/task-mcp \
 && /rootfs/task-mcp --version

# ---------------------------------------------------------------------------------------------
# Runtime: nothing but the binary and the files above.
# ---------------------------------------------------------------------------------------------
FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="task-mcp" \
      org.opencontainers.image.description="An MCP server over HTTPS for OpenSpec changes: sync threads, rustls, no async runtime" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="scratch"

COPY --from=builder /rootfs/ /

# HOST=0.0.0.0 makes the server reachable from outside the container; with it, TLS_CERT, TLS_KEY
# and a token are mandatory (see the header). Metrics are plain HTTP on their own port.
ENV HOST=0.0.0.0 \
    PORT=8443 \
    TLS_CERT=/certs/tls.crt \
    TLS_KEY=/certs/tls.key \
    TASK_MCP_ROOT=/repo \
    STATE_DIR=/data/state \
    AUDIT_LOG=/data/audit.log \
    LOG_FORMAT=json \
    LOG_LEVEL=info \
    ENABLE_PROMETHEUS=true \
    PROMETHEUS_HOST=0.0.0.0 \
    PROMETHEUS_PORT=9464 \
    SHUTDOWN_GRACE_MS=10000 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# /certs: certificate, key, token file (read-only is enough); /repo: the repository whose
# openspec/ is served (read-write: the tools edit it); /data: the audit log.
VOLUME ["/certs", "/repo", "/data"]

USER 65532:65532
WORKDIR /data

EXPOSE 8443 9464

# `task-mcp healthcheck` GETs https://127.0.0.1:$PORT/health/live, accepting the server's own
# certificate on loopback, and exits 0 (live) or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/task-mcp", "healthcheck"]

# SIGTERM drains connections for up to SHUTDOWN_GRACE_MS; docker's default stop timeout is 10 s,
# so run with `--stop-timeout 15` (compose: stop_grace_period) if you raise the grace.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/task-mcp"]
CMD ["serve"]

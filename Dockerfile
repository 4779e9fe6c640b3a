# syntax=docker/dockerfile:1.7
# secret-sync operator image: a release build on Debian bookworm, run from distroless as non-root.
#   docker build -t secret-sync:dev .
# The build uses BuildKit cache mounts for the cargo registry and target/, so rebuilds after a
# source change recompile only this crate, not its ~230 dependencies.

FROM rust:1-bookworm AS builder
WORKDIR /src

# The whole workspace is needed: Cargo resolves every member (and Cargo.lock) even for one binary.
COPY Cargo.toml Cargo.lock build.rs ./
# Build settings (jemalloc's options) that the binary's memory numbers depend on (docs/memory.md).
COPY .cargo ./.cargo
COPY crates ./crates
COPY src ./src

RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin secret-sync \
    && install -D -m 0755 target/release/secret-sync /out/secret-sync

# Runtime: glibc and libgcc only, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="secret-sync" \
      org.opencontainers.image.description="Keeps Kubernetes Secrets in sync with external secret managers (ESO external-secrets.io/v1 API)" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/secret-sync /secret-sync

USER 65532:65532
# Admin server: /metrics, /livez, /readyz.
EXPOSE 8080

ENTRYPOINT ["/secret-sync"]
CMD ["run"]

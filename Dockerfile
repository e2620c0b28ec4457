# mcp-edge and mcp-backend in one small image.
#
#   docker build -t mcp-edge:latest .
#   docker run --rm -p 8150:8150 mcp-edge:latest            # mcp-edge over 3 bundled replicas
#   docker run --rm --entrypoint /usr/local/bin/mcp-backend mcp-edge:latest    # the backend alone
#
# The entrypoint is mcp-edge; stack.yml runs the backend service with the other entrypoint.
# It needs BuildKit (the default builder since Docker 23; with Debian's docker.io 20.10, set
# DOCKER_BUILDKIT=1). The two base images are build arguments, so that a machine with no
# registry can build it from local stand-ins (scripts/swarm does): BUILD_IMAGE must have a Rust
# toolchain on PATH and apt-get; RUNTIME_IMAGE must have glibc, libgcc and the user 65532.

ARG BUILD_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- build: an official Rust image, with cmake for pingora's build
FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mcp-edge --bin mcp-backend \
 && mkdir -p /out \
 && cp target/release/mcp-edge target/release/mcp-backend /out/

# ---- runtime: glibc and libgcc only, no shell, no package manager, no curl
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mcp-edge" \
      org.opencontainers.image.description="An MCP-aware front proxy on pingora: legacy sessions over stateless replicas, round robin, sticky routing only for streams; with the bundled mcp-backend" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/mcp-edge /out/mcp-backend /usr/local/bin/
ENV MCP_EDGE_LISTEN=0.0.0.0:8150 \
    MCP_EDGE_ADMIN_LISTEN=0.0.0.0:9150 \
    MCP_BACKEND_LISTEN=0.0.0.0:8000
# distroless's nonroot user
USER 65532:65532
EXPOSE 8150 9150 8000
# mcp-edge's readiness (a service running mcp-backend overrides this: mcp-backend health).
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/mcp-edge", "health"]
ENTRYPOINT ["/usr/local/bin/mcp-edge"]

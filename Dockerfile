# The app image of the stack: `obs` (the sidecar) and the example services `gateway`, `orders`,
# `worker`, built from this workspace. One small non-root image; compose picks the binary with
# `entrypoint` (the default is obs). Build: `docker compose build` or
# `docker build -t observability-stack/app:local .`
#
# Stages:
#   planner  the workspace's manifests and Cargo.lock with stub sources ("skeleton"); changes
#            only when a manifest or the lock file changes
#   builder  builds the dependencies against the skeleton (a cached layer: editing sources does
#            not rebuild them), then the real sources
#   runtime  Debian slim, the four binaries, the provisioning files obs reads, a non-root user,
#            and a HEALTHCHECK for obs
# (cargo-chef does what the planner does; it is not used so the build needs nothing beyond
# cargo.) The tests crate is a workspace member, so its manifest is part of the skeleton, but it
# is not built: the image never needs ../shared or the test fixtures.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS planner
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY examples examples
COPY tests tests
# For every workspace member (crates/*, examples/*, tests): its manifest, an empty src/lib.rs, a
# src/main.rs, and a stub at every target `path = "….rs"` the manifest names, so cargo can load
# the workspace and build every dependency without the real sources.
RUN set -eu; \
    mkdir -p /skeleton; \
    cp Cargo.toml Cargo.lock /skeleton/; \
    for manifest in crates/*/Cargo.toml examples/*/Cargo.toml tests/Cargo.toml; do \
      dir="$(dirname "$manifest")"; \
      mkdir -p "/skeleton/$dir/src"; \
      cp "$manifest" "/skeleton/$manifest"; \
      : > "/skeleton/$dir/src/lib.rs"; \
      echo 'fn main() {}' > "/skeleton/$dir/src/main.rs"; \
      for target in $(sed -n 's/^path *= *"\(.*\.rs\)".*/\1/p' "$manifest"); do \
        mkdir -p "/skeleton/$dir/$(dirname "$target")"; \
        echo 'fn main() {}' > "/skeleton/$dir/$target"; \
      done; \
    done

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# Dependency layer: rebuilt only when a manifest or Cargo.lock changes.
COPY --from=planner /skeleton/ ./
RUN cargo build --release --locked -p obs -p gateway -p orders -p worker
# The real sources. Stubs go first so no stub target survives; every source is touched so cargo
# never takes a stub's build output for the real one.
RUN rm -rf crates examples tests
COPY crates crates
COPY examples examples
COPY tests tests
RUN find crates examples tests -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p obs -p gateway -p orders -p worker \
    && mkdir -p /out \
    && cp target/release/obs target/release/gateway target/release/orders target/release/worker /out/

FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=builder /out/ /usr/local/bin/
# The healthcheck of the example services (bash /dev/tcp; no curl in this image).
COPY --chmod=0755 stack/bin/http-ok /usr/local/bin/http-ok
# What `obs provision` and `obs verify` read: the repository's datasources and dashboards.
COPY grafana/provisioning/datasources /etc/obs/datasources
COPY dashboards /etc/obs/dashboards
ENV OBS_DATASOURCES=/etc/obs/datasources \
    OBS_DASHBOARDS=/etc/obs/dashboards \
    OBS_LISTEN=0.0.0.0:9464
USER 10001:10001
EXPOSE 9464
# `obs health` GETs the sidecar's /readyz (200 once Grafana is provisioned); no curl needed.
# The example services override this healthcheck in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=4 \
    CMD ["/usr/local/bin/obs", "health"]
ENTRYPOINT ["/usr/local/bin/obs"]
CMD ["sidecar"]

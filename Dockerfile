# syntax=docker/dockerfile:1
#
# One image for both services (api and scheduler). Railway's start command picks the role:
#   cronjobs api | cronjobs scheduler   (pre-deploy on api: sh -c 'cronjobs migrate && cronjobs apply jobs.toml')
# Locally:  docker build -t cronjobs . && docker run --rm -e DATABASE_URL=... cronjobs scheduler
#
# The toolchain is pinned here (and only here): keep RUST_VERSION equal to the `rustc --version`
# CI uses. The build command is the same one .ci/run runs.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- chef: cargo-chef on the pinned Rust toolchain ---------------------------------------------
FROM lukemathwalker/cargo-chef:latest-rust-${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
WORKDIR /app

# --- planner: a recipe of the dependency graph only (changes when Cargo.toml/lock change) -------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies cached in their own layer, then the workspace ----------------------
FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# Migrations are embedded at compile time (sqlx::migrate!), so the image needs no SQL files.
RUN cargo build --release --locked -p app --bin cronjobs \
    && strip target/release/cronjobs

# --- runtime: small Debian with CA certificates and a non-root user ---------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates, libssl3: TLS to external endpoints (Sentry uses the system OpenSSL). Versions float with the
# Debian point release on purpose (security fixes); the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cronjobs \
    && useradd --system --uid 10001 --gid cronjobs --no-create-home --shell /usr/sbin/nologin cronjobs
COPY --from=builder /app/target/release/cronjobs /usr/local/bin/cronjobs
# The jobs managed as code: the api's pre-deploy command applies them (`cronjobs apply jobs.toml`).
WORKDIR /app
COPY jobs.toml /app/jobs.toml
USER 10001:10001
# Containers default to production behaviour (JSON logs, no .env); set APP_ENV=staging per
# environment. HOST/PORT defaults (0.0.0.0:8080) live in the binary; Railway injects PORT.
ENV APP_ENV=production
# The commit this image was built from (CI passes --build-arg CRONJOBS_COMMIT=<sha>): /healthz
# and the scheduler's instance row report it, so a deploy can tell the new build from the old.
ARG CRONJOBS_COMMIT=""
ENV CRONJOBS_COMMIT=${CRONJOBS_COMMIT}
EXPOSE 8080
# No HEALTHCHECK: the slim image has no curl/wget, and the platform (Railway) probes /readyz
# itself. The scheduler is not an HTTP service unless PORT is set for it.
ENTRYPOINT ["/usr/local/bin/cronjobs"]
CMD ["api"]

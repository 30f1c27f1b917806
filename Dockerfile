# scopegate: multi-stage build, production dependencies only, runs as the unprivileged `node` user.
# Node.js 24 LTS, pinned to the release CI tests (scripts/install-node.sh) by its full version tag; both stages
# alike (a test checks both).
FROM node:24.19.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
COPY proto ./proto
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json && npm prune --omit=dev

FROM node:24.19.0-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# Node.js 24's V8 lets the young generation grow to 128 MiB (Node.js 20: 32 MiB): with full caches RSS went
# from ~155 to ~270 MiB, past the manifests' 256Mi limit. 16 MiB semi-spaces keep Node.js 20's sizing
# (README, "Memory"). Set at start-up only, so here; workers inherit it.
ENV NODE_OPTIONS=--max-semi-space-size=16
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json policy.schema.json ./
COPY bin ./bin
COPY proto ./proto
COPY examples ./examples
# The example's dev keys are generated at start-up into this folder, never baked into the image.
RUN mkdir -p examples/inventory/dev-keys && chown node:node examples/inventory/dev-keys
USER node
# gRPC and admin (serve's defaults), and the HTTP doors' ports the shipped configs use (--http, --forward-auth).
EXPOSE 9191 9464 9192 9193
ENTRYPOINT ["node", "bin/scopegate.js"]
CMD ["serve", "--policy", "/etc/scopegate/policy.yaml"]

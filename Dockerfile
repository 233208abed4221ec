# One image for every service; the command picks it: `superpeer`, `peer` (default) or a CLI command.
#   docker build -t p2p-rabbit .
#   docker run --rm p2p-rabbit superpeer

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` runs tsc, and the sources are not here yet; the build runs below.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY libs ./libs
COPY services ./services
COPY scripts ./scripts
# Only the services (and the local-network script): tests and benchmarks stay out of the image.
RUN npm run build:services \
  && npm run build:web \
  && npm run build:cli \
  && npm prune --omit=dev --ignore-scripts

FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PEER_SHARE_DIR=/data/share
WORKDIR /app
# Owned by root and only readable by `node`: the running service cannot rewrite its own code.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# A fresh volume mounted here copies this ownership, so each peer replica can write its own share.
RUN mkdir -p /data/share && chown node:node /data/share
USER node
# No EXPOSE: only a peer listens (on PEER_HTTP_PORT); compose exposes 8080 on the peer service alone.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/p2p.js"]
CMD ["peer"]

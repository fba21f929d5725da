# Builds the registry image used by docker-compose.yml. Its defaults run the filesystem driver, with blobs
# and the index under /var/lib/registry. REGISTRY_STORAGE=s3 drops the filesystem setting below, and the
# index then defaults to /app/storage/index.db: set REGISTRY_INDEX_PATH=/var/lib/registry/index.db to keep
# it on the volume (docker-compose.yml does).
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
VOLUME /var/lib/registry
EXPOSE 5000
ENTRYPOINT ["node", "--max-semi-space-size=2", "dist/cli.js"]
CMD ["serve"]

#!/usr/bin/env bash
# Every test suite, in order: typecheck, unit tests, then the real clients and the conformance
# suite against the built registry. Installs the clients (Debian packages; needs root or sudo)
# and runs a private dockerd for the docker cases, stopped again on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run typecheck
npm run build
npm test

bash scripts/install-e2e-deps.sh

dockerd_dir=$(mktemp -d /tmp/ocireg-dk-XXXXXX)   # short: the socket path must stay under ~100 bytes
stop_dockerd() {
  bash scripts/dockerd.sh stop "$dockerd_dir" || true
  rm -rf "$dockerd_dir"
}
trap stop_dockerd EXIT
# Not eval "$(...)" directly: that would hide a failed start from set -e.
started=$(bash scripts/dockerd.sh start "$dockerd_dir")
eval "$started"
export DOCKER_HOST

npm run test:e2e
# The docker cases once more, with the registry's blobs in S3 (an s3rver the suite starts).
OCIREG_E2E_STORAGE=s3 npm run test:e2e -- test/e2e/docker.test.ts
npm run conformance
OCI_CONFORMANCE_STORAGE=s3 npm run conformance
# The deletes-disabled cases of the conformance suite, against ours started with deletes off.
OCI_CONFORMANCE_DELETES=false npm run conformance -- test/conformance/management.test.ts
# The whole suite against ours with authentication on: Basic credentials on every request, then
# Docker token authentication through its built-in token server.
OCI_CONFORMANCE_AUTH=basic npm run conformance
OCI_CONFORMANCE_AUTH=token npm run conformance

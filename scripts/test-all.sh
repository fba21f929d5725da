#!/usr/bin/env bash
# Every test suite, in order: typecheck, unit tests (the index ones over SQLite and PostgreSQL), the
# three-node cluster, then the real clients and the conformance suite against the built registry, on one
# node and through the cluster. Installs the clients, PostgreSQL and haproxy (Debian packages; needs root
# or sudo) and runs a private PostgreSQL and a private dockerd, stopped again on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run typecheck
npm run build
bash scripts/install-e2e-deps.sh

pg_dir=$(mktemp -d /tmp/ocireg-pg-XXXXXX)
dockerd_dir=$(mktemp -d /tmp/ocireg-dk-XXXXXX)   # short: the socket path must stay under ~100 bytes
stop_all() {
  bash scripts/dockerd.sh stop "$dockerd_dir" || true
  bash scripts/postgres.sh stop "$pg_dir" || true
  rm -rf "$dockerd_dir" "$pg_dir"
}
trap stop_all EXIT

# One private PostgreSQL for the whole run; every suite makes and drops its own databases in it.
pg_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
started=$(bash scripts/postgres.sh start "$pg_dir" "$pg_port")
eval "$started"
export OCIREG_TEST_POSTGRES_URL
# The PostgreSQL cases must run here, not be skipped for want of a server.
export OCIREG_REQUIRE_POSTGRES=1
export OCIREG_REQUIRE_DISTRIBUTION=1  # the pull-through cases need CNCF distribution (docker-registry) as their upstream

npm test
# The HTTP tests once more, with the PostgreSQL index under the app: those whose registries come from
# test/helpers.ts startRegistry (the rest start their own, on SQLite, and would only repeat themselves).
mapfile -t http_on_index < <(grep -l 'startRegistry' test/http/*.test.ts)
OCIREG_TEST_INDEX=postgres npm test -- "${http_on_index[@]}"
# Three nodes on s3rver and PostgreSQL behind haproxy: uploads across nodes, a node killed mid-upload,
# concurrent writers, jobs, tokens (test/cluster/).
npm run test:cluster
# Not eval "$(...)" directly: that would hide a failed start from set -e.
started=$(bash scripts/dockerd.sh start "$dockerd_dir")
eval "$started"
export DOCKER_HOST

npm run test:e2e
# The docker cases once more, with the registry's blobs in S3 (an s3rver the suite starts).
OCIREG_E2E_STORAGE=s3 npm run test:e2e -- test/e2e/docker.test.ts
# And through three nodes behind haproxy (round robin per request).
OCIREG_E2E_CLUSTER=1 npm run test:e2e -- test/e2e/docker.test.ts
npm run conformance
OCI_CONFORMANCE_STORAGE=s3 npm run conformance
# The deletes-disabled cases of the conformance suite, against ours started with deletes off.
OCI_CONFORMANCE_DELETES=false npm run conformance -- test/conformance/management.test.ts
# The whole suite against ours with authentication on: Basic credentials on every request, then
# Docker token authentication through its built-in token server.
OCI_CONFORMANCE_AUTH=basic npm run conformance
OCI_CONFORMANCE_AUTH=token npm run conformance
# Through three nodes behind haproxy.
OCI_CONFORMANCE_CLUSTER=1 npm run conformance

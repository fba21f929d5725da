#!/usr/bin/env bash
# Install the real container clients used by end-to-end tests (Debian 12, root), and
# htpasswd (apache2-utils) and openssl, with which the auth and TLS cases make their files, and
# the AWS CLI v2 (Debian's awscli, at /usr/bin/aws) for the ECR cases, and PostgreSQL (the shared index of
# several nodes; scripts/postgres.sh runs a private one), haproxy (the balancer of the cluster tests),
# Chromium (the web UI's browser tests, driven by playwright-core) and docker-registry (CNCF distribution
# 2.8.2, the upstream of the pull-through cache tests; test/support/distribution.ts runs private ones).
# Idempotent; installs only, starts nothing. Run as root (or via sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
# Debian's docker.io and docker-registry postinsts may try to start their services; make that a no-op
# (no systemd/init here, and we must not start anything).
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  CREATED_POLICY=1
fi
cleanup() { if [ "$CREATED_POLICY" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  docker.io skopeo podman buildah umoci \
  apache2-utils openssl awscli \
  postgresql haproxy chromium docker-registry \
  ca-certificates

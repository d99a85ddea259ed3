#!/usr/bin/env bash
# PostgreSQL's binaries from Debian's packages, for the gateway's PostgreSQL store tests (each
# test starts and stops its own throw-away cluster; nothing here starts a server).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "PostgreSQL is not installed and this is not a root Debian machine: install postgresql" >&2
  exit 1
fi
echo "== installing PostgreSQL (Debian's package)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q postgresql > /dev/null 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q postgresql > /dev/null; }
ls /usr/lib/postgresql/*/bin/initdb

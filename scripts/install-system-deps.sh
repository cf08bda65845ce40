#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when they are missing,
# so repeated runs cost nothing: espeak-ng and sox (speech fixtures), jq (the
# README's curl walk-through, which the e2e tests run as written), chromium (the
# browser tests drive it with Playwright; never a browser build of its own).
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
command -v jq >/dev/null || need+=(jq)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (install them with apt-get as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

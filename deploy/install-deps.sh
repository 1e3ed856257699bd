#!/usr/bin/env bash
# Installs what Rapport needs to build, test and run, from Debian's packages.
# Idempotent: packages that are already installed are left alone, and apt is
# not touched at all when nothing is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  librdkafka-dev librocksdb-dev libyaml-cpp-dev catch2
  libsimdjson-dev libcli11-dev libfmt-dev libssl-dev libcpp-httplib-dev
  libgoogle-perftools-dev
)
# Extra packages named by the caller, e.g. `install-deps.sh chromium`.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

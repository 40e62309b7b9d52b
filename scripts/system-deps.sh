#!/usr/bin/env bash
# Installs the distribution packages the test suite drives for real:
# Chromium and its driver (page tests), nginx (checks the shipped snippet),
# systemd's analyzer (checks the shipped units). Only as root, only when missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
fc-list 2>/dev/null | grep -qi "color emoji" || need+=(fonts-noto-color-emoji)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]}; run as root or install them (tests that need them will fail)" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

#!/usr/bin/env bash
# Install headless-capable Chromium (the Debian/Ubuntu package `chromium`), for the test that
# opens the workflow's HTML report and checks that every figure renders.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  echo "chromium is installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
chromium --version

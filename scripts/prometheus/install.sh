#!/usr/bin/env bash
# Installs Debian's prometheus package when the prometheus binary is missing (root, or sudo without
# a password). Prints the binary's path on stdout. Exits non-zero, saying why, when it cannot.
# The package's service is not needed: vblk's tests and docs start prometheus by hand.
set -euo pipefail
bin=$(command -v prometheus || true)
if [ -n "$bin" ]; then
  echo "$bin"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "prometheus is not installed and installing it needs root: apt-get install prometheus" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
install() { "${as_root[@]}" apt-get install -y -q --no-install-recommends prometheus >&2; }
if ! install; then
  # A fresh machine may not have package lists yet.
  "${as_root[@]}" apt-get update -q >&2
  install
fi
bin=$(command -v prometheus || true)
if [ -z "$bin" ]; then
  echo "apt-get installed prometheus but no prometheus binary is on PATH" >&2
  exit 3
fi
echo "$bin"

#!/usr/bin/env bash
# Debian packages the test suite needs: chromium (the browser end-to-end test drives
# it through Playwright; a browser download does not work here) and bubblewrap (the
# OS boundary of the template sandbox). Installs what is missing when run as root
# with apt-get; otherwise prints the one command that installs it and fails.
# Usage: scripts/system_deps.sh [PACKAGE ...]   (default: chromium bubblewrap)
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(chromium bubblewrap)
missing=()
for pkg in "${wanted[@]}"; do
  case "$pkg" in
    bubblewrap) cmd=bwrap ;;
    *) cmd="$pkg" ;;
  esac
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

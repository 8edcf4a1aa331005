#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing; never downloads a browser build.
# Exits 0 even when it cannot install: the browser tests then skip and say why.
set -u

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "install_chromium: $CHROMIUM already present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: apt-get not available; browser tests will be skipped"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_chromium: not root and no passwordless sudo; browser tests will be skipped"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq \
    && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    echo "install_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
else
    echo "install_chromium: apt-get could not install chromium; browser tests will be skipped"
fi
exit 0

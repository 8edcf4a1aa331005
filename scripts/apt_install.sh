#!/usr/bin/env bash
# Installs one Debian package a test needs when its binary is missing; never downloads a build.
# Usage: apt_install.sh PACKAGE BINARY WHAT [no-start]
#   WHAT      what is skipped without it (said in every message)
#   no-start  refuse service starts during the install (policy-rc.d): the package's own daemon
#             is not wanted, the tests start their own on a free port
# Exits 0 even when it cannot install: the tests that need it then skip and say why.
set -u

PACKAGE="$1"
BINARY="$2"
WHAT="$3"
NO_START="${4:-}"
NAME="install_$PACKAGE"

if [ -x "$BINARY" ]; then
    echo "$NAME: $BINARY already present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$NAME: apt-get not available; $WHAT will be skipped"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "$NAME: not root and no passwordless sudo; $WHAT will be skipped"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ "$NO_START" = "no-start" ] && [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY" \
        && ADDED_POLICY=1
fi
if $SUDO apt-get update -qq \
    && $SUDO apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null; then
    echo "$NAME: installed $("$BINARY" --version 2>/dev/null | head -n 1 || echo "$PACKAGE")"
else
    echo "$NAME: apt-get could not install $PACKAGE; $WHAT will be skipped"
fi
if [ "$ADDED_POLICY" -eq 1 ]; then
    $SUDO rm -f "$POLICY"
fi
exit 0

#!/usr/bin/env bash
# Installs Debian's Prometheus server for the service-discovery test when it is missing; never
# downloads a release binary. Exits 0 even when it cannot install: that test then skips and says why.
set -u

PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"

if [ -x "$PROMETHEUS" ]; then
    echo "install_prometheus: $PROMETHEUS already present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_prometheus: apt-get not available; the Prometheus test will be skipped"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_prometheus: not root and no passwordless sudo; the Prometheus test will be skipped"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d refuses service starts during the install: the package's own daemon is not wanted,
# the test starts its own server on a free port with its own configuration.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY" \
        && ADDED_POLICY=1
fi
if $SUDO apt-get update -qq \
    && $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
    echo "install_prometheus: installed $("$PROMETHEUS" --version 2>/dev/null | head -n 1 || echo prometheus)"
else
    echo "install_prometheus: apt-get could not install prometheus; the Prometheus test will be skipped"
fi
if [ "$ADDED_POLICY" -eq 1 ]; then
    $SUDO rm -f "$POLICY"
fi
exit 0

#!/usr/bin/env bash
# Installs Debian's Prometheus server for the service-discovery test when it is missing, without
# starting the package's own daemon (see apt_install.sh).
exec bash "$(dirname "$0")/apt_install.sh" prometheus "${PROMETHEUS:-/usr/bin/prometheus}" \
    "the Prometheus test" no-start

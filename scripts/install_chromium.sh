#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing (see apt_install.sh).
exec bash "$(dirname "$0")/apt_install.sh" chromium "${CHROMIUM:-/usr/bin/chromium}" "the browser tests"

#!/usr/bin/env bash
# Refreshes the Swagger UI and ReDoc files the API serves at /docs and /redoc (no CDN at run
# time) from the npm registry, at the pinned versions below, with their licences.
# Run by hand when upgrading; the files are committed. Needs npm and tar.
set -euo pipefail

SWAGGER_UI_VERSION="5.35.0"
REDOC_VERSION="2.5.4"

cd "$(dirname "$0")/.."
target="services/api/static/docs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "swagger-ui-dist@${SWAGGER_UI_VERSION}" "redoc@${REDOC_VERSION}" >/dev/null)
mkdir -p "$work/swagger" "$work/redoc" "$target"
tar -xzf "$work/swagger-ui-dist-${SWAGGER_UI_VERSION}.tgz" -C "$work/swagger"
tar -xzf "$work/redoc-${REDOC_VERSION}.tgz" -C "$work/redoc"

cp "$work/swagger/package/swagger-ui-bundle.js" "$target/"
cp "$work/swagger/package/swagger-ui.css" "$target/"
cp "$work/swagger/package/favicon-32x32.png" "$target/swagger-favicon.png"
cp "$work/swagger/package/LICENSE" "$target/LICENSE.swagger-ui.txt"
cp "$work/swagger/package/NOTICE" "$target/NOTICE.swagger-ui.txt"
cp "$work/swagger/package/swagger-ui-bundle.js.LICENSE.txt" "$target/"
cp "$work/redoc/package/bundles/redoc.standalone.js" "$target/"
cp "$work/redoc/package/LICENSE" "$target/LICENSE.redoc.txt"
# The bundles end with a source map comment; the maps are not shipped, so drop the comment.
sed -i '/^\/\/# sourceMappingURL=/d' "$target/swagger-ui-bundle.js" "$target/redoc.standalone.js"
# ReDoc draws Redocly's logo from Redocly's CDN, and hides it when it fails to load: an empty
# data: URL fails at once, with no request leaving the machine and no policy violation.
sed -i 's#https://cdn\.redoc\.ly/redoc/logo-mini\.svg#data:,#' "$target/redoc.standalone.js"
grep -q 'cdn\.redoc\.ly' "$target/redoc.standalone.js" && { echo "redoc still names its CDN" >&2; exit 1; }
printf 'swagger-ui-dist %s (Apache-2.0)\nredoc %s (MIT)\n' "$SWAGGER_UI_VERSION" "$REDOC_VERSION" \
    > "$target/VERSIONS.txt"
echo "vendor_api_docs: swagger-ui-dist ${SWAGGER_UI_VERSION}, redoc ${REDOC_VERSION} -> ${target}"

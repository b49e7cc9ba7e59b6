#!/usr/bin/env bash
# Re-vendors Swagger UI into assets/ from its published npm package, pinned by version and by the
# registry's integrity hash: only the files the page loads (the two big ones gzip-precompressed, `gzip -9 -n`,
# so the output is reproducible and the component stays within its size budget) and the licenses.
# To upgrade: change VERSION and INTEGRITY (`npm view swagger-ui-dist@<v> dist.integrity`), run
# this script, and update SWAGGER_UI_VERSION in src/lib.rs.
set -euo pipefail
VERSION=5.35.0
INTEGRITY=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tarball="$work/swagger-ui-dist-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$actual" != "$INTEGRITY" ]]; then
  echo "integrity mismatch for swagger-ui-dist@$VERSION: $actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
for f in swagger-ui-bundle.js swagger-ui.css; do
  gzip -9 -n -c "$work/package/$f" >"assets/$f.gz"
done
cp "$work/package/LICENSE" assets/LICENSE
cp "$work/package/NOTICE" assets/NOTICE
cp "$work/package/favicon-32x32.png" assets/favicon-32x32.png
cp "$work/package/swagger-ui-bundle.js.LICENSE.txt" assets/swagger-ui-bundle.js.LICENSE.txt
echo "vendored swagger-ui-dist@$VERSION into $(pwd)/assets"

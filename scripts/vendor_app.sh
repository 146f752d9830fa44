#!/usr/bin/env bash
# Rebuild the phone app's vendored libraries (api/static/app/vendor/) from the npm registry.
#
# The app needs no build step to run: these are the packages' own published ES module builds, copied as they are
# with their licences. This script is how they were made; run it to update a version (then run the app's tests).
#
#   scripts/vendor_app.sh            # needs node + npm, and the project's .venv (for zxing-cpp's licence text)
#
#   idb         IndexedDB with promises (the outbox, keys, cached custody)        ISC
#   uqr         QR code encoder to SVG (the phone's public key, for the operator)   MIT
#   zxing-wasm  ZXing-C++ compiled to WebAssembly: the QR decoder for browsers without BarcodeDetector (MIT;
#               the C++ library it compiles is Apache-2.0)
set -euo pipefail

IDB=8.0.4
UQR=0.1.3
ZXING_WASM=3.1.8

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/api/static/app/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund --ignore-scripts "idb@$IDB" "uqr@$UQR" "zxing-wasm@$ZXING_WASM" >/dev/null
m="$work/node_modules"

rm -rf "$out"
mkdir -p "$out/idb" "$out/uqr" "$out/zxing-wasm/es/reader" "$out/zxing-wasm/reader"
cp "$m/idb/build/index.js" "$out/idb/index.js"
cp "$m/idb/LICENSE" "$out/idb/LICENSE"
cp "$m/uqr/dist/index.mjs" "$out/uqr/index.js"
cp "$m/uqr/LICENSE" "$out/uqr/LICENSE"
cp "$m/zxing-wasm/dist/es/reader/index.js" "$out/zxing-wasm/es/reader/index.js"
cp "$m/zxing-wasm/dist/es/share.js" "$out/zxing-wasm/es/share.js"
cp "$m/zxing-wasm/dist/reader/zxing_reader.wasm" "$out/zxing-wasm/reader/zxing_reader.wasm"
cp "$m/zxing-wasm/LICENSE" "$out/zxing-wasm/LICENSE"
zxing_cpp_licence="$(ls "$root"/.venv/lib/python3*/site-packages/zxing_cpp-*.dist-info/licenses/LICENSE | head -1)"
cp "$zxing_cpp_licence" "$out/zxing-wasm/LICENSE-zxing-cpp"

{
  echo "# Vendored libraries of the phone app"
  echo
  echo "Copied unchanged from the npm registry by \`scripts/vendor_app.sh\` (which says why each is used)."
  echo "Do not edit these files: \`tests/unit/test_app_files.py\` checks them against the hashes below."
  echo
  echo "| package | version | licence | file | sha256 |"
  echo "|---|---|---|---|---|"
  for row in "idb $IDB ISC idb/index.js" "uqr $UQR MIT uqr/index.js" \
             "zxing-wasm $ZXING_WASM MIT zxing-wasm/es/reader/index.js" \
             "zxing-wasm $ZXING_WASM MIT zxing-wasm/es/share.js" \
             "zxing-wasm $ZXING_WASM MIT,Apache-2.0 zxing-wasm/reader/zxing_reader.wasm"; do
    set -- $row
    echo "| $1 | $2 | $3 | \`$4\` | \`$(sha256sum "$out/$4" | cut -d' ' -f1)\` |"
  done
} > "$out/README.md"
echo "vendored into $out"

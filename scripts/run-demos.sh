#!/usr/bin/env bash
# dtrain's main job for now: set up, build, and run the lecture's first networks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
dtrain="${DTRAIN_BUILD_DIR:-$root/build}/launcher/dtrain"
"$dtrain" info
for demo in and xor line; do
  echo
  echo "=== dtrain demo $demo ==="
  "$dtrain" demo "$demo"
done

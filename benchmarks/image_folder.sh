#!/usr/bin/env bash
# The VGG16-scale image pipeline: a generated folder of JPEGs, converted to the raw and the
# encoded schema, and the decode + augment rate of dtrain's loader beside PyTorch's
# (torchvision ImageFolder + DataLoader) in one run, alternating, medians (README.md).
#
#   benchmarks/image_folder.sh [--n 3000] [--rounds 3] [--workers "1 2"] [--batches 20]
#                              [--dir DIR] [--build build]
#
# Prints the folder's and both files' bytes per image, the conversion times, then per
# worker count the median images/s of each pipeline, per core, and the ratio dtrain / PyTorch.
set -euo pipefail
n=3000 rounds=3 workers="1 2" batches=20 dir="" build=build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) n=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "image_folder.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
bench="$build/benchmarks/bench_image_folder"
dtrain="$build/launcher/dtrain"
for f in "$bench" "$dtrain"; do
  [[ -x "$f" ]] || { echo "image_folder.sh: $f not found; build first (bash scripts/build.sh)" >&2; exit 1; }
done
python=/usr/bin/python3
"$python" -c "import torchvision" 2>/dev/null ||
  { echo "image_folder.sh: $python lacks torchvision (apt-get install python3-torchvision)" >&2; exit 1; }
if [[ -z "$dir" ]]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"

echo "== folder: $n synthetic 256-pixel JPEGs"
"$bench" generate --out "$dir/images" --n "$n" --classes 10 --size 256 --seed 0 --quality 90
folder_bytes=$(find "$dir/images" -name '*.jpg' -printf '%s\n' | awk '{s += $1} END {print s}')

echo "== convert"
t0=$(date +%s.%N)
"$dtrain" data convert folder "$dir/images" --out "$dir/encoded.h5" --store encoded 2>/dev/null | head -1
t1=$(date +%s.%N)
"$dtrain" data convert folder "$dir/images" --out "$dir/raw.h5" --store raw --resize 256 --crop 256 2>/dev/null | head -1
t2=$(date +%s.%N)
enc_bytes=$(stat -c %s "$dir/encoded.h5")
raw_bytes=$(stat -c %s "$dir/raw.h5")
awk -v n="$n" -v f="$folder_bytes" -v e="$enc_bytes" -v r="$raw_bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  te = t1 - t0; tr = t2 - t1
  printf "bytes per image: folder %.0f, encoded file %.0f, raw file (256x256x3) %.0f; raw / encoded %.2f\n",
         f / n, e / n, r / n, r / e
  printf "conversion: encoded %.1f s (%.0f images/s), raw %.1f s (%.0f images/s)\n", te, n / te, tr, n / tr }'

echo "== decode + RandomResizedCrop(224) + flip + to float, batch 64, $batches batches per run, $rounds rounds"
results="$dir/results.jsonl"
: > "$results"
for r in $(seq 1 "$rounds"); do
  for w in $workers; do
    "$bench" load --file "$dir/encoded.h5" --workers "$w" --batches "$batches" >> "$results"
    "$python" "$here/image_folder_torch.py" --root "$dir/images" --workers "$w" --batches "$batches" >> "$results"
    "$bench" load --file "$dir/raw.h5" --workers "$w" --batches "$batches" | sed 's/"dtrain"/"dtrain raw"/' >> "$results"
  done
  echo "round $r done"
done
"$python" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault((r["impl"], r["workers"]), []).append(r["images_per_s"])
for w in sorted({r["workers"] for r in rows}):
    d = statistics.median(by[("dtrain", w)])
    t = statistics.median(by[("torch", w)])
    raw = statistics.median(by[("dtrain raw", w)])
    print(f"workers {w}: dtrain encoded {d:.0f} images/s ({d / w:.0f} per core), "
          f"PyTorch {t:.0f} ({t / w:.0f} per core), ratio dtrain / PyTorch {d / t:.2f}; "
          f"dtrain raw file {raw:.0f} ({raw / w:.0f} per core)")
PY

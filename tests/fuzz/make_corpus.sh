#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from small
# valid inputs: images of each format, control-plane frames, the shipped configs, tiny
# datasets of every schema, a checkpoint, and converter inputs. The corpora are committed;
# rerun this after a format changes. Usage: tests/fuzz/make_corpus.sh DTRAIN_BINARY
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dtrain="${1:?usage: make_corpus.sh path/to/dtrain}"
py=/usr/bin/python3
out="$here/corpus"
rm -rf "$out"
mkdir -p "$out"/{image,control,config,dataset,checkpoint,convert}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# image: the first byte picks the reduced-scale decode (0: full size).
"$py" - "$out/image" "$root/tests/fixtures/images" <<'PY'
import io, sys
from PIL import Image
out, fixtures = sys.argv[1], sys.argv[2]
def put(name, data, scale=0):
    open(f"{out}/{name}", "wb").write(bytes([scale]) + data)
def enc(im, fmt, **kw):
    b = io.BytesIO(); im.save(b, fmt, **kw); return b.getvalue()
rgb = Image.new("RGB", (9, 7))
rgb.putdata([((x * 29) % 256, (y * 37) % 256, (x * y * 5) % 256) for y in range(7) for x in range(9)])
put("rgb.png", enc(rgb, "PNG"))
put("gray.png", enc(rgb.convert("L"), "PNG"))
put("rgba.png", enc(rgb.convert("RGBA"), "PNG"))
put("palette.png", enc(rgb.convert("P"), "PNG"))
put("gray16.png", enc(rgb.convert("L").convert("I"), "PNG"))
put("baseline.jpg", enc(rgb, "JPEG", quality=80))
put("gray.jpg", enc(rgb.convert("L"), "JPEG"))
put("scaled.jpg", enc(rgb.resize((40, 32)), "JPEG"), scale=9)
put("p5.pgm", enc(rgb.convert("L"), "PPM"))
put("p6.ppm", enc(rgb, "PPM"))
for name in ("progressive.jpg", "cmyk.jpg"):
    put(name, open(f"{fixtures}/{name}", "rb").read())
PY

# control: one frame of each message type (wire.cpp's format).
"$py" - "$out/control" <<'PY'
import struct, sys
out = sys.argv[1]
def s(b): return struct.pack("<I", len(b)) + b
def frame(t, payload): return b"DTC1" + bytes([t, 0, 0, 0]) + struct.pack("<I", len(payload)) + payload
open(f"{out}/hello", "wb").write(frame(1, struct.pack("<ii", 1, 4242) + s(b"node1") + s(b"0123456789abcdef")))
hb = struct.pack("<iqBiQQBBQd", 2, 40, 3, 1, 17, 16, 1, 1, 17, 0.25)
open(f"{out}/heartbeat", "wb").write(frame(2, hb))
open(f"{out}/verdict", "wb").write(frame(3, bytes([1]) + struct.pack("<Iii", 2, 1, 3) + s(b"ranks 1 and 3 are silent")))
PY

# config: the shipped configs, and one with overrides after a NUL byte.
cp "$root"/configs/*.toml "$out/config/"
{ cat "$root/configs/fashion_mnist_cnn.toml"; printf '\0optimizer.lr=0.01\nsteps=7\n'; } > "$out/config/overrides"

# dataset: one tiny file of each schema.
"$dtrain" data synth images --out "$out/dataset/images.h5" --n 8 --height 4 --width 4 --channels 1 --classes 2 \
  --chunk-rows 4 > /dev/null
"$dtrain" data synth images --out "$out/dataset/images_gzip.h5" --n 6 --height 3 --width 3 --channels 3 \
  --classes 3 --chunk-rows 2 --gzip 1 > /dev/null
"$dtrain" data synth pairs --out "$out/dataset/pairs.h5" --n 8 --max-len 4 --vocab 8 --chunk-rows 4 > /dev/null
mkdir -p "$tmp/dict"
printf 'apfel\tA\tB\nhaus\tC\tD\nbaum\tE\tF\nkatze\tG\tH\nhund\tI\tJ\nmaus\tK\tL\n' > "$tmp/dict/freedict-deu-eng.index"
printf 'chat\tA\tB\nchien\tC\tD\nmaison\tE\tF\npomme\tG\tH\n' > "$tmp/dict/freedict-fra-eng.index"
"$dtrain" data convert words --dict-dir "$tmp/dict" --languages deu,fra --out-train "$out/dataset/words.h5" \
  --out-test "$tmp/words_test.h5" --test-fraction 0.3 --chunk-rows 4 > /dev/null
# image captions: scenes of 2x2 items.
"$dtrain" data synth images --out "$tmp/items.h5" --n 6 --height 2 --width 2 --channels 1 --classes 2 > /dev/null
"$dtrain" data synth captions --train-images "$tmp/items.h5" --test-images "$tmp/items.h5" \
  --out-train "$out/dataset/captions.h5" --out-test "$tmp/captions_test.h5" --n-train 6 --n-test 1 --chunk-rows 4 \
  > /dev/null

# encoded images: a tiny folder (an RGBA PNG, a progressive and a CMYK JPEG) converted.
mkdir -p "$tmp/folder/a" "$tmp/folder/b"
cp "$root/tests/fixtures/images/rgba.png" "$tmp/folder/a/x.png"
cp "$root/tests/fixtures/images/progressive.jpg" "$tmp/folder/a/y.jpg"
cp "$root/tests/fixtures/images/cmyk.jpg" "$tmp/folder/b/z.jpg"
"$dtrain" data convert folder "$tmp/folder" --out "$out/dataset/encoded.h5" --chunk-rows 2 > /dev/null 2>&1

# checkpoint: the final checkpoint of a 2-step run of a tiny MLP.
"$dtrain" data synth images --out "$tmp/train.h5" --n 32 --height 2 --width 2 --channels 1 --classes 2 > /dev/null
cat > "$tmp/tiny.toml" <<TOML
batch_size = 8
steps = 2
threads = 1
[model]
name = "mlp"
hidden = 3
[data]
train = "$tmp/train.h5"
[optimizer]
name = "adam"
lr = 0.01
TOML
"$dtrain" train "$tmp/tiny.toml" --checkpoint-dir "$tmp/ck" --checkpoint-every 2 > /dev/null
cp "$tmp/ck/step-2.h5" "$out/checkpoint/mlp-step-2.h5"

# convert: a selector byte (0 IDX, 1 CIFAR, 2 pairs, 3 FreeDict, 4 text), then the input.
"$py" - "$out/convert" <<'PY'
import gzip, struct, sys
out = sys.argv[1]
images = struct.pack(">IIII", 0x803, 2, 2, 2) + bytes(range(8))
labels = struct.pack(">II", 0x801, 2) + bytes([0, 1])
# IDX: the second byte says where the images end (cut = byte * bytes / 256).
def idx(img, lab, name):
    body = img + lab
    cut_byte = next(b for b in range(256) if (b * len(body)) // 256 == len(img))
    open(f"{out}/{name}", "wb").write(bytes([0, cut_byte]) + body)
idx(images, labels, "idx")
cifar = bytes([3]) + bytes((i * 7) % 256 for i in range(3072))
open(f"{out}/cifar", "wb").write(bytes([1]) + cifar + bytes([9]) + bytes(3072))
open(f"{out}/pairs_words", "wb").write(bytes([2]) + "go .\tgeh .\nhi .\thallo .\nrun !\tlauf !\nwow !\tdonnerwetter !\n".encode())
open(f"{out}/pairs_chars", "wb").write(bytes([2]) + "I see.\tIch verstehe.\nÉté.\tSommer.\nRun!\tLauf!\n".encode())
open(f"{out}/freedict", "wb").write(bytes([3]) + b"00databaseshort\tA\tB\napfel\tA\tB\nhaus\tC\tD\nbaum\tE\tF\nk\xc3\xa4se\tG\tH\n")
open(f"{out}/text", "wb").write(bytes([4]) + "Ärger, ÉTÉ & Straße: 1,000 words!".encode())
PY
echo "corpora written to $out:"
for d in "$out"/*; do echo "  $(basename "$d"): $(ls "$d" | wc -l) files, $(du -sk "$d" | cut -f1) KiB"; done

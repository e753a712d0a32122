#!/usr/bin/env bash
# Turns Debian's dataset packages into dtrain's HDF5 dataset files (docs/DATASETS.md):
#
#   dataset-fashion-mnist  (MIT)  -> data/fashion_mnist_{train,test}.h5   60,000 / 10,000 images
#                                 -> data/captions_fashion_mnist_{train,test}.h5  20,000 / 1,000
#                                    captioned 2 x 2 scenes of those items (train scenes of the
#                                    train images, test scenes of the test images; seed 1)
#   dict-freedict-eng-deu  (GPL)  -> data/phrases_en_de_{train,test}.h5   example phrase pairs
#                                    with both sides at most 40 characters, split 90/10 by seed;
#                                    data/phrases_en_de_chars_{train,test}.h5  the same pairs and
#                                    split with one token per character
#   dict-freedict-{deu,fra,ita,nld,pol,por,spa,swe}-eng  (GPL; pol: CC BY-SA)
#                                 -> data/langid_words_{train,test}.h5  language identification:
#                                    lower-cased headwords (at most 24 characters, words of
#                                    several languages dropped, at most 10,000 per language),
#                                    split 90/10 per language by seed
#
# The FreeDict data is GPL (or CC BY-SA): it is extracted here, on the machine that trains, and data/
# is git-ignored; never commit it. Idempotent: existing outputs are kept unless --force.
#
#   scripts/prepare-data.sh [--force]
#
# Environment: DTRAIN (the dtrain binary; default build/launcher/dtrain), DATA_DIR
# (default data/), SPLIT_SEED (default 1234), MAX_CHARS (default 40), WORD_LANGUAGES
# (default deu,fra,ita,nld,pol,por,spa,swe: the classes of the word set, in this order).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dtrain="${DTRAIN:-$root/build/launcher/dtrain}"
out="${DATA_DIR:-$root/data}"
seed="${SPLIT_SEED:-1234}"
max_chars="${MAX_CHARS:-40}"
word_languages="${WORD_LANGUAGES:-deu,fra,ita,nld,pol,por,spa,swe}"
force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "prepare-data: unknown argument '$a' (try --help)" >&2; exit 2 ;;
  esac
done
if [ ! -x "$dtrain" ]; then
  echo "prepare-data: $dtrain not found; build first (scripts/build.sh) or set DTRAIN" >&2
  exit 1
fi
mkdir -p "$out"

# Writes to a temporary name and renames, so an interrupted run leaves no half file that
# a later run would keep.
fresh() { [ "$force" = 1 ] || [ ! -s "$1" ]; }

fm=/usr/share/datasets/fashion-mnist
if [ ! -r "$fm/train-images-idx3-ubyte.gz" ]; then
  echo "prepare-data: $fm is missing: sudo apt-get install dataset-fashion-mnist" >&2
  exit 1
fi
classes="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
for split in train test; do
  prefix=$([ "$split" = train ] && echo train || echo t10k)
  target="$out/fashion_mnist_$split.h5"
  if fresh "$target"; then
    "$dtrain" data convert idx --images "$fm/$prefix-images-idx3-ubyte.gz" --labels "$fm/$prefix-labels-idx1-ubyte.gz" \
      --classes "$classes" --chunk-rows 64 --out "$target.tmp"
    mv "$target.tmp" "$target"
  else
    echo "kept $target (use --force to rebuild)"
  fi
done

# Captioned scenes of Fashion-MNIST items (docs/CAPTIONING.md). Same items and seed, same bytes.
cap_train="$out/captions_fashion_mnist_train.h5" cap_test="$out/captions_fashion_mnist_test.h5"
if fresh "$cap_train" || fresh "$cap_test"; then
  "$dtrain" data synth captions --train-images "$out/fashion_mnist_train.h5" --test-images "$out/fashion_mnist_test.h5" \
    --n-train 20000 --n-test 1000 --empty 0.25 --seed 1 --chunk-rows 64 --out-train "$cap_train.tmp" \
    --out-test "$cap_test.tmp"
  mv "$cap_train.tmp" "$cap_train"
  mv "$cap_test.tmp" "$cap_test"
else
  echo "kept $cap_train and $cap_test (use --force to rebuild)"
fi

dict=/usr/share/dictd/freedict-eng-deu.dict.dz
if [ ! -r "$dict" ]; then
  echo "prepare-data: $dict is missing: sudo apt-get install dict-freedict-eng-deu" >&2
  exit 1
fi
# The word and character files come from the same pairs, seed and filter, so they hold
# the same pairs in the same train/test split (the split does not depend on --tokens).
pair_files=()
tsv="$out/.phrases_en_de.tsv"
trap 'rm -f "$tsv" "$tsv.tmp"' EXIT
extracted=0
for tokens in words chars; do
  name=$([ "$tokens" = words ] && echo phrases_en_de || echo phrases_en_de_chars)
  train="$out/${name}_train.h5" test="$out/${name}_test.h5"
  pair_files+=("$train" "$test")
  if ! fresh "$train" && ! fresh "$test"; then
    echo "kept $train and $test (use --force to rebuild)"
    continue
  fi
  if [ "$extracted" = 0 ]; then
    # Example phrases are lines '      "english phrase"  - deutsche Phrase' inside the
    # entries (the .dict.dz is gzip-compatible, so zcat reads it whole; the .index's base64
    # offsets are for random access, which this sequential scan does not need).
    zcat "$dict" | sed -nE 's/^[[:space:]]+"(.+)"[[:space:]]+- (.+)$/\1\t\2/p' > "$tsv.tmp"
    mv "$tsv.tmp" "$tsv"
    extracted=1
  fi
  "$dtrain" data convert pairs --input "$tsv" --tokens "$tokens" --max-chars "$max_chars" --test-fraction 0.1 \
    --seed "$seed" --chunk-rows 256 --out-train "$train.tmp" --out-test "$test.tmp"
  mv "$train.tmp" "$train"
  mv "$test.tmp" "$test"
done
rm -f "$tsv"

# Language identification from the headwords of the <lang>-English dictionaries (the
# index files: plain text, no decompression). Same languages and seed, same bytes.
missing=()
for lang in ${word_languages//,/ }; do
  [ -r "/usr/share/dictd/freedict-$lang-eng.index" ] || missing+=("dict-freedict-$lang-eng")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "prepare-data: FreeDict dictionaries missing: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
train="$out/langid_words_train.h5" test="$out/langid_words_test.h5"
if fresh "$train" || fresh "$test"; then
  "$dtrain" data convert words --languages "$word_languages" --max-len 24 --max-per-language 10000 \
    --test-fraction 0.1 --seed "$seed" --chunk-rows 256 --out-train "$train.tmp" --out-test "$test.tmp"
  mv "$train.tmp" "$train"
  mv "$test.tmp" "$test"
else
  echo "kept $train and $test (use --force to rebuild)"
fi

for f in "$out"/fashion_mnist_{train,test}.h5 "$cap_train" "$cap_test" "${pair_files[@]}" "$train" "$test"; do
  "$dtrain" data inspect "$f" | grep -E '^(file|schema|samples|images|captions|src|tgt|tokens|classes):'
done

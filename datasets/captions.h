#pragma once
// Image captioning data: scenes composed from the items of an image classification file
// (Fashion-MNIST), each with the caption a small grammar gives for what is where
// (docs/DATASETS.md, "Image captions"; the recipe: docs/CAPTIONING.md).
//
// A scene is a 2 x 2 grid of cells, each cell one item image of the source file or empty
// (zeros). Cells are numbered row by row: 0 top left, 1 top right, 2 bottom left, 3 bottom
// right. The caption describes the top row, then the bottom row:
//
//   caption := row "above" "," row "below"
//   row     := "a" ITEM "and" "a" ITEM         both cells, left item first
//            | "a" ITEM "on" "the" "left"      the left cell only
//            | "a" ITEM "on" "the" "right"     the right cell only
//            | "nothing"                       neither
//
// e.g. "a bag and a sneaker above , a coat on the right below". ITEM is the class name as
// one word (item_word). The grammar is one-to-one: every grid has one caption and
// parse_caption recovers the grid from it.
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/convert.h"

namespace dtrain::data {

inline constexpr int64_t kSceneRows = 2, kSceneCols = 2, kSceneCells = kSceneRows * kSceneCols;
// The longest caption in tokens, <s> and </s> included: two rows of 5 words, "above", ",",
// "below".
inline constexpr int64_t kMaxCaptionTokens = 1 + 5 + 1 + 1 + 5 + 1 + 1;

// The grammar's own words, after the special tokens in every caption vocabulary.
inline const std::vector<std::string> kCaptionWords = {"a", "and", "above", "below", ",", "nothing",
                                                       "on", "the", "left", "right"};

// A class name as one caption word: lower-cased, cut at the first '/', spaces as '-'
// ("T-shirt/top" -> "t-shirt", "Ankle boot" -> "ankle-boot").
std::string item_word(const std::string& class_name);
// <pad> <s> </s> <unk>, kCaptionWords, then item_word of each class in class order.
// Throws ValueError when two classes give the same word or one gives a grammar word.
std::vector<std::string> caption_vocabulary(const std::vector<std::string>& classes);

// The caption's words for a grid: cells[i] is the class of cell i, -1 for empty.
std::vector<std::string> caption_words(const std::vector<int64_t>& cells, const std::vector<std::string>& classes);
// The grid a caption describes: kSceneCells class ids (-1 empty), or an empty vector when
// the words do not follow the grammar (or name an unknown item).
std::vector<int64_t> parse_caption(const std::vector<std::string>& words, const std::vector<std::string>& classes);

struct CaptionsOptions {
  int64_t n_train = 10000, n_test = 1000;  // scenes per file
  double empty_prob = 0.25;                // chance of a cell being empty (an all-empty scene is redrawn)
  uint64_t seed = 0;
};

// Scenes of train_images' items -> out_train, of test_images' items -> out_test (both image
// classification files with the same classes and image size, one channel or more); the
// image-caption schema (schema.h). Same inputs and seed, same file bytes.
std::string synth_captions(const std::string& train_images, const std::string& test_images,
                           const std::string& out_train, const std::string& out_test, const CaptionsOptions& options,
                           const WriteOptions& write);

}  // namespace dtrain::data

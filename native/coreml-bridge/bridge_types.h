// Plain C++ values that cross between the JS thread and the dispatch queues. Objective-C objects never
// cross: they are created and released inside the queue's work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sora {

enum class ElementType { Float32, Float16, Int32, Float64 };

inline size_t ElementSize(ElementType type) {
  switch (type) {
    case ElementType::Float16: return 2;
    case ElementType::Float64: return 8;
    case ElementType::Float32:
    case ElementType::Int32: return 4;
  }
  return 0;
}

inline const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::Float32: return "float32";
    case ElementType::Float16: return "float16";
    case ElementType::Int32: return "int32";
    case ElementType::Float64: return "float64";
  }
  return "unknown";
}

// Memory owned natively and shared by whoever reads or writes it: an MLMultiArray (released through its
// deallocator, whenever CoreML lets go of it) and a JS ArrayBuffer (released by its finalizer). No JS code can
// detach or free it while CoreML still uses it, and a torn-down JS environment does not pull it from under CoreML.
using SharedBytes = std::shared_ptr<unsigned char>;

// Page-aligned, as Apple recommends for output backings; nullptr when the allocation fails.
inline SharedBytes AllocateBytes(size_t byteLength) {
  constexpr size_t kPage = 16384;  // Apple silicon's page size; a multiple of Intel's 4096
  if (byteLength > SIZE_MAX - kPage) return nullptr;
  const size_t rounded = (byteLength + kPage - 1) / kPage * kPage;
  void* bytes = nullptr;
  if (posix_memalign(&bytes, kPage, rounded == 0 ? kPage : rounded) != 0) return nullptr;
  return SharedBytes(static_cast<unsigned char*>(bytes), [](unsigned char* pointer) { std::free(pointer); });
}

// One prediction input, copied out of its JS typed array before predict() returns (the bridge's input rule).
struct InputTensor {
  std::string name;
  ElementType type;
  std::vector<int64_t> shape;
  SharedBytes data;
};

// An output the caller expects with this shape (from an earlier prediction with the same input shapes), so CoreML
// can write it straight into memory the bridge hands to JS (MLPredictionOptions.outputBackings).
struct OutputRequest {
  std::string name;
  std::vector<int64_t> shape;
};

// A dense row-major prediction output; `data` becomes the backing store of a JS ArrayBuffer.
struct OutputTensor {
  std::string name;
  ElementType type;
  std::vector<int64_t> shape;
  SharedBytes data;
  size_t byteLength;
  bool wroteInPlace;  // CoreML wrote into the requested backing: no copy was made
};

// What a model declares about one feature (MLFeatureDescription + MLMultiArrayConstraint).
struct FeatureInfo {
  std::string name;
  std::optional<ElementType> type;  // nullopt: not a multi-array, or a data type the bridge does not handle
  std::vector<int64_t> shape;       // required or default shape
  enum class ShapeKind { Unspecified, Enumerated, Range } shapeKind = ShapeKind::Unspecified;
  // Per axis, the NSRange exactly as sizeRangeForDimension reports it: (location, length). Reading it as bounds is
  // left to the TypeScript side (src/runtime/coreml-tensors.ts), where both readings are tested.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::vector<int64_t>> enumeratedShapes;
};

struct ModelInfo {
  std::vector<FeatureInfo> inputs;
  std::vector<FeatureInfo> outputs;
};

// An NSError (or exception) flattened for the JS thread.
struct BridgeError {
  std::string detail;  // NSError.localizedDescription or the exception reason
  std::string domain;  // NSError.domain; empty for the bridge's own errors
  int64_t code = 0;
};

}  // namespace sora

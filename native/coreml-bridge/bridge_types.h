// Plain C++ values that cross between the JS thread and the dispatch queues. Objective-C objects never
// cross: they are created and released inside the queue's work.
#pragma once

#include <cstddef>
#include <cstdint>
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

// A JS typed array lent to a prediction; the JS side keeps it referenced until the prediction settles.
struct InputTensor {
  std::string name;
  ElementType type;
  std::vector<int64_t> shape;
  void* data;
};

// A dense row-major copy of one prediction output; `data` becomes the backing store of a JS ArrayBuffer.
struct OutputTensor {
  std::string name;
  ElementType type;
  std::vector<int64_t> shape;
  std::unique_ptr<unsigned char[]> data;
  size_t byteLength;
};

// What a model declares about one feature (MLFeatureDescription + MLMultiArrayConstraint).
struct FeatureInfo {
  std::string name;
  std::optional<ElementType> type;  // nullopt: not a multi-array, or a data type the bridge does not handle
  std::vector<int64_t> shape;       // required or default shape
  enum class ShapeKind { Unspecified, Enumerated, Range } shapeKind = ShapeKind::Unspecified;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // per axis [min, max], max -1 when unbounded
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

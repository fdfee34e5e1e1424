// Layout arithmetic for multi-arrays, in plain C++ so that it is compiled and tested on Linux too
// (scripts/check-coreml-bridge.sh runs strided_copy_test.cc). Strides count elements, not bytes, as in
// MLMultiArray.strides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace sora {

// Only for shapes already known to fit (after ByteLength or StridedExtent accepted them).
inline int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (const int64_t size : shape) count *= size;
  return count;
}

// Bytes of a dense array of this shape; nullopt when a size is negative or the product overflows, so an absurd
// shape from JS or from a model cannot wrap around into a small length that passes a length check.
inline std::optional<size_t> ByteLength(const std::vector<int64_t>& shape, size_t elementSize) {
  size_t bytes = elementSize;
  for (const int64_t size : shape) {
    if (size < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(size), &bytes)) return std::nullopt;
  }
  return bytes;
}

// Row-major strides of a dense array of this shape.
inline std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t axis = shape.size(); axis > 1; --axis) strides[axis - 2] = strides[axis - 1] * shape[axis - 1];
  return strides;
}

// Elements a strided array spans in its buffer: the largest reachable offset plus one (0 when empty); nullopt when
// a size or stride is negative, the ranks differ, or the arithmetic overflows.
inline std::optional<int64_t> StridedExtent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  if (shape.size() != strides.size()) return std::nullopt;
  for (const int64_t size : shape) {
    if (size < 0) return std::nullopt;
    if (size == 0) return 0;
  }
  int64_t last = 0;
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    int64_t reach = 0;
    if (strides[axis] < 0 || __builtin_mul_overflow(shape[axis] - 1, strides[axis], &reach) ||
        __builtin_add_overflow(last, reach, &last)) {
      return std::nullopt;
    }
  }
  return last + 1;
}

// Copies a strided array into a dense row-major destination. GPU and Neural Engine outputs are often padded
// (row strides larger than the row), so the innermost axis is copied row by row, with memcpy when dense.
inline void CopyStridedToContiguous(const void* source, const std::vector<int64_t>& shape,
                                    const std::vector<int64_t>& strides, size_t elementSize, void* destination) {
  const auto* from = static_cast<const unsigned char*>(source);
  auto* to = static_cast<unsigned char*>(destination);
  if (ElementCount(shape) == 0) return;
  if (shape.empty()) {
    std::memcpy(to, from, elementSize);
    return;
  }
  const size_t innerAxis = shape.size() - 1;
  const int64_t rowLength = shape[innerAxis];
  const int64_t innerStride = strides[innerAxis];
  std::vector<int64_t> index(innerAxis, 0);  // position over the outer axes, last axis fastest
  int64_t rowOffset = 0;
  for (;;) {
    if (innerStride == 1) {
      std::memcpy(to, from + rowOffset * static_cast<int64_t>(elementSize), static_cast<size_t>(rowLength) * elementSize);
      to += static_cast<size_t>(rowLength) * elementSize;
    } else {
      for (int64_t column = 0; column < rowLength; ++column) {
        std::memcpy(to, from + (rowOffset + column * innerStride) * static_cast<int64_t>(elementSize), elementSize);
        to += elementSize;
      }
    }
    size_t axis = innerAxis;
    while (axis > 0) {
      --axis;
      rowOffset += strides[axis];
      if (++index[axis] < shape[axis]) break;
      rowOffset -= strides[axis] * shape[axis];
      index[axis] = 0;
      if (axis == 0) return;
    }
    if (innerAxis == 0) return;
  }
}

}  // namespace sora

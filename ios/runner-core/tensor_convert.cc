#include "tensor_convert.h"

#include <cmath>
#include <cstring>

namespace sora::runner {
namespace {

double Read(const Tensor& t, size_t index) {
  const uint8_t* at = t.data.data() + index * DTypeSize(t.dtype);
  switch (t.dtype) {
    case DType::Float32: {
      float v;
      std::memcpy(&v, at, 4);
      return v;
    }
    case DType::Float16: {
      uint16_t v;
      std::memcpy(&v, at, 2);
      return HalfToFloat(v);
    }
    case DType::Int64: {
      int64_t v;
      std::memcpy(&v, at, 8);
      return static_cast<double>(v);
    }
    case DType::Int32: {
      int32_t v;
      std::memcpy(&v, at, 4);
      return v;
    }
  }
  return 0;
}

void Write(Tensor& t, size_t index, double value) {
  uint8_t* at = t.data.data() + index * DTypeSize(t.dtype);
  switch (t.dtype) {
    case DType::Float32: {
      const float v = static_cast<float>(value);
      std::memcpy(at, &v, 4);
      return;
    }
    case DType::Float16: {
      const uint16_t v = FloatToHalf(static_cast<float>(value));
      std::memcpy(at, &v, 2);
      return;
    }
    case DType::Int64: {
      const int64_t v = static_cast<int64_t>(value);
      std::memcpy(at, &v, 8);
      return;
    }
    case DType::Int32: {
      const int32_t v = static_cast<int32_t>(value);
      std::memcpy(at, &v, 4);
      return;
    }
  }
}

std::string DimsText(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i == 0 ? "" : ", ") + std::to_string(dims[i]);
  return text + "]";
}

}  // namespace

uint16_t FloatToHalf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0));
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past the largest half
  if (magnitude < 0x38800000u) {                                               // subnormal half (or zero)
    const float scaled = std::fabs(value) * 16777216.0f;                        // 2^24: units of the smallest subnormal
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  const uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);  // to nearest, ties to even
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = (bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? INFINITY : NAN;
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  uint32_t out;
  std::memcpy(&out, &magnitude, 4);
  out |= sign;
  float result;
  std::memcpy(&result, &out, 4);
  return result;
}

std::optional<Tensor> ConvertTensor(const Tensor& value, DType to, const std::vector<int64_t>& dims, std::string* error) {
  if (dims.size() != value.dims.size()) {
    *error = "shape " + DimsText(value.dims) + " cannot become " + DimsText(dims);
    return std::nullopt;
  }
  for (size_t axis = 0; axis < dims.size(); ++axis) {
    if (value.dims[axis] != dims[axis] && value.dims[axis] != 1) {
      *error = "shape " + DimsText(value.dims) + " cannot become " + DimsText(dims);
      return std::nullopt;
    }
  }
  const auto bytes = TensorBytes(to, dims);
  if (!bytes) {
    *error = "shape " + DimsText(dims) + " is too large";
    return std::nullopt;
  }
  Tensor out{to, dims, std::vector<uint8_t>(*bytes)};
  const size_t count = *bytes / DTypeSize(to);
  std::vector<size_t> index(dims.size(), 0);
  for (size_t flat = 0; flat < count; ++flat) {
    // The source element: the same index, 0 on the axes it repeats.
    size_t source = 0;
    for (size_t axis = 0; axis < dims.size(); ++axis) {
      source = source * static_cast<size_t>(value.dims[axis]) + (value.dims[axis] == 1 ? 0 : index[axis]);
    }
    Write(out, flat, Read(value, source));
    for (size_t axis = dims.size(); axis-- > 0;) {
      if (++index[axis] < static_cast<size_t>(dims[axis])) break;
      index[axis] = 0;
    }
  }
  return out;
}

}  // namespace sora::runner

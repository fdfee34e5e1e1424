// Tensors as a loaded CoreML model wants them: the contract sends integers as int64 and may send a one-head
// attention mask, while a package declares its own input types (token ids as float32, pads as int32) and shapes
// (masks with every head). The same conversions as src/runtime/coreml-tensors.ts on the Mac; portable C++ so that
// they are tested on Linux (runner_core_test.cc).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "frame.h"

namespace sora::runner {

// `value` with the element type `to`, its axes of size 1 repeated up to `dims` (same rank) when they differ;
// nullopt with `error` set when the shapes do not broadcast.
std::optional<Tensor> ConvertTensor(const Tensor& value, DType to, const std::vector<int64_t>& dims, std::string* error);

// IEEE half precision, round to nearest even.
uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);

}  // namespace sora::runner

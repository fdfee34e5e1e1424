// Conversions between the bridge's C++ values and CoreML objects. Call only from a dispatch queue's work
// (inside its autorelease pool), never from the JS thread.
#pragma once

#include <optional>
#include <string>

#include "bridge_types.h"
#include "coreml_imports.h"

namespace sora {

// A dense multi-array over `bytes`; the array shares ownership of them, so CoreML may keep it as long as it likes.
MLMultiArray* WrapBytes(const SharedBytes& bytes, const std::vector<int64_t>& shape, ElementType type, NSError** error);

// The element type of a multi-array data type; nullopt for types the bridge does not handle (e.g. Int8).
std::optional<ElementType> ElementTypeOf(MLMultiArrayDataType type);

// A dense copy of a (possibly strided or padded) output; nullopt with `error` set when it cannot be read.
std::optional<OutputTensor> CopyOutput(NSString* name, MLMultiArray* array, BridgeError* error);

ModelInfo DescribeModel(MLModelDescription* description);

}  // namespace sora

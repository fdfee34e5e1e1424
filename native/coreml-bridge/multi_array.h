// Conversions between the bridge's C++ values and CoreML objects. Call only from a dispatch queue's work
// (inside its autorelease pool), never from the JS thread.
#pragma once

#include <optional>
#include <string>

#include "bridge_types.h"
#include "coreml_imports.h"

namespace sora {

// Wraps the input's memory without copying; the caller keeps that memory alive while the array lives.
MLMultiArray* WrapInput(const InputTensor& input, NSError** error);

// A dense copy of a (possibly strided or padded) output; nullopt with `error` set when it cannot be read.
std::optional<OutputTensor> CopyOutput(NSString* name, MLMultiArray* array, BridgeError* error);

ModelInfo DescribeModel(MLModelDescription* description);

}  // namespace sora

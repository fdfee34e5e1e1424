// The bridge's CoreML core, without Node: compiling a package, loading a compiled model on its own serial queue,
// predicting with multi-array inputs and outputs (output backings included), every Objective-C or C++ throw turned
// into an error. The Node addon (addon.mm) puts Promises on top of it; the iPhone runner app
// (ios/SoraRunner/coreml_executor.mm) calls it synchronously from the runner's threads.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bridge_types.h"
#include "coreml_imports.h"

namespace sora {

// One model and its serial queue: its load, predictions and unload run in call order, while the queues of
// other models run concurrently (one model loading while another predicts is what CI-DL relies on).
struct ModelSlot {
  std::string name;
  dispatch_queue_t queue;
  MLModel* model;  // touched only on `queue`
};

// A slot with a fresh serial queue named after the model, and no model yet.
ModelSlot MakeModelSlot(const std::string& name);

// all | cpu | cpu-gpu | cpu-ane, as the manifest and --compute-units name them.
std::optional<MLComputeUnits> ParseComputeUnits(const std::string& name);

BridgeError ErrorFrom(NSError* error);
BridgeError ErrorFrom(std::string detail);

// Runs `work` inside an autorelease pool (CoreML's autoreleased outputs, often hundreds of MB, go as soon as it
// ends), returning what it returns or, when it throws anything at all, that as an error. Anything escaping a
// dispatch block terminates the process, so queued work goes through here.
std::optional<BridgeError> RunCatchingAll(const std::function<std::optional<BridgeError>()>& work);

// Compiles the .mlpackage/.mlmodel at `packagePath` into `compiledPath` (its folder made as needed); another
// process that cached the same package meanwhile counts as success.
std::optional<BridgeError> CompileModelTo(const std::string& packagePath, const std::string& compiledPath);

// Loads the compiled model into `slot` (call on its queue); `described`, when given, receives its features.
std::optional<BridgeError> LoadCompiledModel(ModelSlot& slot, const std::string& compiledPath, MLComputeUnits units,
                                             ModelInfo* described);

// One prediction (call on the slot's queue). The outputs are dense; those named in `requests` are written straight
// into memory the caller then owns when CoreML accepts the backing (wroteInPlace).
std::optional<BridgeError> PredictWithSlot(const ModelSlot& slot, const std::vector<InputTensor>& inputs,
                                           const std::vector<OutputRequest>& requests, std::vector<OutputTensor>* outputs);

}  // namespace sora

// Work on dispatch queues, settled as JS Promises on the JS thread through a thread-safe function.
#pragma once

#include <napi.h>

#include <functional>
#include <optional>
#include <string>

#include "bridge_types.h"
#include "coreml_imports.h"

namespace sora {

// Builds the resolution value; runs on the JS thread after the queued work finished.
using ValueBuilder = std::function<Napi::Value(Napi::Env)>;

// The outcome of queued work: a value builder, or the error to reject with.
struct Settlement {
  ValueBuilder value;
  std::optional<BridgeError> error;
};

Settlement Resolve(ValueBuilder value);
Settlement Reject(std::string detail);
Settlement Reject(NSError* error);

using QueuedWork = std::function<Settlement()>;

// Runs `work` on `queue` inside an autorelease pool, turning anything it throws (C++ or Objective-C, exception
// classes or not) into a rejection. Rejections are Errors whose message is "<modelName>: <detail>", with `model`,
// `detail` and, for NSErrors, `domain` and `errorCode` properties. `work` must own everything it touches: when
// the JS environment is torn down while it runs, its result is dropped and nothing of JS is left for it to read.
Napi::Promise RunOnQueue(Napi::Env env, dispatch_queue_t queue, std::string modelName, QueuedWork work);

}  // namespace sora

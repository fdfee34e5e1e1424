// Work on dispatch queues, settled as JS Promises on the JS thread through a thread-safe function.
#pragma once

#include <napi.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

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

// Runs `work` on `queue` inside an autorelease pool, turning Objective-C and C++ exceptions into rejections.
// Rejections are Errors whose message is "<modelName>: <detail>", with `model`, `detail` and, for NSErrors,
// `domain` and `errorCode` properties. The `lent` objects (input buffers `work` reads without copying) stay
// referenced until the Promise settles.
Napi::Promise RunOnQueue(Napi::Env env, dispatch_queue_t queue, std::string modelName,
                         std::vector<Napi::ObjectReference> lent, QueuedWork work);

}  // namespace sora

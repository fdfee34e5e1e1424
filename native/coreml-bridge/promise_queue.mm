#include "promise_queue.h"

#include <exception>
#include <memory>
#include <utility>

#include "ns_string.h"

namespace sora {
namespace {

struct PendingCall {
  Napi::Promise::Deferred deferred;
  std::string modelName;
  std::vector<Napi::ObjectReference> lent;
  Settlement settlement;
};

Napi::Value ToJsError(Napi::Env env, const std::string& modelName, const BridgeError& error) {
  Napi::Error jsError = Napi::Error::New(env, modelName + ": " + error.detail);
  jsError.Set("model", Napi::String::New(env, modelName));
  jsError.Set("detail", Napi::String::New(env, error.detail));
  if (!error.domain.empty()) {
    jsError.Set("domain", Napi::String::New(env, error.domain));
    jsError.Set("errorCode", Napi::Number::New(env, static_cast<double>(error.code)));
  }
  return jsError.Value();
}

// Called on the JS thread; env is null when the environment is being torn down.
void Settle(Napi::Env env, Napi::Function, std::nullptr_t*, PendingCall* call) {
  const std::unique_ptr<PendingCall> owned(call);
  if (env == nullptr) {
    // References cannot be deleted without a live environment; teardown frees them.
    for (auto& reference : owned->lent) reference.SuppressDestruct();
    return;
  }
  if (owned->settlement.error) {
    owned->deferred.Reject(ToJsError(env, owned->modelName, *owned->settlement.error));
  } else {
    owned->deferred.Resolve(owned->settlement.value(env));
  }
}

using SettleFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, PendingCall, Settle>;

Settlement RunGuarded(const QueuedWork& work) {
  // The pool releases CoreML's autoreleased outputs (often hundreds of MB) as soon as the work ends.
  @autoreleasepool {
    @try {
      try {
        return work();
      } catch (const std::exception& error) {
        return Reject(error.what());
      }
    } @catch (NSException* exception) {
      return Reject(ToStdString(exception.reason ?: exception.name));
    }
  }
}

}  // namespace

Settlement Resolve(ValueBuilder value) {
  return Settlement{std::move(value), std::nullopt};
}

Settlement Reject(std::string detail) {
  return Settlement{nullptr, BridgeError{std::move(detail), "", 0}};
}

Settlement Reject(NSError* error) {
  if (error == nil) return Reject("CoreML failed without an error description");
  return Settlement{nullptr, BridgeError{ToStdString(error.localizedDescription), ToStdString(error.domain),
                                         static_cast<int64_t>(error.code)}};
}

Napi::Promise RunOnQueue(Napi::Env env, dispatch_queue_t queue, std::string modelName,
                         std::vector<Napi::ObjectReference> lent, QueuedWork work) {
  auto* call = new PendingCall{Napi::Promise::Deferred::New(env), std::move(modelName), std::move(lent), {}};
  const Napi::Promise promise = call->deferred.Promise();
  // One thread-safe function per call keeps the event loop alive exactly while work is pending.
  const SettleFunction settle = SettleFunction::New(env, "sora_coreml", 0, 1);
  dispatch_async(queue, ^{
    call->settlement = RunGuarded(work);
    settle.BlockingCall(call);
    settle.Release();
  });
  return promise;
}

}  // namespace sora

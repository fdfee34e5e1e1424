#include "promise_queue.h"

#include <exception>
#include <memory>
#include <utility>

#include "coreml_core.h"

namespace sora {
namespace {

// Holds no JS references, so it can be freed on any thread (the dispatch queue frees it when the environment
// is gone and the settlement cannot be delivered).
struct PendingCall {
  Napi::Promise::Deferred deferred;
  std::string modelName;
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

// Called on the JS thread; env is null when the environment is being torn down (the Promise is then moot).
void Settle(Napi::Env env, Napi::Function, std::nullptr_t*, PendingCall* call) {
  const std::unique_ptr<PendingCall> owned(call);
  if (env == nullptr) return;
  if (owned->settlement.error) {
    owned->deferred.Reject(ToJsError(env, owned->modelName, *owned->settlement.error));
  } else {
    owned->deferred.Resolve(owned->settlement.value(env));
  }
}

using SettleFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, PendingCall, Settle>;

Settlement RunGuarded(const QueuedWork& work) {
  Settlement settlement;
  const auto error = RunCatchingAll([&]() {
    settlement = work();
    return settlement.error;
  });
  return error ? Settlement{nullptr, *error} : settlement;
}

}  // namespace

Settlement Resolve(ValueBuilder value) {
  return Settlement{std::move(value), std::nullopt};
}

Settlement Reject(std::string detail) {
  return Settlement{nullptr, ErrorFrom(std::move(detail))};
}

Settlement Reject(NSError* error) {
  return Settlement{nullptr, ErrorFrom(error)};
}

Napi::Promise RunOnQueue(Napi::Env env, dispatch_queue_t queue, std::string modelName, QueuedWork work) {
  auto* call = new PendingCall{Napi::Promise::Deferred::New(env), std::move(modelName), {}};
  const Napi::Promise promise = call->deferred.Promise();
  // One thread-safe function per call keeps the event loop alive exactly while work is pending.
  const SettleFunction settle = SettleFunction::New(env, "sora_coreml", 0, 1);
  if (static_cast<napi_threadsafe_function>(settle) == nullptr) {
    // Creation fails with a pending JS exception (e.g. the environment is closing): reject with it, queue nothing.
    const std::unique_ptr<PendingCall> owned(call);
    const Napi::Value reason = env.IsExceptionPending() ? env.GetAndClearPendingException().Value()
                                                         : Napi::Error::New(env, owned->modelName + ": cannot queue the call").Value();
    owned->deferred.Reject(reason);
    return promise;
  }
  dispatch_async(queue, ^{
    call->settlement = RunGuarded(work);
    // napi_closing: the environment is being torn down and will never run Settle, so the call is freed here
    // (it holds no JS references) instead of leaking with whatever the work produced.
    if (settle.BlockingCall(call) != napi_ok) delete call;
    settle.Release();
  });
  return promise;
}

}  // namespace sora

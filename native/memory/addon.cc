// JS bindings of sora_memory.node. The typed wrapper with pure-JS fallbacks is src/native/memory.ts.
#include <napi.h>

#include <functional>
#include <optional>
#include <string>

#include "page_cache.h"
#include "platform.h"

namespace {

// Bumped when the JS-visible API changes, so the wrapper can refuse a stale build.
constexpr uint32_t kApiVersion = 2;

// Byte counts stay below 2^53, so a JS number holds them exactly.
Napi::Value Bytes(Napi::Env env, uint64_t bytes) {
  return Napi::Number::New(env, static_cast<double>(bytes));
}

Napi::Value Bytes(Napi::Env env, const std::optional<uint64_t>& bytes) {
  return bytes ? Bytes(env, *bytes) : env.Null();
}

// The readers throw C++ exceptions; JS callers get them as Error exceptions.
Napi::Value Guarded(Napi::Env env, const std::function<Napi::Value()>& read) {
  try {
    return read();
  } catch (const std::exception& error) {
    Napi::Error::New(env, error.what()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

Napi::Value ProcessMemory(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return Guarded(env, [env]() -> Napi::Value {
    const auto memory = sora::ReadProcessMemory();
    Napi::Object result = Napi::Object::New(env);
    result.Set("rss", Bytes(env, memory.rss));
    result.Set("anonymous", Bytes(env, memory.anonymous));
    result.Set("fileBacked", Bytes(env, memory.fileBacked));
    result.Set("footprint", Bytes(env, memory.footprint));
    return result;
  });
}

Napi::Value PeakRss(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return Guarded(env, [env]() -> Napi::Value { return Bytes(env, sora::ReadPeakRss()); });
}

Napi::Value ResetPeakRss(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), sora::ResetPeakRss());
}

Napi::Value AvailableMemory(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return Guarded(env, [env]() -> Napi::Value {
    const auto memory = sora::ReadAvailableMemory();
    Napi::Object result = Napi::Object::New(env);
    result.Set("available", Bytes(env, memory.available));
    result.Set("total", Bytes(env, memory.total));
    result.Set("systemAvailable", Bytes(env, memory.systemAvailable));
    result.Set("cgroupLimit", Bytes(env, memory.cgroupLimit));
    result.Set("cgroupUsage", Bytes(env, memory.cgroupUsage));
    return result;
  });
}

Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), sora::TrimMallocHeap());
}

// Runs one page-cache operation on the libuv thread pool and settles a Promise with its byte count.
class FileTask final : public Napi::AsyncWorker {
 public:
  using Work = std::function<std::optional<uint64_t>()>;

  FileTask(Napi::Env env, Work work)
      : Napi::AsyncWorker(env, "sora_memory.file"), work_(std::move(work)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 private:
  void Execute() override {
    try {
      result_ = work_();
    } catch (const std::exception& error) {
      SetError(error.what());
    }
  }

  void OnOK() override { deferred_.Resolve(result_ ? Bytes(Env(), *result_) : Env().Undefined()); }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

  Work work_;
  Napi::Promise::Deferred deferred_;
  std::optional<uint64_t> result_;
};

std::optional<std::string> PathArgument(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(info.Env(), "the first argument must be a file path").ThrowAsJavaScriptException();
    return std::nullopt;
  }
  return info[0].As<Napi::String>().Utf8Value();
}

std::optional<uint64_t> ByteArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || info[index].IsUndefined()) return uint64_t{0};
  const double value = info[index].IsNumber() ? info[index].As<Napi::Number>().DoubleValue() : -1;
  if (!(value >= 0) || value != static_cast<double>(static_cast<uint64_t>(value))) {
    Napi::TypeError::New(info.Env(), std::string(name) + " must be a non-negative integer")
        .ThrowAsJavaScriptException();
    return std::nullopt;
  }
  return static_cast<uint64_t>(value);
}

Napi::Value Queue(Napi::Env env, FileTask::Work work) {
  auto* task = new FileTask(env, std::move(work));  // AsyncWorker deletes itself once settled
  const Napi::Promise promise = task->Promise();
  task->Queue();
  return promise;
}

Napi::Value PrefetchFile(const Napi::CallbackInfo& info) {
  const auto path = PathArgument(info);
  if (!path) return info.Env().Undefined();
  const auto offset = ByteArgument(info, 1, "offset");
  if (!offset) return info.Env().Undefined();
  const auto length = ByteArgument(info, 2, "length");
  if (!length) return info.Env().Undefined();
  return Queue(info.Env(), [path = *path, offset = *offset, length = *length]() -> std::optional<uint64_t> {
    return sora::PrefetchFile(path, offset, length);
  });
}

Napi::Value EvictFile(const Napi::CallbackInfo& info) {
  const auto path = PathArgument(info);
  if (!path) return info.Env().Undefined();
  return Queue(info.Env(), [path = *path]() -> std::optional<uint64_t> {
    sora::EvictFile(path);
    return std::nullopt;
  });
}

Napi::Value ResidentBytes(const Napi::CallbackInfo& info) {
  const auto path = PathArgument(info);
  if (!path) return info.Env().Undefined();
  return Queue(info.Env(), [path = *path]() -> std::optional<uint64_t> { return sora::ResidentBytes(path); });
}

Napi::Value SetMmapThreshold(const Napi::CallbackInfo& info) {
  const auto bytes = ByteArgument(info, 0, "bytes");
  if (!bytes) return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), sora::SetMmapThreshold(*bytes));
}

Napi::Object Capabilities(Napi::Env env) {
  const auto platform = sora::PlatformCapabilities();
  Napi::Object capabilities = Napi::Object::New(env);
  capabilities.Set("mallocTrim", platform.mallocTrim);
  capabilities.Set("resetPeakRss", platform.resetPeakRss);
  capabilities.Set("mmapThreshold", platform.mmapThreshold);
  capabilities.Set("pageCache", true);
  return capabilities;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("apiVersion", kApiVersion);
  exports.Set("capabilities", Capabilities(env));
  exports.Set("processMemory", Napi::Function::New(env, ProcessMemory, "processMemory"));
  exports.Set("peakRss", Napi::Function::New(env, PeakRss, "peakRss"));
  exports.Set("resetPeakRss", Napi::Function::New(env, ResetPeakRss, "resetPeakRss"));
  exports.Set("availableMemory", Napi::Function::New(env, AvailableMemory, "availableMemory"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
  exports.Set("setMmapThreshold", Napi::Function::New(env, SetMmapThreshold, "setMmapThreshold"));
  exports.Set("prefetchFile", Napi::Function::New(env, PrefetchFile, "prefetchFile"));
  exports.Set("evictFile", Napi::Function::New(env, EvictFile, "evictFile"));
  exports.Set("residentBytes", Napi::Function::New(env, ResidentBytes, "residentBytes"));
  return exports;
}

}  // namespace

NODE_API_MODULE(sora_memory, Init)

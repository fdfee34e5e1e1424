// sora_coreml.node: compiles, loads, runs and unloads CoreML models off the JS thread.
// The typed wrapper is src/native/coreml.ts; the Backend on top of it is src/runtime/coreml-backend.ts.
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "coreml_core.h"
#include "coreml_imports.h"
#include "promise_queue.h"
#include "strided_copy.h"

namespace sora {
namespace {

// Bumped when the JS-visible API changes, so the wrapper can refuse a stale build.
// 2: raw NSRange shape ranges, inputs copied, expected output shapes (output backings), `inPlace` on outputs.
constexpr uint32_t kApiVersion = 2;

// Input element types and the typed array that must carry each (float16 travels as raw bits).
std::optional<std::pair<ElementType, napi_typedarray_type>> ParseInputType(const std::string& name) {
  if (name == "float32") return std::make_pair(ElementType::Float32, napi_float32_array);
  if (name == "float16") return std::make_pair(ElementType::Float16, napi_uint16_array);
  if (name == "int32") return std::make_pair(ElementType::Int32, napi_int32_array);
  return std::nullopt;
}

// Argument errors are bugs of the TypeScript wrapper, not of the model: they throw TypeErrors synchronously.
Napi::Value ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

std::optional<std::string> StringArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsString()) {
    ThrowTypeError(info.Env(), std::string(name) + " must be a string");
    return std::nullopt;
  }
  return info[index].As<Napi::String>().Utf8Value();
}

std::optional<uint32_t> IdArgument(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowTypeError(info.Env(), "the model id must be a number");
    return std::nullopt;
  }
  return info[0].As<Napi::Number>().Uint32Value();
}

std::optional<std::vector<int64_t>> ParseShape(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) {
    ThrowTypeError(env, "shape must be an array");
    return std::nullopt;
  }
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t axis = 0; axis < array.Length(); ++axis) {
    const Napi::Value size = array.Get(axis);
    const double number = size.IsNumber() ? size.As<Napi::Number>().DoubleValue() : -1;
    if (!(number >= 0) || number != static_cast<double>(static_cast<int64_t>(number))) {
      ThrowTypeError(env, "shape sizes must be non-negative integers");
      return std::nullopt;
    }
    shape.push_back(static_cast<int64_t>(number));
  }
  return shape;
}

// Reads one {name, dataType, shape, data} input and copies its bytes into native memory. Reading the typed array
// in place would leave CoreML reading memory that JS can pull away meanwhile (a transfer to a worker, an
// ArrayBuffer.prototype.transfer, a closing environment), and N-API has no way to pin it; the copy costs one
// memcpy per input, and the output backings save one copy per output in exchange.
std::optional<InputTensor> ParseInput(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) {
    ThrowTypeError(env, "each input must be an object");
    return std::nullopt;
  }
  const Napi::Object input = value.As<Napi::Object>();
  if (!input.Get("name").IsString()) {
    ThrowTypeError(env, "input name must be a string");
    return std::nullopt;
  }
  const std::string name = input.Get("name").As<Napi::String>().Utf8Value();
  const Napi::Value dataType = input.Get("dataType");
  const auto type = dataType.IsString() ? ParseInputType(dataType.As<Napi::String>().Utf8Value()) : std::nullopt;
  if (!type) {
    ThrowTypeError(env, "input " + name + ": dataType must be float32, float16 or int32");
    return std::nullopt;
  }
  const auto shape = ParseShape(env, input.Get("shape"));
  if (!shape) return std::nullopt;
  const Napi::Value data = input.Get("data");
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != type->second) {
    ThrowTypeError(env, "input " + name + ": data must be the typed array of its dataType");
    return std::nullopt;
  }
  const Napi::TypedArray array = data.As<Napi::TypedArray>();
  const auto byteLength = ByteLength(*shape, ElementSize(type->first));
  if (!byteLength || array.ByteLength() != *byteLength) {
    ThrowTypeError(env, "input " + name + ": data length does not match its shape");
    return std::nullopt;
  }
  SharedBytes bytes = AllocateBytes(*byteLength);
  if (bytes == nullptr) {
    Napi::RangeError::New(env, "input " + name + ": cannot allocate " + std::to_string(*byteLength) + " bytes")
        .ThrowAsJavaScriptException();
    return std::nullopt;
  }
  std::memcpy(bytes.get(), static_cast<const unsigned char*>(array.ArrayBuffer().Data()) + array.ByteOffset(), *byteLength);
  return InputTensor{name, type->first, *shape, std::move(bytes)};
}

// Reads the optional {name: shape} of outputs expected from this prediction. Sizes are checked here (a request
// whose bytes overflow is a caller bug); whether the model accepts a backing of that shape is CoreML's call.
std::optional<std::vector<OutputRequest>> ParseOutputRequests(Napi::Env env, Napi::Value value) {
  std::vector<OutputRequest> requests;
  if (value.IsUndefined() || value.IsNull()) return requests;
  if (!value.IsObject()) {
    ThrowTypeError(env, "outputShapes must be an object");
    return std::nullopt;
  }
  const Napi::Object shapes = value.As<Napi::Object>();
  const Napi::Array names = shapes.GetPropertyNames();
  for (uint32_t index = 0; index < names.Length(); ++index) {
    const std::string name = names.Get(index).As<Napi::String>().Utf8Value();
    const auto shape = ParseShape(env, shapes.Get(name));
    if (!shape) return std::nullopt;
    // The element size is not known before the model's output type is; 8 bytes bounds every type the bridge reads.
    const auto byteLength = ByteLength(*shape, 8);
    if (!byteLength) {
      ThrowTypeError(env, "outputShapes." + name + ": the shape is too large");
      return std::nullopt;
    }
    requests.push_back(OutputRequest{name, *shape});
  }
  return requests;
}

Napi::Array ShapeToJs(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array array = Napi::Array::New(env, shape.size());
  for (uint32_t axis = 0; axis < shape.size(); ++axis) array.Set(axis, static_cast<double>(shape[axis]));
  return array;
}

Napi::Object ShapeConstraintToJs(Napi::Env env, const FeatureInfo& feature) {
  Napi::Object constraint = Napi::Object::New(env);
  switch (feature.shapeKind) {
    case FeatureInfo::ShapeKind::Unspecified:
      constraint.Set("kind", "unspecified");
      break;
    case FeatureInfo::ShapeKind::Range: {
      constraint.Set("kind", "range");
      Napi::Array ranges = Napi::Array::New(env, feature.ranges.size());
      for (uint32_t axis = 0; axis < feature.ranges.size(); ++axis) {
        // Doubles: an "unbounded" length near NSUIntegerMax loses precision, which the reader's threshold allows.
        Napi::Object range = Napi::Object::New(env);
        range.Set("location", static_cast<double>(feature.ranges[axis].first));
        range.Set("length", static_cast<double>(feature.ranges[axis].second));
        ranges.Set(axis, range);
      }
      constraint.Set("ranges", ranges);
      break;
    }
    case FeatureInfo::ShapeKind::Enumerated: {
      constraint.Set("kind", "enumerated");
      Napi::Array shapes = Napi::Array::New(env, feature.enumeratedShapes.size());
      for (uint32_t index = 0; index < feature.enumeratedShapes.size(); ++index) {
        shapes.Set(index, ShapeToJs(env, feature.enumeratedShapes[index]));
      }
      constraint.Set("shapes", shapes);
      break;
    }
  }
  return constraint;
}

Napi::Array FeaturesToJs(Napi::Env env, const std::vector<FeatureInfo>& features) {
  Napi::Array array = Napi::Array::New(env, features.size());
  for (uint32_t index = 0; index < features.size(); ++index) {
    const FeatureInfo& feature = features[index];
    Napi::Object described = Napi::Object::New(env);
    described.Set("name", feature.name);
    described.Set("dataType", feature.type ? Napi::Value(Napi::String::New(env, ElementTypeName(*feature.type))) : env.Null());
    described.Set("shape", ShapeToJs(env, feature.shape));
    described.Set("shapeConstraint", ShapeConstraintToJs(env, feature));
    array.Set(index, described);
  }
  return array;
}

// Hands each output's buffer to a JS ArrayBuffer without another copy; the ArrayBuffer's finalizer drops its
// share of the memory (CoreML may still hold another through the backing's deallocator).
Napi::Object OutputsToJs(Napi::Env env, const std::vector<OutputTensor>& outputs) {
  Napi::Object result = Napi::Object::New(env);
  for (const OutputTensor& output : outputs) {
    Napi::ArrayBuffer buffer =
        output.byteLength == 0
            ? Napi::ArrayBuffer::New(env, 0)
            : Napi::ArrayBuffer::New(env, output.data.get(), output.byteLength,
                                     [](Napi::Env, void*, SharedBytes* share) { delete share; }, new SharedBytes(output.data));
    Napi::Object tensor = Napi::Object::New(env);
    tensor.Set("dataType", ElementTypeName(output.type));
    tensor.Set("shape", ShapeToJs(env, output.shape));
    tensor.Set("data", buffer);
    tensor.Set("inPlace", output.wroteInPlace);
    result.Set(output.name, tensor);
  }
  return result;
}

Settlement Settled(const std::optional<BridgeError>& error, ValueBuilder value) {
  return error ? Settlement{nullptr, *error} : Resolve(std::move(value));
}

Settlement CompileInto(const std::string& packagePath, const std::string& compiledPath) {
  return Settled(CompileModelTo(packagePath, compiledPath), [](Napi::Env env) { return env.Undefined(); });
}

Settlement PredictWith(const ModelSlot& slot, const std::vector<InputTensor>& inputs,
                       const std::vector<OutputRequest>& requests) {
  auto outputs = std::make_shared<std::vector<OutputTensor>>();
  const auto error = PredictWithSlot(slot, inputs, requests, outputs.get());
  return Settled(error, [outputs](Napi::Env env) -> Napi::Value { return OutputsToJs(env, *outputs); });
}

Napi::Value ModelToJs(Napi::Env env, uint32_t modelId, const ModelInfo& described) {
  Napi::Object model = Napi::Object::New(env);
  model.Set("id", modelId);
  model.Set("inputs", FeaturesToJs(env, described.inputs));
  model.Set("outputs", FeaturesToJs(env, described.outputs));
  return model;
}

// Loads the compiled model into `slot`; `onLoaded` then builds the JS result on the JS thread.
Settlement LoadInto(ModelSlot& slot, const std::string& compiledPath, MLComputeUnits units,
                    std::function<Napi::Value(Napi::Env, const ModelInfo&)> onLoaded) {
  ModelInfo described;
  const auto error = LoadCompiledModel(slot, compiledPath, units, &described);
  return Settled(error, [onLoaded, described](Napi::Env env) { return onLoaded(env, described); });
}

class CoreMLBridge : public Napi::Addon<CoreMLBridge> {
 public:
  CoreMLBridge(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
        InstanceValue("apiVersion", Napi::Number::New(env, kApiVersion), napi_enumerable),
        InstanceMethod<&CoreMLBridge::CompileModel>("compileModel"),
        InstanceMethod<&CoreMLBridge::LoadModel>("loadModel"),
        InstanceMethod<&CoreMLBridge::Predict>("predict"),
        InstanceMethod<&CoreMLBridge::UnloadModel>("unloadModel"),
    });
  }

 private:
  // compileModel(name, packagePath, compiledPath): Promise<void>
  Napi::Value CompileModel(const Napi::CallbackInfo& info) {
    const auto name = StringArgument(info, 0, "name");
    const auto packagePath = StringArgument(info, 1, "packagePath");
    const auto compiledPath = StringArgument(info, 2, "compiledPath");
    if (!name || !packagePath || !compiledPath) return info.Env().Undefined();
    dispatch_queue_t queue = dispatch_get_global_queue(QOS_CLASS_USER_INITIATED, 0);
    return RunOnQueue(info.Env(), queue, *name, [packagePath = *packagePath, compiledPath = *compiledPath]() {
      return CompileInto(packagePath, compiledPath);
    });
  }

  // loadModel(name, compiledPath, computeUnits): Promise<{id, inputs, outputs}>
  Napi::Value LoadModel(const Napi::CallbackInfo& info) {
    const auto name = StringArgument(info, 0, "name");
    const auto path = StringArgument(info, 1, "compiledPath");
    const auto unitsName = StringArgument(info, 2, "computeUnits");
    if (!name || !path || !unitsName) return info.Env().Undefined();
    const auto units = ParseComputeUnits(*unitsName);
    if (!units) return ThrowTypeError(info.Env(), "computeUnits must be all, cpu, cpu-gpu or cpu-ane");
    auto slot = std::make_shared<ModelSlot>(MakeModelSlot(*name));
    const uint32_t modelId = nextId_++;
    return RunOnQueue(info.Env(), slot->queue, *name, [this, slot, modelId, path = *path, units = *units]() {
      return LoadInto(*slot, path, units, [this, slot, modelId](Napi::Env env, const ModelInfo& described) {
        models_[modelId] = slot;  // registered once loaded, so a failed load leaves nothing behind
        return ModelToJs(env, modelId, described);
      });
    });
  }

  // predict(id, inputs: {name, dataType, shape, data}[], outputShapes?: Record<name, shape>):
  //   Promise<Record<name, {dataType, shape, data, inPlace}>>
  // The inputs are copied before predict returns, so the caller may reuse or give away its buffers at once.
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const auto slot = SlotArgument(info);
    if (!slot) return env.Undefined();
    if (info.Length() < 2 || !info[1].IsArray()) return ThrowTypeError(env, "inputs must be an array");
    const Napi::Array list = info[1].As<Napi::Array>();
    std::vector<InputTensor> inputs;
    for (uint32_t index = 0; index < list.Length(); ++index) {
      auto input = ParseInput(env, list.Get(index));
      if (!input) return env.Undefined();
      inputs.push_back(std::move(*input));
    }
    auto requests = ParseOutputRequests(env, info.Length() > 2 ? info[2] : env.Undefined());
    if (!requests) return env.Undefined();
    return RunOnQueue(env, slot->queue, slot->name, [slot, inputs = std::move(inputs), requests = std::move(*requests)]() {
      return PredictWith(*slot, inputs, requests);
    });
  }

  // unloadModel(id): Promise<void>; predictions already queued for the model finish first.
  Napi::Value UnloadModel(const Napi::CallbackInfo& info) {
    const auto slot = SlotArgument(info);
    if (!slot) return info.Env().Undefined();
    models_.erase(info[0].As<Napi::Number>().Uint32Value());
    return RunOnQueue(info.Env(), slot->queue, slot->name, [slot]() {
      slot->model = nil;
      return Resolve([](Napi::Env env) { return env.Undefined(); });
    });
  }

  std::shared_ptr<ModelSlot> SlotArgument(const Napi::CallbackInfo& info) {
    // Not named `id`: that is an Objective-C type, and GNUstep's nil macro expands to (id)0.
    const auto modelId = IdArgument(info);
    if (!modelId) return nullptr;
    const auto found = models_.find(*modelId);
    if (found == models_.end()) {
      Napi::Error::New(info.Env(), "unknown CoreML model id " + std::to_string(*modelId)).ThrowAsJavaScriptException();
      return nullptr;
    }
    return found->second;
  }

  std::unordered_map<uint32_t, std::shared_ptr<ModelSlot>> models_;  // JS thread only
  uint32_t nextId_ = 1;
};

}  // namespace
}  // namespace sora

using sora::CoreMLBridge;  // NODE_API_ADDON pastes the name into an identifier
NODE_API_ADDON(CoreMLBridge)

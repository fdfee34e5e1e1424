#include "coreml_executor.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "coreml_core.h"
#include "device_imports.h"
#include "ns_string.h"
#include "tensor_convert.h"

namespace sora::runner {

struct CoreMLExecutor::Loaded {
  std::string name;
  std::unique_ptr<ModelSlot> slot;
  ModelInfo described;
};

namespace {

std::optional<DType> RunnerType(ElementType type) {
  switch (type) {
    case ElementType::Float32: return DType::Float32;
    case ElementType::Float16: return DType::Float16;
    case ElementType::Int32: return DType::Int32;
    case ElementType::Float64: return std::nullopt;  // handed back as float32 (below)
  }
  return std::nullopt;
}

ElementType BridgeType(DType type) {
  switch (type) {
    case DType::Float16: return ElementType::Float16;
    case DType::Int32: return ElementType::Int32;
    case DType::Float32:
    case DType::Int64: return ElementType::Float32;  // CoreML has no int64 multi-arrays
  }
  return ElementType::Float32;
}

std::string Describe(const BridgeError& error) {
  return error.domain.empty() ? error.detail : error.detail + " (" + error.domain + " " + std::to_string(error.code) + ")";
}

// An input as the loaded model declares it: its type, and its shape when the model takes only one.
Outcome<InputTensor> ModelInput(const std::string& block, const FeatureInfo& feature, const Tensor& value) {
  const std::optional<DType> wanted = feature.type ? RunnerType(*feature.type) : value.dtype;
  if (!wanted) return Outcome<InputTensor>::fail("bad-tensor", block + ": input " + feature.name + " is float64, which the runner does not feed");
  const DType declared = *wanted;
  const bool fixed = feature.shapeKind == FeatureInfo::ShapeKind::Unspecified && !feature.shape.empty();
  std::string problem;
  const auto converted = ConvertTensor(value, declared == DType::Int64 ? DType::Int32 : declared, fixed ? feature.shape : value.dims, &problem);
  if (!converted) return Outcome<InputTensor>::fail("bad-tensor", block + ": input " + feature.name + ": " + problem);
  SharedBytes bytes = AllocateBytes(converted->data.size());
  if (bytes == nullptr) return Outcome<InputTensor>::fail("out-of-memory", block + ": input " + feature.name + " does not fit in memory");
  if (!converted->data.empty()) std::memcpy(bytes.get(), converted->data.data(), converted->data.size());
  return Outcome<InputTensor>::ok(InputTensor{feature.name, BridgeType(converted->dtype), converted->dims, std::move(bytes)});
}

TensorRef RunnerOutput(const OutputTensor& output) {
  auto tensor = std::make_shared<Tensor>();
  tensor->dims = output.shape;
  if (output.type == ElementType::Float64) {
    tensor->dtype = DType::Float32;
    tensor->data.resize(output.byteLength / 2);
    for (size_t i = 0; i < output.byteLength / 8; ++i) {
      double value;
      std::memcpy(&value, output.data.get() + i * 8, 8);
      const float narrow = static_cast<float>(value);
      std::memcpy(tensor->data.data() + i * 4, &narrow, 4);
    }
    return tensor;
  }
  tensor->dtype = *RunnerType(output.type);
  tensor->data.assign(output.data.get(), output.data.get() + output.byteLength);
  return tensor;
}

std::optional<Json> ReadJsonFile(const std::string& path, std::string* error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    *error = path + ": cannot be read";
    return std::nullopt;
  }
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  JsonError problem;
  auto parsed = ParseJson(text, &problem, 64);
  if (!parsed) *error = path + ": " + problem.message;
  return parsed;
}

}  // namespace

std::unique_ptr<CoreMLExecutor> CoreMLExecutor::Open(const std::string& modelDir, const std::string& cacheDir, std::string* error) {
  auto manifest = ReadJsonFile(modelDir + "/manifest.json", error);
  if (!manifest) return nullptr;
  const Json* blocks = manifest->find("blocks");
  if (blocks == nullptr || !blocks->isArray()) {
    *error = modelDir + "/manifest.json: no blocks";
    return nullptr;
  }
  std::map<std::string, Declared> declared;
  for (const Json& block : blocks->asArray()) {
    const Json* name = block.find("name");
    const Json* format = block.find("format");
    const Json* files = block.find("files");
    if (name == nullptr || !name->isString() || files == nullptr || !files->isArray()) continue;
    if (format == nullptr || format->asString() != "coreml") {
      *error = "block " + name->asString() + " is not a CoreML package: copy a CoreML model folder (models/tiny-coreml, a converted one)";
      return nullptr;
    }
    Declared entry;
    for (const Json& file : files->asArray()) {
      const Json* role = file.find("role");
      if (role == nullptr || role->asString() != "graph") continue;
      entry.package = modelDir + "/" + file.find("path")->asString();
      const Json* digest = file.find("sha256");
      entry.digest = digest != nullptr && digest->isString() ? digest->asString().substr(0, 16) : "nodigest";
    }
    const Json* units = block.find("computeUnits");
    entry.computeUnits = units != nullptr && units->isString() ? units->asString() : "all";
    const Json* weights = block.find("weightBytes");
    entry.weightBytes = weights != nullptr && weights->isInteger() ? static_cast<uint64_t>(weights->asInteger()) : 0;
    declared.emplace(name->asString(), std::move(entry));
  }
  return std::unique_ptr<CoreMLExecutor>(new CoreMLExecutor(cacheDir, std::move(*manifest), std::move(declared)));
}

CoreMLExecutor::CoreMLExecutor(std::string cacheDir, Json manifest, std::map<std::string, Declared> blocks)
    : cacheDir_(std::move(cacheDir)), manifest_(std::move(manifest)), blocks_(std::move(blocks)) {}

CoreMLExecutor::~CoreMLExecutor() = default;

Json CoreMLExecutor::modelIdentity() const {
  const Json* name = manifest_.find("name");
  const Json* architecture = manifest_.find("architecture");
  return Json(Json::Object{{"name", name != nullptr ? *name : Json("unnamed")},
                           {"architecture", architecture != nullptr ? *architecture : Json(Json::Object{})}});
}

Outcome<ExecutorBlock> CoreMLExecutor::load(const std::string& name, const std::string& computeUnits) {
  const auto found = blocks_.find(name);
  if (found == blocks_.end()) return Outcome<ExecutorBlock>::fail("no-such-block", "the model on this iPhone has no block named " + name);
  const Declared& declared = found->second;
  const std::string unitsName = computeUnits.empty() ? declared.computeUnits : computeUnits;
  const auto units = ParseComputeUnits(unitsName);
  if (!units) return Outcome<ExecutorBlock>::fail("bad-request", name + ": unknown compute units " + unitsName);
  // Keyed by the package's digest: a model copied again with other weights compiles anew.
  const std::string compiled = cacheDir_ + "/" + name + "-" + declared.digest + ".mlmodelc";
  auto loaded = std::make_shared<Loaded>(Loaded{name, std::make_unique<ModelSlot>(MakeModelSlot(name)), {}});
  std::optional<BridgeError> failure;
  ModelSlot* slot = loaded->slot.get();
  ModelInfo* described = &loaded->described;
  std::optional<BridgeError>* outcome = &failure;
  const MLComputeUnits chosen = *units;
  const std::string package = declared.package;
  dispatch_sync(slot->queue, ^{
    *outcome = RunCatchingAll([&]() -> std::optional<BridgeError> {
      if (![[NSFileManager defaultManager] fileExistsAtPath:ToNSString(compiled)]) {
        if (auto error = CompileModelTo(package, compiled)) return error;
      }
      return LoadCompiledModel(*slot, compiled, chosen, described);
    });
  });
  if (failure) return Outcome<ExecutorBlock>::fail("load-failed", name + ": " + Describe(*failure));
  ExecutorBlock block;
  for (const FeatureInfo& input : loaded->described.inputs) block.inputs.push_back(input.name);
  for (const FeatureInfo& output : loaded->described.outputs) block.outputs.push_back(output.name);
  block.weightBytes = declared.weightBytes;
  std::lock_guard<std::mutex> lock(mutex_);
  block.id = nextId_++;
  loaded_[block.id] = loaded;
  return Outcome<ExecutorBlock>::ok(std::move(block));
}

Outcome<NamedTensors> CoreMLExecutor::run(int64_t block, const NamedTensors& inputs) {
  std::shared_ptr<Loaded> loaded;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = loaded_.find(block);
    if (found == loaded_.end()) return Outcome<NamedTensors>::fail("run-failed", "the block is not loaded");
    loaded = found->second;
  }
  std::vector<InputTensor> modelInputs;
  for (const FeatureInfo& feature : loaded->described.inputs) {
    const auto given = std::find_if(inputs.begin(), inputs.end(), [&](const auto& input) { return input.first == feature.name; });
    if (given == inputs.end()) return Outcome<NamedTensors>::fail("bad-request", loaded->name + ": input " + feature.name + " is missing");
    auto input = ModelInput(loaded->name, feature, *given->second);
    if (!input.value) return Outcome<NamedTensors>::fail(input.failure.code, input.failure.message);
    modelInputs.push_back(std::move(*input.value));
  }
  std::vector<OutputTensor> outputs;
  std::optional<BridgeError> failure;
  const ModelSlot* slot = loaded->slot.get();
  std::vector<InputTensor>* given = &modelInputs;
  std::vector<OutputTensor>* produced = &outputs;
  std::optional<BridgeError>* outcome = &failure;
  dispatch_sync(slot->queue, ^{
    *outcome = RunCatchingAll([&]() { return PredictWithSlot(*slot, *given, {}, produced); });
  });
  if (failure) return Outcome<NamedTensors>::fail("run-failed", loaded->name + ": " + Describe(*failure));
  NamedTensors named;
  for (const OutputTensor& output : outputs) named.emplace_back(output.name, RunnerOutput(output));
  return Outcome<NamedTensors>::ok(std::move(named));
}

void CoreMLExecutor::unload(int64_t block) {
  std::shared_ptr<Loaded> loaded;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = loaded_.find(block);
    if (found == loaded_.end()) return;
    loaded = found->second;
    loaded_.erase(found);
  }
  // Predictions already queued for the model finish first.
  ModelSlot* slot = loaded->slot.get();
  dispatch_sync(slot->queue, ^{
    slot->model = nil;
  });
}

Memory CoreMLExecutor::memory() { return ProcessMemory(); }

uint64_t CoreMLExecutor::weightBytes(const std::string& name) {
  const auto found = blocks_.find(name);
  return found == blocks_.end() ? 0 : found->second.weightBytes;
}

Memory ProcessMemory() {
  Memory memory;
  task_vm_info_data_t info{};
  mach_msg_type_number_t count = TASK_VM_INFO_COUNT;
  if (task_info(mach_task_self(), TASK_VM_INFO, reinterpret_cast<task_info_t>(&info), &count) == KERN_SUCCESS) {
    memory.inUse = info.phys_footprint;
  }
  memory.available = os_proc_available_memory();
  return memory;
}

}  // namespace sora::runner

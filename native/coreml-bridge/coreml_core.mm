#include "coreml_core.h"

#include <exception>
#include <unordered_map>
#include <utility>

#include "multi_array.h"
#include "ns_string.h"
#include "strided_copy.h"

namespace sora {
namespace {

// An output backing the bridge allocated: the memory, and the array CoreML writes into when it accepts it.
struct Backing {
  SharedBytes bytes;
  size_t byteLength;
  ElementType type;
  std::vector<int64_t> shape;
  MLMultiArray* array;
};

// Backings for the requested outputs the model declares as multi-arrays of a type the bridge reads. Apple:
// "The framework may not use the specified backing object"; the identity check in PredictWithSlot tells.
std::unordered_map<std::string, Backing> MakeBackings(MLModelDescription* description,
                                                      const std::vector<OutputRequest>& requests) {
  std::unordered_map<std::string, Backing> backings;
  for (const OutputRequest& request : requests) {
    MLFeatureDescription* feature = description.outputDescriptionsByName[ToNSString(request.name)];
    const auto type = feature.multiArrayConstraint == nil ? std::nullopt : ElementTypeOf(feature.multiArrayConstraint.dataType);
    if (!type) continue;
    const auto byteLength = ByteLength(request.shape, ElementSize(*type));
    SharedBytes bytes = byteLength ? AllocateBytes(*byteLength) : nullptr;
    if (bytes == nullptr) continue;  // no backing: CoreML allocates the output itself
    NSError* error = nil;
    MLMultiArray* array = WrapBytes(bytes, request.shape, *type, &error);
    if (array == nil) continue;
    backings.emplace(request.name, Backing{std::move(bytes), *byteLength, *type, request.shape, array});
  }
  return backings;
}

}  // namespace

ModelSlot MakeModelSlot(const std::string& name) {
  const std::string label = "ondevice-sora.coreml." + name;
  return ModelSlot{name, dispatch_queue_create(label.c_str(), DISPATCH_QUEUE_SERIAL), nil};
}

std::optional<MLComputeUnits> ParseComputeUnits(const std::string& name) {
  if (name == "all") return MLComputeUnitsAll;
  if (name == "cpu") return MLComputeUnitsCPUOnly;
  if (name == "cpu-gpu") return MLComputeUnitsCPUAndGPU;
  if (name == "cpu-ane") return MLComputeUnitsCPUAndNeuralEngine;
  return std::nullopt;
}

BridgeError ErrorFrom(NSError* error) {
  if (error == nil) return ErrorFrom("CoreML failed without an error description");
  return BridgeError{ToStdString(error.localizedDescription), ToStdString(error.domain), static_cast<int64_t>(error.code)};
}

BridgeError ErrorFrom(std::string detail) {
  return BridgeError{std::move(detail), "", 0};
}

std::optional<BridgeError> RunCatchingAll(const std::function<std::optional<BridgeError>()>& work) {
  // Objective-C inside (on Apple's runtime a C++ catch (...) would also take Objective-C exceptions and lose their
  // reason), C++ outside.
  @autoreleasepool {
    try {
      @try {
        return work();
      } @catch (NSException* exception) {
        return ErrorFrom(ToStdString(exception.reason ?: exception.name));
      } @catch (id thrown) {
        return ErrorFrom("Objective-C exception: " + ToStdString([thrown description]));
      }
    } catch (const std::exception& error) {
      return ErrorFrom(error.what());
    } catch (...) {
      return ErrorFrom("unknown C++ exception");
    }
  }
}

std::optional<BridgeError> CompileModelTo(const std::string& packagePath, const std::string& compiledPath) {
  NSError* error = nil;
  // Synchronous compile is fine here: callers run it off the main (or JS) thread.
  NSURL* compiled = [MLModel compileModelAtURL:[NSURL fileURLWithPath:ToNSString(packagePath)] error:&error];
  if (compiled == nil) return ErrorFrom(error);
  NSFileManager* files = [NSFileManager defaultManager];
  NSURL* destination = [NSURL fileURLWithPath:ToNSString(compiledPath)];
  if (![files createDirectoryAtURL:[destination URLByDeletingLastPathComponent]
          withIntermediateDirectories:YES
                           attributes:nil
                                error:&error]) {
    return ErrorFrom(error);
  }
  if (![files moveItemAtURL:compiled toURL:destination error:&error]) {
    // Another process may have cached the same package meanwhile; its compiled model is as good as ours.
    const bool cachedMeanwhile = [files fileExistsAtPath:destination.path];
    [files removeItemAtURL:compiled error:nullptr];
    if (!cachedMeanwhile) return ErrorFrom(error);
  }
  return std::nullopt;
}

std::optional<BridgeError> LoadCompiledModel(ModelSlot& slot, const std::string& compiledPath, MLComputeUnits units,
                                             ModelInfo* described) {
  MLModelConfiguration* configuration = [[MLModelConfiguration alloc] init];
  configuration.computeUnits = units;
  NSError* error = nil;
  slot.model = [MLModel modelWithContentsOfURL:[NSURL fileURLWithPath:ToNSString(compiledPath)]
                                 configuration:configuration
                                         error:&error];
  if (slot.model == nil) return ErrorFrom(error);
  if (described != nullptr) *described = DescribeModel(slot.model.modelDescription);
  return std::nullopt;
}

std::optional<BridgeError> PredictWithSlot(const ModelSlot& slot, const std::vector<InputTensor>& inputs,
                                           const std::vector<OutputRequest>& requests, std::vector<OutputTensor>* outputs) {
  if (slot.model == nil) return ErrorFrom("the model is not loaded");
  NSMutableDictionary<NSString*, MLFeatureValue*>* features = [NSMutableDictionary dictionary];
  NSError* error = nil;
  for (const InputTensor& input : inputs) {
    MLMultiArray* array = WrapBytes(input.data, input.shape, input.type, &error);
    if (array == nil) return ErrorFrom(error);
    [features setObject:[MLFeatureValue featureValueWithMultiArray:array] forKey:ToNSString(input.name)];
  }
  MLDictionaryFeatureProvider* provider = [[MLDictionaryFeatureProvider alloc] initWithDictionary:features error:&error];
  if (provider == nil) return ErrorFrom(error);
  // outputBackings: macOS 11+ / iOS 14+, below both deployment targets, so no availability check is needed.
  MLModelDescription* description = slot.model.modelDescription;
  const auto backings = MakeBackings(description, requests);
  NSMutableDictionary<NSString*, id>* backingObjects = [NSMutableDictionary dictionary];
  for (const auto& [name, backing] : backings) [backingObjects setObject:backing.array forKey:ToNSString(name)];
  MLPredictionOptions* options = [[MLPredictionOptions alloc] init];
  options.outputBackings = backingObjects;
  id<MLFeatureProvider> result = [slot.model predictionFromFeatures:provider options:options error:&error];
  if (result == nil) return ErrorFrom(error);

  NSDictionary<NSString*, MLFeatureDescription*>* declared = description.outputDescriptionsByName;
  for (NSString* name in [declared.allKeys sortedArrayUsingSelector:@selector(compare:)]) {
    MLMultiArray* array = [result featureValueForName:name].multiArrayValue;
    if (array == nil) return ErrorFrom("output " + ToStdString(name) + " is not a multi-array");
    const auto backing = backings.find(ToStdString(name));
    if (backing != backings.end() && array == backing->second.array) {
      const Backing& used = backing->second;
      outputs->push_back(OutputTensor{ToStdString(name), used.type, used.shape, used.bytes, used.byteLength, true});
      continue;
    }
    BridgeError copyError;
    auto output = CopyOutput(name, array, &copyError);
    if (!output) return copyError;
    outputs->push_back(std::move(*output));
  }
  return std::nullopt;
}

}  // namespace sora

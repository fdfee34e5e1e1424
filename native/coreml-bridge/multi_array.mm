#include "multi_array.h"

#include <cstdint>
#include <vector>

#include "ns_string.h"
#include "strided_copy.h"

namespace sora {

std::optional<ElementType> ElementTypeOf(MLMultiArrayDataType type) {
  switch (type) {
    case MLMultiArrayDataTypeFloat32: return ElementType::Float32;
    case MLMultiArrayDataTypeFloat16: return ElementType::Float16;
    case MLMultiArrayDataTypeInt32: return ElementType::Int32;
    case MLMultiArrayDataTypeDouble: return ElementType::Float64;
    default: return std::nullopt;  // types newer than the bridge, e.g. Int8
  }
}

namespace {

MLMultiArrayDataType MLDataTypeOf(ElementType type) {
  switch (type) {
    case ElementType::Float32: return MLMultiArrayDataTypeFloat32;
    case ElementType::Float16: return MLMultiArrayDataTypeFloat16;
    case ElementType::Int32: return MLMultiArrayDataTypeInt32;
    case ElementType::Float64: return MLMultiArrayDataTypeDouble;
  }
  return MLMultiArrayDataTypeFloat32;
}

NSArray<NSNumber*>* ToNumbers(const std::vector<int64_t>& values) {
  NSMutableArray<NSNumber*>* numbers = [NSMutableArray arrayWithCapacity:values.size()];
  for (const int64_t value : values) [numbers addObject:[NSNumber numberWithLongLong:value]];
  return numbers;
}

std::vector<int64_t> FromNumbers(NSArray<NSNumber*>* numbers) {
  std::vector<int64_t> values;
  values.reserve(numbers.count);
  for (NSNumber* number in numbers) values.push_back(number.longLongValue);
  return values;
}

FeatureInfo DescribeFeature(MLFeatureDescription* description) {
  FeatureInfo info;
  info.name = ToStdString(description.name);
  MLMultiArrayConstraint* constraint = description.multiArrayConstraint;
  if (constraint == nil) return info;  // images, scalars, dictionaries: reported without a type
  info.type = ElementTypeOf(constraint.dataType);
  info.shape = FromNumbers(constraint.shape);
  MLMultiArrayShapeConstraint* shapes = constraint.shapeConstraint;
  switch (shapes.type) {
    case MLMultiArrayShapeConstraintTypeRange:
      info.shapeKind = FeatureInfo::ShapeKind::Range;
      for (NSValue* value in shapes.sizeRangeForDimension) {
        const NSRange range = value.rangeValue;
        info.ranges.emplace_back(static_cast<uint64_t>(range.location), static_cast<uint64_t>(range.length));
      }
      break;
    case MLMultiArrayShapeConstraintTypeEnumerated:
      info.shapeKind = FeatureInfo::ShapeKind::Enumerated;
      for (NSArray<NSNumber*>* shape in shapes.enumeratedShapes) info.enumeratedShapes.push_back(FromNumbers(shape));
      break;
    case MLMultiArrayShapeConstraintTypeUnspecified:
      break;
  }
  return info;
}

std::vector<FeatureInfo> DescribeFeatures(NSDictionary<NSString*, MLFeatureDescription*>* features) {
  std::vector<FeatureInfo> described;
  for (NSString* name in [features.allKeys sortedArrayUsingSelector:@selector(compare:)]) {
    described.push_back(DescribeFeature(features[name]));
  }
  return described;
}

}  // namespace

MLMultiArray* WrapBytes(const SharedBytes& bytes, const std::vector<int64_t>& shape, ElementType type, NSError** error) {
  // The block captures its own copy of `owner`, released with the block when the array is deallocated.
  const SharedBytes owner = bytes;
  return [[MLMultiArray alloc] initWithDataPointer:bytes.get()
                                             shape:ToNumbers(shape)
                                          dataType:MLDataTypeOf(type)
                                           strides:ToNumbers(ContiguousStrides(shape))
                                       deallocator:^(void*) {
                                         (void)owner;
                                       }
                                             error:error];
}

std::optional<OutputTensor> CopyOutput(NSString* name, MLMultiArray* array, BridgeError* error) {
  const auto type = ElementTypeOf(array.dataType);
  if (!type) {
    *error = BridgeError{"output " + ToStdString(name) + " has a data type the bridge cannot read", "", 0};
    return std::nullopt;
  }
  const std::vector<int64_t> shape = FromNumbers(array.shape);
  const std::vector<int64_t> strides = FromNumbers(array.strides);
  const size_t elementSize = ElementSize(*type);
  const auto byteLength = ByteLength(shape, elementSize);
  const auto extent = StridedExtent(shape, strides);
  int64_t extentBytes = 0;
  if (!byteLength || !extent || __builtin_mul_overflow(*extent, static_cast<int64_t>(elementSize), &extentBytes)) {
    *error = BridgeError{"output " + ToStdString(name) + ": its shape or strides overflow", "", 0};
    return std::nullopt;
  }
  SharedBytes data = AllocateBytes(*byteLength);
  if (data == nullptr) {
    *error = BridgeError{"output " + ToStdString(name) + ": cannot allocate " + std::to_string(*byteLength) + " bytes", "", 0};
    return std::nullopt;
  }
  unsigned char* destination = data.get();
  __block bool fits = false;
  [array getBytesWithHandler:^(const void* bytes, NSInteger size) {
    fits = extentBytes <= static_cast<int64_t>(size);
    if (fits) CopyStridedToContiguous(bytes, shape, strides, elementSize, destination);
  }];
  if (!fits) {
    *error = BridgeError{"output " + ToStdString(name) + ": strides reach past the end of its buffer", "", 0};
    return std::nullopt;
  }
  return OutputTensor{ToStdString(name), *type, shape, std::move(data), *byteLength, false};
}

ModelInfo DescribeModel(MLModelDescription* description) {
  return ModelInfo{DescribeFeatures(description.inputDescriptionsByName),
                   DescribeFeatures(description.outputDescriptionsByName)};
}

}  // namespace sora

#include "multi_array.h"

#include <cstdint>
#include <vector>

#include "ns_string.h"
#include "strided_copy.h"

namespace sora {
namespace {

// Upper bounds at or beyond this are CoreML's way of saying "unbounded" in a flexible shape.
constexpr NSUInteger kUnboundedSize = NSUInteger{1} << 31;

std::optional<ElementType> ElementTypeOf(MLMultiArrayDataType type) {
  switch (type) {
    case MLMultiArrayDataTypeFloat32: return ElementType::Float32;
    case MLMultiArrayDataTypeFloat16: return ElementType::Float16;
    case MLMultiArrayDataTypeInt32: return ElementType::Int32;
    case MLMultiArrayDataTypeDouble: return ElementType::Float64;
    default: return std::nullopt;  // types newer than the bridge, e.g. Int8
  }
}

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

// A flexible dimension's NSRange holds the lower bound in location and upper minus lower in length.
std::pair<int64_t, int64_t> SizeBounds(NSRange range) {
  const bool unbounded = range.length >= kUnboundedSize || range.location >= kUnboundedSize - range.length;
  return {static_cast<int64_t>(range.location), unbounded ? -1 : static_cast<int64_t>(range.location + range.length)};
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
      for (NSValue* range in shapes.sizeRangeForDimension) info.ranges.push_back(SizeBounds(range.rangeValue));
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

MLMultiArray* WrapInput(const InputTensor& input, NSError** error) {
  return [[MLMultiArray alloc] initWithDataPointer:input.data
                                             shape:ToNumbers(input.shape)
                                          dataType:MLDataTypeOf(input.type)
                                           strides:ToNumbers(ContiguousStrides(input.shape))
                                       deallocator:nullptr
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
  const size_t byteLength = static_cast<size_t>(ElementCount(shape)) * elementSize;
  std::unique_ptr<unsigned char[]> data(new unsigned char[byteLength == 0 ? 1 : byteLength]);
  unsigned char* destination = data.get();
  __block bool fits = false;
  [array getBytesWithHandler:^(const void* bytes, NSInteger size) {
    fits = StridedExtent(shape, strides) * static_cast<int64_t>(elementSize) <= static_cast<int64_t>(size);
    if (fits) CopyStridedToContiguous(bytes, shape, strides, elementSize, destination);
  }];
  if (!fits) {
    *error = BridgeError{"output " + ToStdString(name) + ": strides reach past the end of its buffer", "", 0};
    return std::nullopt;
  }
  return OutputTensor{ToStdString(name), *type, shape, std::move(data), byteLength};
}

ModelInfo DescribeModel(MLModelDescription* description) {
  return ModelInfo{DescribeFeatures(description.inputDescriptionsByName),
                   DescribeFeatures(description.outputDescriptionsByName)};
}

}  // namespace sora

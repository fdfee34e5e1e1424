// Checks strided_copy.h, the part of the CoreML bridge that does arithmetic. Built and run by
// scripts/check-coreml-bridge.sh; exits non-zero on the first mismatch.
#include "strided_copy.h"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

namespace {

int failures = 0;

template <typename T>
void ExpectEqual(const char* name, const std::vector<T>& actual, const std::vector<T>& expected) {
  if (actual == expected) return;
  std::fprintf(stderr, "FAIL %s\n", name);
  ++failures;
}

// Source buffer where element i holds the value i, so a copied value names the offset it came from.
std::vector<int32_t> Iota(size_t size) {
  std::vector<int32_t> values(size);
  for (size_t i = 0; i < size; ++i) values[i] = static_cast<int32_t>(i);
  return values;
}

template <typename T>
std::vector<T> Copy(const std::vector<T>& source, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  std::vector<T> destination(static_cast<size_t>(sora::ElementCount(shape)));
  sora::CopyStridedToContiguous(source.data(), shape, strides, sizeof(T), destination.data());
  return destination;
}

void DenseArraysCopyUnchanged() {
  const auto source = Iota(24);
  ExpectEqual("dense 2x3x4", Copy(source, {2, 3, 4}, sora::ContiguousStrides({2, 3, 4})), source);
  ExpectEqual("contiguous strides", sora::ContiguousStrides({2, 3, 4}), std::vector<int64_t>{12, 4, 1});
}

void PaddedRowsDropThePadding() {
  // 2x3 values stored in rows of 4 (a padded GPU layout): offsets 0 1 2 | 4 5 6.
  ExpectEqual("padded rows", Copy(Iota(8), {2, 3}, {4, 1}), std::vector<int32_t>{0, 1, 2, 4, 5, 6});
  ExpectEqual("padded extent", std::vector<int64_t>{*sora::StridedExtent({2, 3}, {4, 1})}, std::vector<int64_t>{7});
}

void TransposedLayoutIsReordered() {
  // A 3x2 view of a 2x3 dense buffer, read column-major.
  ExpectEqual("transposed", Copy(Iota(6), {3, 2}, {1, 3}), std::vector<int32_t>{0, 3, 1, 4, 2, 5});
}

void PaddingOnAnOuterAxis() {
  // 2x2x2 with a gap of 2 elements after each 2x2 plane: planes start at 0 and 6.
  ExpectEqual("outer padding", Copy(Iota(12), {2, 2, 2}, {6, 2, 1}), std::vector<int32_t>{0, 1, 2, 3, 6, 7, 8, 9});
}

void HalfPrecisionElementsKeepTheirBytes() {
  const std::vector<uint16_t> source{0x3c00, 0xffff, 0x4000, 0xffff, 0x4200, 0xffff};
  ExpectEqual("float16 stride 2", Copy(source, {3}, {2}), std::vector<uint16_t>{0x3c00, 0x4000, 0x4200});
}

void DegenerateShapes() {
  ExpectEqual("scalar", Copy(Iota(1), {}, {}), std::vector<int32_t>{0});
  ExpectEqual("empty axis", Copy(Iota(4), {2, 0, 2}, {0, 2, 1}), std::vector<int32_t>{});
  ExpectEqual("empty extent", std::vector<int64_t>{*sora::StridedExtent({2, 0}, {1, 1})}, std::vector<int64_t>{0});
  ExpectEqual("size-one axes", Copy(Iota(3), {1, 3, 1}, {100, 1, 7}), std::vector<int32_t>{0, 1, 2});
}

template <typename T>
std::vector<bool> Present(const std::vector<std::optional<T>>& values) {
  std::vector<bool> present;
  for (const auto& value : values) present.push_back(value.has_value());
  return present;
}

void OverflowingShapesHaveNoLength() {
  ExpectEqual("byte length", std::vector<size_t>{*sora::ByteLength({2, 3, 4}, 4)}, std::vector<size_t>{96});
  ExpectEqual("scalar byte length", std::vector<size_t>{*sora::ByteLength({}, 2)}, std::vector<size_t>{2});
  // 2^32 * 2^32 * 4 wraps to 0 in 64 bits: the length check it would defeat must see no length at all.
  const int64_t big = int64_t{1} << 32;
  ExpectEqual("overflowing byte lengths",
              Present(std::vector<std::optional<size_t>>{sora::ByteLength({big, big}, 4), sora::ByteLength({-1, 4}, 4),
                                                         sora::ByteLength({big, big, 0}, 4)}),
              std::vector<bool>{false, false, false});
  ExpectEqual("overflowing extents",
              Present(std::vector<std::optional<int64_t>>{sora::StridedExtent({big, big}, {big, 1}),
                                                          sora::StridedExtent({2, 2}, {-1, 1}),
                                                          sora::StridedExtent({2, 2}, {1}),
                                                          sora::StridedExtent({big, 0}, {big, 1})}),
              std::vector<bool>{false, false, false, true});
}

}  // namespace

int main() {
  DenseArraysCopyUnchanged();
  PaddedRowsDropThePadding();
  TransposedLayoutIsReordered();
  PaddingOnAnOuterAxis();
  HalfPrecisionElementsKeepTheirBytes();
  DegenerateShapes();
  OverflowingShapesHaveNoLength();
  if (failures == 0) std::printf("strided_copy: all checks passed\n");
  return failures == 0 ? 0 : 1;
}

// Framing of the runner protocol (docs/runner-protocol.md): 16-byte prefix (magic OSRP, header length u32 LE,
// payload length u64 LE), a JSON header, the tensors' little-endian bytes at multiples of 8. The same as
// src/runtime/runner-frames.ts, checked against the same vectors (runner_core_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "json.h"

namespace sora::runner {

constexpr size_t kPrefixBytes = 16;
constexpr size_t kTensorAlignment = 8;
constexpr uint64_t kHelloLimitBytes = 64 * 1024;

enum class DType { Float32, Float16, Int64, Int32 };

std::optional<DType> ParseDType(const std::string& name);
const char* DTypeName(DType type);
size_t DTypeSize(DType type);

struct Tensor {
  DType dtype = DType::Float32;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // little-endian, dense, row-major
};

// Elements × element size, or nullopt when a dim is negative or the product overflows.
std::optional<uint64_t> TensorBytes(DType dtype, const std::vector<int64_t>& dims);

struct FrameLimits {
  uint64_t maxHeaderBytes = kHelloLimitBytes;
  uint64_t maxFrameBytes = kHelloLimitBytes;
};

struct Frame {
  Json header;  // with its "tensors" descriptors when there is a payload
  std::vector<Tensor> tensors;
};

// A frame the reader could not take (docs/runner-protocol.md, "Limits").
struct FrameProblem {
  std::string code;
  std::string message;
  std::optional<int64_t> id;  // the header's id, when it could be read
  bool fatal = false;         // the stream cannot be followed any more
};

struct FrameEvent {
  std::optional<Frame> frame;
  std::optional<FrameProblem> problem;
};

// The frame's bytes; `header` must not have "tensors" (it is appended, last, from `tensors`).
std::vector<uint8_t> EncodeFrame(const Json& header, const std::vector<Tensor>& tensors = {});

// Splits a byte stream into frames, holding at most one frame; a frame over the limits is reported at once and its
// payload skipped as it arrives without being stored.
class FrameReader {
 public:
  explicit FrameReader(FrameLimits limits = {}) : limits_(limits) {}
  void setLimits(FrameLimits limits) { limits_ = limits; }
  // Appends the frames and problems these bytes complete, in stream order.
  void push(const uint8_t* bytes, size_t length, std::vector<FrameEvent>& events);
  // Bytes held for a frame not complete yet.
  size_t buffered() const { return pending_.size() + payload_.size(); }

 private:
  enum class State { Prefix, Header, Payload, Skip, Broken };
  void onPrefix(std::vector<FrameEvent>& events);
  void onHeader(std::vector<FrameEvent>& events);
  void finish(std::vector<FrameEvent>& events);
  void fail(std::vector<FrameEvent>& events, const char* code, std::string message);

  FrameLimits limits_;
  State state_ = State::Prefix;
  std::vector<uint8_t> pending_;  // prefix or header bytes gathered so far
  uint64_t headerBytes_ = 0;
  uint64_t payloadBytes_ = 0;
  uint64_t skipLeft_ = 0;
  std::optional<Json> header_;
  std::optional<int64_t> id_;
  std::vector<uint8_t> payload_;
};

// The payload's tensors as the header's "tensors" describes them; nullopt with `message` set when they disagree.
std::optional<std::vector<Tensor>> PayloadTensors(const Json* descriptors, const std::vector<uint8_t>& payload, std::string* message);

// A header's id: an integer from 0 to 2^31 − 1.
std::optional<int64_t> HeaderId(const Json& header);

}  // namespace sora::runner

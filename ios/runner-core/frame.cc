#include "frame.h"

#include <cstring>
#include <string_view>

namespace sora::runner {

std::optional<DType> ParseDType(const std::string& name) {
  if (name == "float32") return DType::Float32;
  if (name == "float16") return DType::Float16;
  if (name == "int64") return DType::Int64;
  if (name == "int32") return DType::Int32;
  return std::nullopt;
}

const char* DTypeName(DType type) {
  switch (type) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
  }
  return "float32";
}

size_t DTypeSize(DType type) {
  switch (type) {
    case DType::Float16: return 2;
    case DType::Int64: return 8;
    case DType::Float32:
    case DType::Int32: return 4;
  }
  return 4;
}

std::optional<uint64_t> TensorBytes(DType dtype, const std::vector<int64_t>& dims) {
  uint64_t bytes = DTypeSize(dtype);
  for (const int64_t dim : dims) {
    if (dim < 0) return std::nullopt;
    if (dim != 0 && bytes > UINT64_MAX / static_cast<uint64_t>(dim)) return std::nullopt;
    bytes *= static_cast<uint64_t>(dim);
  }
  return bytes;
}

namespace {

uint64_t Align(uint64_t offset) { return (offset + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment; }

void PutLE(std::vector<uint8_t>& out, size_t at, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[at + i] = static_cast<uint8_t>(value >> (8 * i));
}

uint64_t GetLE(const uint8_t* bytes, int count) {
  uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

Json DescribeTensors(const std::vector<Tensor>& tensors) {
  Json::Array list;
  for (const Tensor& t : tensors) {
    Json::Array dims;
    for (const int64_t dim : t.dims) dims.emplace_back(dim);
    list.emplace_back(Json::Object{{"dtype", DTypeName(t.dtype)}, {"dims", Json(std::move(dims))}});
  }
  return Json(std::move(list));
}

}  // namespace

std::vector<uint8_t> EncodeFrame(const Json& header, const std::vector<Tensor>& tensors) {
  Json full = header;
  if (!tensors.empty()) full.set("tensors", DescribeTensors(tensors));
  const std::string text = full.dump();
  uint64_t payload = 0;
  for (const Tensor& t : tensors) payload = Align(payload) + t.data.size();
  std::vector<uint8_t> out(kPrefixBytes + text.size() + payload, 0);
  std::memcpy(out.data(), "OSRP", 4);
  PutLE(out, 4, text.size(), 4);
  PutLE(out, 8, payload, 8);
  std::memcpy(out.data() + kPrefixBytes, text.data(), text.size());
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    offset = Align(offset);
    if (!t.data.empty()) std::memcpy(out.data() + kPrefixBytes + text.size() + offset, t.data.data(), t.data.size());
    offset += t.data.size();
  }
  return out;
}

std::optional<int64_t> HeaderId(const Json& header) {
  const Json* id = header.find("id");
  if (id == nullptr || !id->isInteger() || id->asInteger() < 0 || id->asInteger() > 0x7fffffff) return std::nullopt;
  return id->asInteger();
}

std::optional<std::vector<Tensor>> PayloadTensors(const Json* descriptors, const std::vector<uint8_t>& payload, std::string* message) {
  std::vector<Tensor> tensors;
  if (descriptors == nullptr) {
    if (!payload.empty()) {
      *message = "a payload without tensors in the header";
      return std::nullopt;
    }
    return tensors;
  }
  if (!descriptors->isArray()) {
    *message = "tensors must be a list";
    return std::nullopt;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < descriptors->asArray().size(); ++i) {
    const Json& descriptor = descriptors->asArray()[i];
    const Json* dtypeName = descriptor.find("dtype");
    const Json* dims = descriptor.find("dims");
    const std::optional<DType> dtype = dtypeName != nullptr && dtypeName->isString() ? ParseDType(dtypeName->asString()) : std::nullopt;
    Tensor t;
    bool valid = dtype.has_value() && dims != nullptr && dims->isArray();
    if (valid) {
      t.dtype = *dtype;
      for (const Json& dim : dims->asArray()) {
        if (!dim.isInteger() || dim.asInteger() < 0) valid = false;
        else t.dims.push_back(dim.asInteger());
      }
    }
    const std::optional<uint64_t> bytes = valid ? TensorBytes(t.dtype, t.dims) : std::nullopt;
    if (!bytes) {
      *message = "tensor " + std::to_string(i) + ": dtype must be one of float32, float16, int64, int32 and dims non-negative integers";
      return std::nullopt;
    }
    offset = Align(offset);
    if (offset > payload.size() || *bytes > payload.size() - offset) {
      *message = "tensor " + std::to_string(i) + " needs " + std::to_string(*bytes) + " bytes at offset " + std::to_string(offset) +
                 "; the payload has " + std::to_string(payload.size());
      return std::nullopt;
    }
    t.data.assign(payload.begin() + static_cast<ptrdiff_t>(offset), payload.begin() + static_cast<ptrdiff_t>(offset + *bytes));
    offset += *bytes;
    tensors.push_back(std::move(t));
  }
  if (offset != payload.size()) {
    *message = "the tensors take " + std::to_string(offset) + " bytes; the payload has " + std::to_string(payload.size());
    return std::nullopt;
  }
  return tensors;
}

void FrameReader::push(const uint8_t* bytes, size_t length, std::vector<FrameEvent>& events) {
  size_t at = 0;
  while (at < length && state_ != State::Broken) {
    const size_t left = length - at;
    if (state_ == State::Payload) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(payloadBytes_ - payload_.size(), left));
      payload_.insert(payload_.end(), bytes + at, bytes + at + take);
      at += take;
      if (payload_.size() == payloadBytes_) finish(events);
    } else if (state_ == State::Skip) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(skipLeft_, left));
      skipLeft_ -= take;
      at += take;
      if (skipLeft_ == 0) state_ = State::Prefix;
    } else {
      const size_t want = state_ == State::Prefix ? kPrefixBytes : static_cast<size_t>(headerBytes_);
      const size_t take = std::min(want - pending_.size(), left);
      pending_.insert(pending_.end(), bytes + at, bytes + at + take);
      at += take;
      if (pending_.size() == want) {
        if (state_ == State::Prefix) onPrefix(events);
        else onHeader(events);
      }
    }
  }
}

void FrameReader::onPrefix(std::vector<FrameEvent>& events) {
  if (std::memcmp(pending_.data(), "OSRP", 4) != 0) return fail(events, "bad-frame", "the frame does not start with OSRP");
  headerBytes_ = GetLE(pending_.data() + 4, 4);
  payloadBytes_ = GetLE(pending_.data() + 8, 8);
  pending_.clear();
  if (headerBytes_ > limits_.maxHeaderBytes) {
    return fail(events, "frame-too-large",
                "a " + std::to_string(headerBytes_) + "-byte header is over the limit of " + std::to_string(limits_.maxHeaderBytes));
  }
  if (headerBytes_ == 0) return fail(events, "bad-frame", "the header is empty");
  state_ = State::Header;
}

void FrameReader::onHeader(std::vector<FrameEvent>& events) {
  const std::string_view text(reinterpret_cast<const char*>(pending_.data()), pending_.size());
  header_ = ParseJson(text);
  pending_.clear();
  id_ = header_ ? HeaderId(*header_) : std::nullopt;
  const auto skip = [&](FrameProblem problem) {
    events.push_back(FrameEvent{std::nullopt, std::move(problem)});
    skipLeft_ = payloadBytes_;
    state_ = skipLeft_ == 0 ? State::Prefix : State::Skip;
  };
  const uint64_t total = payloadBytes_ > UINT64_MAX - kPrefixBytes - headerBytes_ ? UINT64_MAX : kPrefixBytes + headerBytes_ + payloadBytes_;
  if (total > limits_.maxFrameBytes) {
    return skip(FrameProblem{"frame-too-large",
                             "a " + std::to_string(total) + "-byte frame is over the limit of " + std::to_string(limits_.maxFrameBytes), id_, false});
  }
  const Json* type = header_ ? header_->find("type") : nullptr;
  const Json* id = header_ ? header_->find("id") : nullptr;
  const bool valid = header_ && header_->isObject() && type != nullptr && type->isString() && id != nullptr && (id->isNull() || id_.has_value());
  if (!valid) return skip(FrameProblem{"bad-frame", "the header must be a JSON object with a string type and an id", id_, false});
  payload_.clear();
  payload_.reserve(static_cast<size_t>(payloadBytes_));
  state_ = State::Payload;
  if (payloadBytes_ == 0) finish(events);
}

void FrameReader::finish(std::vector<FrameEvent>& events) {
  std::string message;
  std::optional<std::vector<Tensor>> tensors = PayloadTensors(header_->find("tensors"), payload_, &message);
  payload_.clear();
  payload_.shrink_to_fit();
  state_ = State::Prefix;
  if (!tensors) {
    events.push_back(FrameEvent{std::nullopt, FrameProblem{"bad-tensor", message, id_, false}});
    return;
  }
  events.push_back(FrameEvent{Frame{std::move(*header_), std::move(*tensors)}, std::nullopt});
}

void FrameReader::fail(std::vector<FrameEvent>& events, const char* code, std::string message) {
  state_ = State::Broken;
  pending_.clear();
  events.push_back(FrameEvent{std::nullopt, FrameProblem{code, std::move(message), std::nullopt, true}});
}

}  // namespace sora::runner

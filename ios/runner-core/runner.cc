#include "runner.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

namespace sora::runner {
namespace {

constexpr int kProtocolVersion = 1;
const std::set<std::string> kRequestTypes = {"hello", "load", "run", "put", "fetch", "release", "unload", "stats", "close"};
const std::set<std::string> kComputeUnits = {"all", "cpu", "cpu-gpu", "cpu-ane"};

Json ErrorHeader(const std::optional<int64_t>& id, const std::string& code, const std::string& message) {
  return Json(Json::Object{{"type", "error"}, {"id", id ? Json(*id) : Json(nullptr)}, {"code", code}, {"message", message}});
}

// Constant time in the length of the expected token, so that the reply's timing says little about it.
bool SameSecret(const std::string& given, const std::string& expected) {
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) difference |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  return difference == 0;
}

Json Strings(const std::vector<std::string>& items) {
  Json::Array list;
  for (const std::string& item : items) list.emplace_back(item);
  return Json(std::move(list));
}

Json Dims(const std::vector<int64_t>& dims) {
  Json::Array list;
  for (const int64_t dim : dims) list.emplace_back(dim);
  return Json(std::move(list));
}

// A list of positive integer handles, or nullopt.
std::optional<std::vector<int64_t>> Handles(const Json* value) {
  if (value == nullptr || !value->isArray() || value->asArray().empty()) return std::nullopt;
  std::vector<int64_t> handles;
  for (const Json& item : value->asArray()) {
    if (!item.isInteger() || item.asInteger() < 1 || item.asInteger() > 0x7fffffff) return std::nullopt;
    handles.push_back(item.asInteger());
  }
  return handles;
}

// A list of names, or nullopt; absent counts as empty.
std::optional<std::vector<std::string>> Names(const Json* value) {
  std::vector<std::string> names;
  if (value == nullptr) return names;
  if (!value->isArray()) return std::nullopt;
  for (const Json& item : value->asArray()) {
    if (!item.isString() || item.asString().empty()) return std::nullopt;
    names.push_back(item.asString());
  }
  return names;
}

}  // namespace

std::shared_ptr<Session> Runner::open(std::function<void(std::vector<uint8_t>)> write, std::function<void()> end) {
  auto session = std::make_shared<Session>(*this, std::move(write), std::move(end));
  std::lock_guard<std::mutex> lock(mutex_);
  sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(), [](const auto& weak) { return weak.expired(); }), sessions_.end());
  sessions_.push_back(session);
  return session;
}

std::pair<int64_t, uint64_t> Runner::heldByAll() {
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& weak : sessions_) {
      if (auto session = weak.lock()) sessions.push_back(session);
    }
  }
  std::pair<int64_t, uint64_t> total{0, 0};
  for (const auto& session : sessions) {
    const auto [count, bytes] = session->held();
    total.first += count;
    total.second += bytes;
  }
  return total;
}

std::vector<std::string> Runner::idleBlocks() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [key, block] : blocks_) {
    if (block->idleSince) names.push_back(block->name);
  }
  return names;
}

Outcome<std::pair<std::shared_ptr<Runner::Block>, bool>> Runner::claim(const std::string& name, const std::string& computeUnits) {
  const std::string key = name + "|" + computeUnits;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = blocks_.find(key);
    if (found != blocks_.end()) {
      found->second->claims++;
      found->second->idleSince.reset();
      return Outcome<std::pair<std::shared_ptr<Block>, bool>>::ok({found->second, true});
    }
  }
  // Idle blocks go, oldest first, while the load would leave less than the reserve.
  const uint64_t needed = executor_.weightBytes(name);
  while (true) {
    std::shared_ptr<Block> oldest;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const Memory memory = executor_.memory();
      if (memory.available >= needed + config_.idleReserveBytes) break;
      for (const auto& [candidate, block] : blocks_) {
        if (block->idleSince && (!oldest || *block->idleSince < *oldest->idleSince)) oldest = block;
      }
      if (!oldest) break;
      blocks_.erase(oldest->key);
    }
    executor_.unload(oldest->loaded.id);
  }
  Outcome<ExecutorBlock> loaded = executor_.load(name, computeUnits);
  if (!loaded.value) return Outcome<std::pair<std::shared_ptr<Block>, bool>>::fail(loaded.failure.code, loaded.failure.message);
  auto block = std::make_shared<Block>(Block{name, key, *loaded.value, 1, std::nullopt});
  std::lock_guard<std::mutex> lock(mutex_);
  auto [slot, inserted] = blocks_.emplace(key, block);
  if (!inserted) {
    // Loaded twice at once: keep the first, drop this one.
    executor_.unload(block->loaded.id);
    slot->second->claims++;
    slot->second->idleSince.reset();
    return Outcome<std::pair<std::shared_ptr<Block>, bool>>::ok({slot->second, true});
  }
  return Outcome<std::pair<std::shared_ptr<Block>, bool>>::ok({block, false});
}

void Runner::giveBack(const std::shared_ptr<Block>& block, bool keep) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    block->claims = std::max(0, block->claims - 1);
    if (block->claims > 0) return;
    if (keep) {
      block->idleSince = ++clock_;
      return;
    }
    blocks_.erase(block->key);
  }
  executor_.unload(block->loaded.id);
}

void Runner::dropIdle() {
  std::vector<std::shared_ptr<Block>> idle;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = blocks_.begin(); it != blocks_.end();) {
      if (it->second->idleSince) {
        idle.push_back(it->second);
        it = blocks_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& block : idle) executor_.unload(block->loaded.id);
}

bool Runner::admit(Session* session) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (active_ != nullptr && active_ != session) {
    // A client whose connection is ending is waited for; one that is being served refuses the newcomer.
    if (!active_->finished() && !active_->closing()) return false;
    changed_.wait(lock);
  }
  active_ = session;
  return true;
}

void Runner::leave(Session* session) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (active_ == session) active_ = nullptr;
  changed_.notify_all();
}

Memory Runner::memory() {
  const Memory memory = executor_.memory();
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = std::max(peak_, memory.inUse);
  return memory;
}

Session::Session(Runner& runner, std::function<void(std::vector<uint8_t>)> write, std::function<void()> end)
    : runner_(runner), write_(std::move(write)), end_(std::move(end)) {}

Session::~Session() = default;

bool Session::finished() {
  std::lock_guard<std::mutex> lock(mutex_);
  return finished_;
}

bool Session::closing() const { return closed_.load(); }

std::pair<int64_t, uint64_t> Session::held() {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t bytes = 0;
  for (const auto& [handle, tensor] : tensors_) bytes += tensor->data.size();
  return {static_cast<int64_t>(tensors_.size()), bytes};
}

void Session::receive(const uint8_t* bytes, size_t length) {
  if (closed_) return;
  std::vector<FrameEvent> events;
  reader_.push(bytes, length, events);
  for (FrameEvent& event : events) {
    if (event.problem) {
      sendError(event.problem->id, event.problem->code, event.problem->message);
      if (event.problem->fatal) {
        closed_ = true;
        end_();
        return;
      }
      continue;
    }
    dispatch(std::move(*event.frame));
  }
}

void Session::dispatch(Frame frame) {
  const Json* type = frame.header.find("type");
  // Hello is answered here, before the frames behind it are looked at.
  if (type != nullptr && type->asString() == "hello") {
    Reply reply = handle(frame);
    send(reply.header, reply.tensors);
    if (reply.end) {
      closed_ = true;
      end_();
    }
    return;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [&] { return inFlight_ < runner_.config_.maxInFlight; });
  ++inFlight_;
  lock.unlock();
  std::thread([self = shared_from_this(), frame = std::move(frame)]() {
    Reply reply = self->handle(frame);
    self->send(reply.header, reply.tensors);
    if (reply.end) {
      self->closed_ = true;
      self->end_();
    }
    std::lock_guard<std::mutex> done(self->mutex_);
    --self->inFlight_;
    self->idle_.notify_all();
  }).detach();
}

Session::Reply Session::handle(const Frame& frame) {
  const std::optional<int64_t> id = HeaderId(frame.header);
  const auto fail = [&](const std::string& code, const std::string& message, bool end = false) {
    return Reply{ErrorHeader(id, code, message), {}, end};
  };
  if (!id) return fail("bad-request", "a request needs an integer id");
  const std::string& type = frame.header.find("type")->asString();
  if (kRequestTypes.count(type) == 0) return fail("unknown-message", "unknown message type \"" + type + "\"");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (type != "hello" && !ready_) return fail("not-ready", type + " before hello");
    if (type == "hello" && ready_) return fail("bad-request", "hello was already said");
  }
  Reply reply;
  if (type == "hello") reply = hello(frame.header);
  else if (type == "load") reply = load(frame.header);
  else if (type == "run") reply = run(frame.header, frame.tensors);
  else if (type == "put") reply = put(frame.tensors);
  else if (type == "fetch") reply = fetch(frame.header);
  else if (type == "release") reply = release(frame.header);
  else if (type == "unload") reply = unload(frame.header);
  else if (type == "stats") reply = stats();
  else reply = Reply{Json(Json::Object{{"type", "close"}}), {}, true};
  reply.header.set("id", *id);
  return reply;
}

Session::Reply Session::hello(const Json& request) {
  const auto fail = [](const std::string& code, const std::string& message) {
    return Reply{ErrorHeader(std::nullopt, code, message), {}, true};
  };
  const Json* versions = request.find("versions");
  bool speaks = false;
  if (versions != nullptr && versions->isArray()) {
    for (const Json& version : versions->asArray()) speaks = speaks || (version.isInteger() && version.asInteger() == kProtocolVersion);
  }
  if (!speaks) return fail("version", "the runner speaks version 1");
  if (runner_.config_.token) {
    const Json* token = request.find("token");
    if (token == nullptr || !token->isString()) return fail("unauthorized", "the runner requires a token");
    if (!SameSecret(token->asString(), *runner_.config_.token)) return fail("unauthorized", "wrong token");
  }
  if (!runner_.admit(this)) return fail("busy", "the runner is serving another client");
  const RunnerConfig& config = runner_.config_;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ready_ = true;
    reader_.setLimits(FrameLimits{config.maxHeaderBytes, config.maxFrameBytes});
  }
  Json header(Json::Object{{"type", "hello"}, {"version", kProtocolVersion}});
  for (const auto& [name, value] : config.identity.asObject()) header.set(name, value);
  header.set("limits", Json(Json::Object{{"maxFrameBytes", config.maxFrameBytes},
                                         {"maxHeaderBytes", config.maxHeaderBytes},
                                         {"maxHandles", config.maxHandles},
                                         {"maxInFlight", config.maxInFlight}}));
  return Reply{header, {}, false};
}

Session::Reply Session::load(const Json& request) {
  const Json* name = request.find("name");
  const Json* units = request.find("computeUnits");
  if (name == nullptr || !name->isString() || name->asString().empty()) return Reply{ErrorHeader(std::nullopt, "bad-request", "load: name must be a block name"), {}, false};
  if (units != nullptr && (!units->isString() || kComputeUnits.count(units->asString()) == 0)) {
    return Reply{ErrorHeader(std::nullopt, "bad-request", "load: computeUnits must be all, cpu, cpu-gpu or cpu-ane"), {}, false};
  }
  const auto started = std::chrono::steady_clock::now();
  auto claimed = runner_.claim(name->asString(), units == nullptr ? "" : units->asString());
  if (!claimed.value) return Reply{ErrorHeader(std::nullopt, claimed.failure.code, claimed.failure.message), {}, false};
  const auto& [block, cached] = *claimed.value;
  int64_t handle;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    handle = nextHandle_++;
    blocks_[handle] = block;
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return Reply{Json(Json::Object{{"type", "load"},
                                 {"block", handle},
                                 {"inputs", Strings(block->loaded.inputs)},
                                 {"outputs", Strings(block->loaded.outputs)},
                                 {"ms", ms},
                                 {"cached", cached}}),
               {},
               false};
}

Session::Reply Session::run(const Json& request, const std::vector<Tensor>& payload) {
  const auto fail = [](const std::string& code, const std::string& message) { return Reply{ErrorHeader(std::nullopt, code, message), {}, false}; };
  const Json* blockHandle = request.find("block");
  const Json* inputs = request.find("inputs");
  const std::optional<std::vector<std::string>> keep = Names(request.find("keep"));
  const std::optional<std::vector<std::string>> consume = Names(request.find("consume"));
  if (blockHandle == nullptr || !blockHandle->isInteger() || inputs == nullptr || !inputs->isObject() || !keep || !consume) {
    return fail("bad-request", "run: block, inputs, keep and consume must be a handle, an object and lists of names");
  }
  std::shared_ptr<Runner::Block> block;
  NamedTensors named;
  std::map<std::string, int64_t> byHandle;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = blocks_.find(blockHandle->asInteger());
    if (found == blocks_.end()) return fail("no-such-handle", "no loaded block " + std::to_string(blockHandle->asInteger()));
    block = found->second;
    for (const auto& [name, value] : inputs->asObject()) {
      const Json* index = value.find("tensor");
      const Json* handle = value.find("handle");
      if (index != nullptr && index->isInteger()) {
        if (index->asInteger() < 0 || static_cast<size_t>(index->asInteger()) >= payload.size()) {
          return fail("bad-tensor", "the frame has no tensor " + std::to_string(index->asInteger()));
        }
        named.emplace_back(name, std::make_shared<Tensor>(payload[static_cast<size_t>(index->asInteger())]));
      } else if (handle != nullptr && handle->isInteger()) {
        auto tensor = tensors_.find(handle->asInteger());
        if (tensor == tensors_.end()) return fail("no-such-handle", "no tensor " + std::to_string(handle->asInteger()));
        named.emplace_back(name, tensor->second);
        byHandle[name] = handle->asInteger();
      } else {
        return fail("bad-request", "run: input " + name + " must be {\"tensor\": i} or {\"handle\": h}");
      }
    }
    for (const std::string& name : *consume) {
      if (byHandle.count(name) == 0) return fail("bad-request", "consume: " + name + " is not an input given by handle");
    }
    if (static_cast<int64_t>(tensors_.size() + keep->size()) > runner_.config_.maxHandles) {
      return fail("limit", "the client would hold more than " + std::to_string(runner_.config_.maxHandles) + " tensors; release some first");
    }
    // Consumed inputs are released whether the run succeeds or not; `named` keeps them alive for the run.
    for (const std::string& name : *consume) tensors_.erase(byHandle[name]);
  }
  const auto started = std::chrono::steady_clock::now();
  Outcome<NamedTensors> outputs = runner_.executor_.run(block->loaded.id, named);
  named.clear();
  if (!outputs.value) return fail(outputs.failure.code.empty() ? "run-failed" : outputs.failure.code, outputs.failure.message);
  Json described(Json::Object{});
  std::vector<Tensor> returned;
  for (auto& [name, tensor] : *outputs.value) {
    if (std::find(keep->begin(), keep->end(), name) != keep->end()) {
      const int64_t handle = hold(tensor);
      described.set(name, Json(Json::Object{{"handle", handle}, {"dtype", DTypeName(tensor->dtype)}, {"dims", Dims(tensor->dims)}}));
    } else {
      described.set(name, Json(Json::Object{{"tensor", static_cast<int64_t>(returned.size())}}));
      returned.push_back(*tensor);
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return Reply{Json(Json::Object{{"type", "run"}, {"outputs", described}, {"ms", ms}}), std::move(returned), false};
}

Session::Reply Session::put(const std::vector<Tensor>& payload) {
  if (payload.empty()) return Reply{ErrorHeader(std::nullopt, "bad-request", "put needs at least one tensor"), {}, false};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<int64_t>(tensors_.size() + payload.size()) > runner_.config_.maxHandles) {
      return Reply{ErrorHeader(std::nullopt, "limit", "the client would hold more than " + std::to_string(runner_.config_.maxHandles) + " tensors"), {}, false};
    }
  }
  Json::Array handles;
  for (const Tensor& tensor : payload) handles.emplace_back(hold(std::make_shared<Tensor>(tensor)));
  return Reply{Json(Json::Object{{"type", "put"}, {"handles", Json(std::move(handles))}}), {}, false};
}

Session::Reply Session::fetch(const Json& request) {
  const std::optional<std::vector<int64_t>> handles = Handles(request.find("handles"));
  if (!handles) return Reply{ErrorHeader(std::nullopt, "bad-request", "fetch: handles must be a list of handles"), {}, false};
  std::vector<Tensor> tensors;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const int64_t handle : *handles) {
    auto found = tensors_.find(handle);
    if (found == tensors_.end()) return Reply{ErrorHeader(std::nullopt, "no-such-handle", "no tensor " + std::to_string(handle)), {}, false};
    tensors.push_back(*found->second);
  }
  return Reply{Json(Json::Object{{"type", "fetch"}}), std::move(tensors), false};
}

Session::Reply Session::release(const Json& request) {
  const std::optional<std::vector<int64_t>> handles = Handles(request.find("handles"));
  if (!handles) return Reply{ErrorHeader(std::nullopt, "bad-request", "release: handles must be a list of handles"), {}, false};
  std::lock_guard<std::mutex> lock(mutex_);
  for (const int64_t handle : *handles) {
    if (tensors_.count(handle) == 0) return Reply{ErrorHeader(std::nullopt, "no-such-handle", "no tensor " + std::to_string(handle)), {}, false};
  }
  for (const int64_t handle : *handles) tensors_.erase(handle);
  return Reply{Json(Json::Object{{"type", "release"}}), {}, false};
}

Session::Reply Session::unload(const Json& request) {
  const Json* idle = request.find("idle");
  if (idle != nullptr && idle->isBool() && idle->asBool()) {
    runner_.dropIdle();
    return Reply{Json(Json::Object{{"type", "unload"}}), {}, false};
  }
  const Json* handle = request.find("block");
  const Json* keep = request.find("keep");
  if (handle == nullptr || !handle->isInteger()) return Reply{ErrorHeader(std::nullopt, "bad-request", "unload: block must be a handle, or idle true"), {}, false};
  std::shared_ptr<Runner::Block> block;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = blocks_.find(handle->asInteger());
    if (found == blocks_.end()) return Reply{ErrorHeader(std::nullopt, "no-such-handle", "no loaded block " + std::to_string(handle->asInteger())), {}, false};
    block = found->second;
    blocks_.erase(found);
  }
  runner_.giveBack(block, keep != nullptr && keep->isBool() && keep->asBool());
  return Reply{Json(Json::Object{{"type", "unload"}}), {}, false};
}

Session::Reply Session::stats() {
  const auto [count, bytes] = held();
  const auto [allCount, allBytes] = runner_.heldByAll();
  Json::Array loaded;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [handle, block] : blocks_) loaded.emplace_back(Json::Object{{"block", handle}, {"name", block->name}});
  }
  return Reply{Json(Json::Object{{"type", "stats"},
                                 {"held", Json(Json::Object{{"count", count}, {"bytes", bytes}})},
                                 {"heldByAll", Json(Json::Object{{"count", allCount}, {"bytes", allBytes}})},
                                 {"blocks", Json(Json::Object{{"loaded", Json(std::move(loaded))}, {"idle", Strings(runner_.idleBlocks())}})}}),
               {},
               false};
}

int64_t Session::hold(TensorRef tensor) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t handle = nextHandle_++;
  tensors_[handle] = std::move(tensor);
  return handle;
}

void Session::send(const Json& header, const std::vector<Tensor>& tensors) {
  Json full = header;
  const Json* type = header.find("type");
  if (type != nullptr && type->asString() != "close" && type->asString() != "error") {
    const Memory memory = runner_.memory();
    uint64_t peak;
    {
      std::lock_guard<std::mutex> lock(runner_.mutex_);
      peak = std::max(runner_.peak_, memory.inUse);
      runner_.peak_ = peak;
    }
    full.set("memory", Json(Json::Object{{"inUse", memory.inUse}, {"peak", peak}, {"available", memory.available}}));
  }
  std::vector<uint8_t> bytes = EncodeFrame(full, tensors);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!closed_) write_(std::move(bytes));
}

void Session::sendError(const std::optional<int64_t>& id, const std::string& code, const std::string& message) {
  send(ErrorHeader(id, code, message));
}

void Session::finish() {
  closed_ = true;
  std::unique_lock<std::mutex> lock(mutex_);
  if (finished_) return;
  idle_.wait(lock, [&] { return inFlight_ == 0; });
  tensors_.clear();
  auto blocks = std::move(blocks_);
  blocks_.clear();
  finished_ = true;
  lock.unlock();
  for (const auto& [handle, block] : blocks) runner_.giveBack(block, true);
  runner_.leave(this);
}

}  // namespace sora::runner

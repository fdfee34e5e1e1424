// The device side of the runner protocol (docs/runner-protocol.md), in portable C++17 (no Apple API), so that it is
// compiled and tested on Linux against the same vectors as the TypeScript side, and used by the iPhone app with
// its CoreML executor (ios/SoraRunner/coreml_executor.mm). The same rules as src/serve/: one client at a time,
// handles per connection, blocks kept loaded (idle) between clients, requests carried out concurrently up to
// maxInFlight, a client's tensors released whenever its connection ends.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "frame.h"
#include "json.h"

namespace sora::runner {

// A request that cannot be carried out: answered with an error reply of this code (docs/runner-protocol.md).
struct Failure {
  std::string code;
  std::string message;
};

template <typename T>
struct Outcome {
  std::optional<T> value;
  Failure failure;
  static Outcome ok(T v) { return Outcome{std::move(v), {}}; }
  static Outcome fail(std::string code, std::string message) { return Outcome{std::nullopt, {std::move(code), std::move(message)}}; }
};

struct Memory {
  uint64_t inUse = 0;
  uint64_t available = 0;
};

using TensorRef = std::shared_ptr<const Tensor>;
using NamedTensors = std::vector<std::pair<std::string, TensorRef>>;

struct ExecutorBlock {
  int64_t id = 0;  // the executor's own
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  uint64_t weightBytes = 0;
};

// What runs blocks: CoreML on the iPhone, fakes in the tests. Called from several threads at once.
class Executor {
 public:
  virtual ~Executor() = default;
  // A block of the served model by contract name (no-such-block when there is none, load-failed when it fails).
  virtual Outcome<ExecutorBlock> load(const std::string& name, const std::string& computeUnits) = 0;
  virtual Outcome<NamedTensors> run(int64_t block, const NamedTensors& inputs) = 0;
  virtual void unload(int64_t block) = 0;
  virtual Memory memory() = 0;
  // The weight bytes of a block, for making room before its load (0 when unknown).
  virtual uint64_t weightBytes(const std::string& name) = 0;
};

struct RunnerConfig {
  // The hello reply's runner, device, backend and model fields.
  Json identity = Json(Json::Object{});
  uint64_t maxFrameBytes = 256ull << 20;
  uint64_t maxHeaderBytes = 1ull << 20;
  int64_t maxHandles = 4096;
  int64_t maxInFlight = 4;
  std::optional<std::string> token;
  // Free memory a load leaves, below which idle blocks are unloaded first.
  uint64_t idleReserveBytes = 512ull << 20;
};

class Session;

// The state shared by the runner's connections: the executor, the loaded blocks, who is being served.
class Runner {
 public:
  Runner(Executor& executor, RunnerConfig config) : executor_(executor), config_(std::move(config)) {}

  // A connection's session; `write` sends bytes to the client (called from any thread, never concurrently),
  // `end` ends the connection once the replies written so far are sent.
  std::shared_ptr<Session> open(std::function<void(std::vector<uint8_t>)> write, std::function<void()> end);

  // Every client's resident tensors (gone ones included until their cleanup is done).
  std::pair<int64_t, uint64_t> heldByAll();
  // Names of the blocks no client holds.
  std::vector<std::string> idleBlocks();

 private:
  friend class Session;
  struct Block {
    std::string name;
    std::string key;
    ExecutorBlock loaded;
    int claims = 0;
    std::optional<uint64_t> idleSince;  // a tick of the runner's clock
  };

  Outcome<std::pair<std::shared_ptr<Block>, bool>> claim(const std::string& name, const std::string& computeUnits);
  void giveBack(const std::shared_ptr<Block>& block, bool keep);
  void dropIdle();
  bool admit(Session* session);
  void leave(Session* session);
  Memory memory();

  Executor& executor_;
  RunnerConfig config_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<Block>> blocks_;
  std::vector<std::weak_ptr<Session>> sessions_;
  Session* active_ = nullptr;
  uint64_t clock_ = 0;
  uint64_t peak_ = 0;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Runner& runner, std::function<void(std::vector<uint8_t>)> write, std::function<void()> end);
  ~Session();

  // Bytes from the client. Blocks while maxInFlight requests are under way (the caller stops reading meanwhile).
  void receive(const uint8_t* bytes, size_t length);
  // The connection has ended: waits for the requests under way, releases the tensors, gives the blocks back.
  void finish();
  bool finished();
  // The connection is ending: nothing more is read or answered.
  bool closing() const;
  std::pair<int64_t, uint64_t> held();

 private:
  struct Reply {
    Json header;
    std::vector<Tensor> tensors;
    bool end = false;
  };

  void dispatch(Frame frame);
  Reply handle(const Frame& frame);
  Reply hello(const Json& request);
  Reply load(const Json& request);
  Reply run(const Json& request, const std::vector<Tensor>& payload);
  Reply put(const std::vector<Tensor>& payload);
  Reply fetch(const Json& request);
  Reply release(const Json& request);
  Reply unload(const Json& request);
  Reply stats();
  void send(const Json& header, const std::vector<Tensor>& tensors = {});
  void sendError(const std::optional<int64_t>& id, const std::string& code, const std::string& message);
  int64_t hold(TensorRef tensor);

  Runner& runner_;
  std::function<void(std::vector<uint8_t>)> write_;
  std::function<void()> end_;
  FrameReader reader_;
  std::mutex mutex_;  // guards everything below, and orders writes
  std::condition_variable idle_;
  std::map<int64_t, TensorRef> tensors_;
  std::map<int64_t, std::shared_ptr<Runner::Block>> blocks_;
  int64_t inFlight_ = 0;
  int64_t nextHandle_ = 1;
  bool ready_ = false;
  std::atomic<bool> closed_{false};
  bool finished_ = false;
};

}  // namespace sora::runner

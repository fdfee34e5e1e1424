// An Executor for the tests on Linux, where CoreML cannot run: blocks computed in plain C++. "add_one" takes a
// float32 `x` and returns `y` = x + 1; "halves" takes a float32 `x` and returns `a` = x / 2 and `n`, the element
// count as int64 [1]. A failing run is asked for with x[0] = −1. Its memory is what its callers hold, counted.
#pragma once

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "runner.h"

namespace sora::runner {

class FakeExecutor : public Executor {
 public:
  Outcome<ExecutorBlock> load(const std::string& name, const std::string& computeUnits) override {
    if (name != "add_one" && name != "halves") return Outcome<ExecutorBlock>::fail("no-such-block", "model fake has no block named " + name);
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t id = nextId_++;
    loaded_[id] = name;
    lastComputeUnits = computeUnits;
    const std::vector<std::string> outputs = name == "add_one" ? std::vector<std::string>{"y"} : std::vector<std::string>{"a", "n"};
    return Outcome<ExecutorBlock>::ok(ExecutorBlock{id, {"x"}, outputs, kWeightBytes});
  }

  Outcome<NamedTensors> run(int64_t block, const NamedTensors& inputs) override {
    std::string name;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = loaded_.find(block);
      if (found == loaded_.end()) return Outcome<NamedTensors>::fail("run-failed", "block not loaded");
      name = found->second;
    }
    runs++;
    if (inputs.size() != 1 || inputs[0].first != "x" || inputs[0].second->dtype != DType::Float32) {
      return Outcome<NamedTensors>::fail("bad-tensor", name + ": takes one float32 input x");
    }
    const Tensor& x = *inputs[0].second;
    std::vector<float> values(x.data.size() / 4);
    if (!values.empty()) std::memcpy(values.data(), x.data.data(), x.data.size());
    if (!values.empty() && values[0] == -1.0f) return Outcome<NamedTensors>::fail("run-failed", name + ": asked to fail");
    for (float& value : values) value = name == "add_one" ? value + 1.0f : value / 2.0f;
    auto out = std::make_shared<Tensor>(Tensor{DType::Float32, x.dims, std::vector<uint8_t>(x.data.size())});
    if (!values.empty()) std::memcpy(out->data.data(), values.data(), out->data.size());
    if (name == "add_one") return Outcome<NamedTensors>::ok({{"y", out}});
    const int64_t count = static_cast<int64_t>(values.size());
    auto n = std::make_shared<Tensor>(Tensor{DType::Int64, {1}, std::vector<uint8_t>(8)});
    std::memcpy(n->data.data(), &count, 8);
    return Outcome<NamedTensors>::ok({{"a", out}, {"n", n}});
  }

  void unload(int64_t block) override {
    std::lock_guard<std::mutex> lock(mutex_);
    loaded_.erase(block);
    unloads++;
  }

  Memory memory() override {
    std::lock_guard<std::mutex> lock(mutex_);
    return Memory{loaded_.size() * kWeightBytes, available};
  }

  uint64_t weightBytes(const std::string&) override { return kWeightBytes; }

  size_t loadedCount() {
    std::lock_guard<std::mutex> lock(mutex_);
    return loaded_.size();
  }

  static constexpr uint64_t kWeightBytes = 1 << 20;
  std::atomic<uint64_t> available{8ull << 30};
  std::atomic<int> runs{0};
  std::atomic<int> unloads{0};
  std::string lastComputeUnits;

 private:
  std::mutex mutex_;
  std::map<int64_t, std::string> loaded_;
  int64_t nextId_ = 1;
};

// The hello reply's description of a fake runner.
inline Json FakeIdentity() {
  return Json(Json::Object{
      {"runner", "sora-runner-core fake"},
      {"device", Json(Json::Object{{"name", "test"}, {"model", "linux"}, {"os", "Linux"}, {"osVersion", "-"}, {"arch", "x64"}})},
      {"backend", "fake"},
      {"model", Json(Json::Object{{"name", "fake"}, {"architecture", Json(Json::Object{})}})},
  });
}

}  // namespace sora::runner

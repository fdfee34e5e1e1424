// The runner core's Executor on the iPhone: the blocks of one model folder (manifest.json and its CoreML packages,
// copied into the app's Documents by `ondevice-sora device setup`), compiled, loaded and run through the CoreML
// bridge's core (native/coreml-bridge/coreml_core.h), each block on its own serial queue as on the Mac.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "runner.h"

namespace sora::runner {

class CoreMLExecutor : public Executor {
 public:
  // The folder's manifest read and checked (CoreML blocks); nullptr with `error` set when it cannot serve.
  static std::unique_ptr<CoreMLExecutor> Open(const std::string& modelDir, const std::string& cacheDir, std::string* error);
  ~CoreMLExecutor() override;

  // The hello reply's "model": the manifest's name and architecture (the host checks it serves the same model).
  Json modelIdentity() const;

  Outcome<ExecutorBlock> load(const std::string& name, const std::string& computeUnits) override;
  Outcome<NamedTensors> run(int64_t block, const NamedTensors& inputs) override;
  void unload(int64_t block) override;
  Memory memory() override;
  uint64_t weightBytes(const std::string& name) override;

 private:
  struct Declared {
    std::string package;      // path of the .mlpackage
    std::string digest;       // its sha256 in the manifest: the compile cache's key
    std::string computeUnits;  // the manifest's, when a load does not say
    uint64_t weightBytes = 0;
  };
  struct Loaded;

  CoreMLExecutor(std::string cacheDir, Json manifest, std::map<std::string, Declared> blocks);

  std::string cacheDir_;
  Json manifest_;
  std::map<std::string, Declared> blocks_;
  std::mutex mutex_;
  std::map<int64_t, std::shared_ptr<Loaded>> loaded_;
  int64_t nextId_ = 1;
};

// Memory of this process as iOS counts it: its footprint (task_info's phys_footprint) and what it may still take
// before jetsam ends it (os_proc_available_memory).
Memory ProcessMemory();

}  // namespace sora::runner

#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "platform.h"
#include "proc_text.h"

namespace sora {
namespace {

// Both cgroup versions report "no limit" as a huge number (v1: PAGE_COUNTER_MAX pages in bytes).
constexpr uint64_t kUnlimited = uint64_t{1} << 62;

std::unordered_map<std::string, uint64_t> StatusFields() {
  auto fields = ReadKilobyteFields("/proc/self/status");
  if (fields.find("VmRSS") == fields.end()) throw std::runtime_error("cannot read /proc/self/status");
  return fields;
}

uint64_t Field(const std::unordered_map<std::string, uint64_t>& fields, const char* name) {
  const auto it = fields.find(name);
  return it == fields.end() ? 0 : it->second;
}

// One cgroup level that limits memory, with the names its hierarchy version uses.
struct CgroupFiles {
  std::string limit, usage, stat, reclaimableKey;
};

struct CgroupLevel {
  uint64_t limit, usage, headroom;
};

struct CgroupLocation {
  std::string root;     // mount point of the hierarchy holding the memory controller
  std::string path;     // this process's cgroup inside it
  CgroupFiles files;
};

bool IsCgroupDirectory(const std::string& path) {
  return ReadSmallFile(path + "/cgroup.procs").has_value();
}

// /proc/self/cgroup lines are "id:controllers:path"; v2 is the line with id 0 and no controllers.
std::optional<CgroupLocation> LocateMemoryCgroup() {
  std::ifstream file("/proc/self/cgroup");
  std::string line;
  std::optional<CgroupLocation> v2;
  while (std::getline(file, line)) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    std::istringstream list(controllers);
    std::string controller;
    while (std::getline(list, controller, ',')) {
      if (controller == "memory") {
        return CgroupLocation{"/sys/fs/cgroup/memory", path,
                              {"memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat",
                               "total_inactive_file"}};
      }
    }
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      const std::string root = ReadSmallFile("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup"
                                                                                   : "/sys/fs/cgroup/unified";
      v2 = CgroupLocation{root, path, {"memory.max", "memory.current", "memory.stat", "inactive_file"}};
    }
  }
  return v2;
}

std::optional<CgroupLevel> ReadLevel(const std::string& dir, const CgroupFiles& files) {
  const auto limit = ReadNumberFile(dir + "/" + files.limit);
  const auto usage = ReadNumberFile(dir + "/" + files.usage);
  if (!limit || !usage || *limit >= kUnlimited) return std::nullopt;
  // Inactive file pages are charged to the cgroup but reclaimed before it hits its limit.
  const auto stat = ReadSpaceSeparatedFields(dir + "/" + files.stat);
  const auto inactive = stat.find(files.reclaimableKey);
  const uint64_t reclaimable = inactive == stat.end() ? 0 : inactive->second;
  const uint64_t workingSet = *usage > reclaimable ? *usage - reclaimable : 0;
  return CgroupLevel{*limit, *usage, *limit > workingSet ? *limit - workingSet : 0};
}

// A parent's limit binds its children too, so every level up to the root is checked.
std::optional<CgroupLevel> TightestCgroupLevel() {
  const auto location = LocateMemoryCgroup();
  if (!location) return std::nullopt;
  std::string relative = location->path == "/" ? "" : location->path;
  // Inside a cgroup namespace the listed path may not exist under the mount; the mount is our cgroup then.
  if (!IsCgroupDirectory(location->root + relative)) relative.clear();
  std::optional<CgroupLevel> tightest;
  while (true) {
    const auto level = ReadLevel(location->root + relative, location->files);
    if (level && (!tightest || level->headroom < tightest->headroom)) tightest = level;
    if (relative.empty()) break;
    relative.erase(relative.rfind('/'));
  }
  return tightest;
}

}  // namespace

ProcessMemory ReadProcessMemory() {
  const auto fields = StatusFields();
  const uint64_t anonymous = Field(fields, "RssAnon");
  return ProcessMemory{Field(fields, "VmRSS"), anonymous, Field(fields, "RssFile"),
                       anonymous + Field(fields, "RssShmem")};
}

uint64_t ReadPeakRss() {
  return Field(StatusFields(), "VmHWM");
}

bool ResetPeakRss() {
  // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
  std::ofstream clearRefs("/proc/self/clear_refs");
  clearRefs << "5";
  clearRefs.flush();
  return static_cast<bool>(clearRefs);
}

AvailableMemory ReadAvailableMemory() {
  const auto meminfo = ReadKilobyteFields("/proc/meminfo");
  const uint64_t total = Field(meminfo, "MemTotal");
  if (total == 0) throw std::runtime_error("cannot read /proc/meminfo");
  const uint64_t systemAvailable = Field(meminfo, "MemAvailable");
  AvailableMemory result{systemAvailable, total, systemAvailable, std::nullopt, std::nullopt};
  if (const auto cgroup = TightestCgroupLevel()) {
    result.available = std::min(systemAvailable, cgroup->headroom);
    result.cgroupLimit = cgroup->limit;
    result.cgroupUsage = cgroup->usage;
  }
  return result;
}

bool TrimMallocHeap() {
#if defined(__GLIBC__)
  return malloc_trim(0) != 0;
#else
  return false;  // musl and others have no malloc_trim; their free() already returns large blocks.
#endif
}

bool SetMmapThreshold(uint64_t bytes) {
#if defined(__GLIBC__)
  // A fixed threshold also turns off glibc's dynamic one, which after the first large free() serves allocations of
  // up to 32 MiB from the heap, where freed activations stay resident (runtime-facts §4).
  return bytes <= static_cast<uint64_t>(INT32_MAX) && mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1;
#else
  (void)bytes;
  return false;
#endif
}

Capabilities PlatformCapabilities() {
#if defined(__GLIBC__)
  return Capabilities{true, true, true};
#else
  return Capabilities{false, true, false};
#endif
}

}  // namespace sora

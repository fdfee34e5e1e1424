// Process and system memory figures. One implementation per OS (platform_linux.cc, platform_darwin.cc);
// CMakeLists.txt compiles the one matching the target.
#pragma once

#include <cstdint>
#include <optional>

namespace sora {

struct ProcessMemory {
  uint64_t rss;         // resident pages, all kinds
  uint64_t anonymous;   // resident heap/stack pages: what malloc_trim and unloading can give back
  uint64_t fileBacked;  // resident pages of mapped files (mmapped weights): the kernel may drop them
  // Memory charged to the process the way the OS counts it against its limits: macOS phys_footprint,
  // Linux anonymous + shared-memory pages (what cannot be dropped without swapping).
  uint64_t footprint;
};

struct AvailableMemory {
  uint64_t available;        // what this process may still allocate: min(system, cgroup headroom)
  uint64_t total;            // physical memory of the machine
  uint64_t systemAvailable;  // Linux MemAvailable; macOS free + inactive + purgeable pages
  std::optional<uint64_t> cgroupLimit;  // the tightest memory limit above this process, if any
  std::optional<uint64_t> cgroupUsage;  // that cgroup's charged usage, page cache included
};

struct Capabilities {
  bool mallocTrim;    // the C library can return freed heap pages (glibc)
  bool resetPeakRss;  // the peak RSS counter can be reset (Linux /proc/self/clear_refs)
  bool mmapThreshold; // allocations above a fixed size can be made to get their own mapping (glibc mallopt)
};

ProcessMemory ReadProcessMemory();
uint64_t ReadPeakRss();
bool ResetPeakRss();
AvailableMemory ReadAvailableMemory();
// True when the C library handed memory back to the OS.
bool TrimMallocHeap();
// Allocations of at least `bytes` get their own mapping, returned to the OS by free(); true when the C library took it.
bool SetMmapThreshold(uint64_t bytes);
Capabilities PlatformCapabilities();

}  // namespace sora

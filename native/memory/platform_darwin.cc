// macOS. os_proc_available_memory() is not used: the SDK marks it API_UNAVAILABLE(macos) (iOS-family only).
#include <mach/mach.h>
#include <malloc/malloc.h>
#include <sys/sysctl.h>

#include <stdexcept>

#include "platform.h"

namespace sora {
namespace {

// Every mach_host_self() call adds a send right to the port; one is enough.
mach_port_t Host() {
  static const mach_port_t host = mach_host_self();
  return host;
}

task_vm_info_data_t TaskVmInfo() {
  task_vm_info_data_t info{};
  mach_msg_type_number_t count = TASK_VM_INFO_COUNT;
  if (task_info(mach_task_self(), TASK_VM_INFO, reinterpret_cast<task_info_t>(&info), &count) != KERN_SUCCESS) {
    throw std::runtime_error("task_info(TASK_VM_INFO) failed");
  }
  return info;
}

uint64_t PhysicalMemory() {
  uint64_t bytes = 0;
  size_t length = sizeof bytes;
  if (sysctlbyname("hw.memsize", &bytes, &length, nullptr, 0) != 0) throw std::runtime_error("sysctl hw.memsize failed");
  return bytes;
}

// Pages the kernel hands out without paging anything dirty out, as Activity Monitor estimates it.
// free_count already includes speculative pages.
uint64_t ReclaimablePages() {
  vm_statistics64_data_t stats{};
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  if (host_statistics64(Host(), HOST_VM_INFO64, reinterpret_cast<host_info64_t>(&stats), &count) !=
      KERN_SUCCESS) {
    throw std::runtime_error("host_statistics64(HOST_VM_INFO64) failed");
  }
  return uint64_t{stats.free_count} + stats.inactive_count + stats.purgeable_count;
}

uint64_t HostPageSize() {
  vm_size_t bytes = 0;
  if (host_page_size(Host(), &bytes) != KERN_SUCCESS) throw std::runtime_error("host_page_size failed");
  return bytes;
}

}  // namespace

ProcessMemory ReadProcessMemory() {
  const auto info = TaskVmInfo();
  return ProcessMemory{info.resident_size, info.internal, info.external, info.phys_footprint};
}

uint64_t ReadPeakRss() {
  return TaskVmInfo().resident_size_peak;
}

bool ResetPeakRss() {
  return false;  // no public interface resets resident_size_peak
}

AvailableMemory ReadAvailableMemory() {
  const uint64_t systemAvailable = ReclaimablePages() * HostPageSize();
  return AvailableMemory{systemAvailable, PhysicalMemory(), systemAvailable, std::nullopt, std::nullopt};
}

bool TrimMallocHeap() {
  // The libmalloc counterpart of malloc_trim: asks every zone to return free pages.
  return malloc_zone_pressure_relief(nullptr, 0) > 0;
}

bool SetMmapThreshold(uint64_t) {
  return false;  // libmalloc already serves large allocations from their own regions and returns them on free()
}

Capabilities PlatformCapabilities() {
  return Capabilities{true, false, false};
}

}  // namespace sora

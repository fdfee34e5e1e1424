// Page-cache control for block files. Every function blocks on disk I/O: call them off the JS thread.
// Failures throw std::system_error whose what() names the operation and the path.
#pragma once

#include <cstdint>
#include <string>

namespace sora {

// Reads [offset, offset + length) of the file into the page cache (length 0: to the end) and returns when the
// pages are there, so the next load finds them in memory. Returns the number of bytes covered.
uint64_t PrefetchFile(const std::string& path, uint64_t offset, uint64_t length);

// Writes back and asks the kernel to drop the file's cached pages, so the next read really comes from disk.
// Pages still mapped by some process (a loaded model) stay.
void EvictFile(const std::string& path);

// Bytes of the file currently in the page cache (mincore over a fresh mapping).
uint64_t ResidentBytes(const std::string& path);

}  // namespace sora

// Readers for the small text files Linux uses as its memory API (/proc, /sys/fs/cgroup).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace sora {

// Whole content of a small pseudo-file; nullopt when it cannot be opened.
std::optional<std::string> ReadSmallFile(const std::string& path);

// "Name:   1234 kB" lines of /proc/self/status or /proc/meminfo, values converted to bytes.
std::unordered_map<std::string, uint64_t> ReadKilobyteFields(const std::string& path);

// "name 1234" lines such as those of a cgroup's memory.stat.
std::unordered_map<std::string, uint64_t> ReadSpaceSeparatedFields(const std::string& path);

// A file holding one unsigned number; nullopt when missing or not a number (cgroup v2 writes "max").
std::optional<uint64_t> ReadNumberFile(const std::string& path);

}  // namespace sora

#include "proc_text.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sora {

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return std::nullopt;
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

std::unordered_map<std::string, uint64_t> ReadKilobyteFields(const std::string& path) {
  std::unordered_map<std::string, uint64_t> fields;
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream rest(line.substr(colon + 1));
    uint64_t value = 0;
    std::string unit;
    if (!(rest >> value)) continue;
    rest >> unit;
    fields[line.substr(0, colon)] = unit == "kB" ? value * 1024 : value;
  }
  return fields;
}

std::unordered_map<std::string, uint64_t> ReadSpaceSeparatedFields(const std::string& path) {
  std::unordered_map<std::string, uint64_t> fields;
  std::ifstream file(path);
  std::string name;
  uint64_t value = 0;
  while (file >> name >> value) fields[name] = value;
  return fields;
}

std::optional<uint64_t> ReadNumberFile(const std::string& path) {
  const auto content = ReadSmallFile(path);
  if (!content) return std::nullopt;
  const char* begin = content->c_str();
  char* end = nullptr;
  const unsigned long long value = std::strtoull(begin, &end, 10);
  if (end == begin) return std::nullopt;
  return static_cast<uint64_t>(value);
}

}  // namespace sora

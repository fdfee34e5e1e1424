// std::string <-> NSString, UTF-8 both ways.
#pragma once

#include <string>

#include "coreml_imports.h"

namespace sora {

inline std::string ToStdString(NSString* text) {
  return text == nil ? std::string() : std::string(text.UTF8String);
}

inline NSString* ToNSString(const std::string& text) {
  return [NSString stringWithUTF8String:text.c_str()];
}

}  // namespace sora

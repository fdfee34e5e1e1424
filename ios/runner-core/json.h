// A small JSON value with a strict, bounded parser and a compact writer, for the runner protocol's headers
// (docs/runner-protocol.md) and the app's runner.json. Written here rather than taken from a library: the runner
// needs a few hundred lines of it, and a dependency would have to be found both by cmake on Linux (where the tests
// run) and by the Xcode build of the app. Objects keep their keys in insertion order, so that what is written
// matches the bytes of the test vectors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sora::runner {

class Json {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool value) : kind_(Kind::Bool), bool_(value) {}
  Json(int value) : Json(static_cast<int64_t>(value)) {}
  Json(int64_t value) : kind_(Kind::Number), number_(static_cast<double>(value)), integer_(value), isInteger_(true) {}
  Json(uint64_t value) : Json(static_cast<int64_t>(value)) {}
  Json(double value);
  Json(const char* value) : kind_(Kind::String), string_(value) {}
  Json(std::string value) : kind_(Kind::String), string_(std::move(value)) {}
  Json(Array value) : kind_(Kind::Array), array_(std::make_shared<Array>(std::move(value))) {}
  Json(Object value) : kind_(Kind::Object), object_(std::make_shared<Object>(std::move(value))) {}

  Kind kind() const { return kind_; }
  bool isNull() const { return kind_ == Kind::Null; }
  bool isString() const { return kind_ == Kind::String; }
  bool isArray() const { return kind_ == Kind::Array; }
  bool isObject() const { return kind_ == Kind::Object; }
  bool isBool() const { return kind_ == Kind::Bool; }
  // A number written without a fraction or exponent that fits in 64 bits.
  bool isInteger() const { return kind_ == Kind::Number && isInteger_; }

  bool asBool() const { return bool_; }
  int64_t asInteger() const { return integer_; }
  double asNumber() const { return number_; }
  const std::string& asString() const { return string_; }
  const Array& asArray() const { return *array_; }
  const Object& asObject() const { return *object_; }

  // The member `key` of an object, or nullptr.
  const Json* find(std::string_view key) const;
  // Adds (or replaces) a member of an object.
  void set(std::string key, Json value);

  // Compact, as JavaScript's JSON.stringify writes it.
  std::string dump() const;

  // Deep equality; numbers compare by value.
  bool operator==(const Json& other) const;
  bool operator!=(const Json& other) const { return !(*this == other); }

 private:
  void dumpTo(std::string& out) const;

  Kind kind_ = Kind::Null;
  bool bool_ = false;
  double number_ = 0;
  int64_t integer_ = 0;
  bool isInteger_ = false;
  std::string string_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Object> object_;
};

struct JsonError {
  std::string message;
  size_t offset = 0;
};

// Parses one JSON text (RFC 8259, UTF-8 checked); nesting deeper than `maxDepth` is refused.
std::optional<Json> ParseJson(std::string_view text, JsonError* error = nullptr, int maxDepth = 64);

}  // namespace sora::runner

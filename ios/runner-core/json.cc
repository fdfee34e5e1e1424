#include "json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace sora::runner {

Json::Json(double value) : kind_(Kind::Number), number_(value) {
  // Whole numbers within 2^53 are written like JavaScript writes them: without a fraction.
  if (std::isfinite(value) && std::floor(value) == value && std::fabs(value) <= 9007199254740992.0) {
    integer_ = static_cast<int64_t>(value);
    isInteger_ = true;
  }
}

const Json* Json::find(std::string_view key) const {
  if (kind_ != Kind::Object) return nullptr;
  for (const auto& [name, value] : *object_) {
    if (name == key) return &value;
  }
  return nullptr;
}

void Json::set(std::string key, Json value) {
  if (kind_ != Kind::Object) {
    kind_ = Kind::Object;
    object_ = std::make_shared<Object>();
  } else if (object_.use_count() > 1) {
    object_ = std::make_shared<Object>(*object_);  // copy on write: values share their members
  }
  for (auto& [name, existing] : *object_) {
    if (name == key) {
      existing = std::move(value);
      return;
    }
  }
  object_->emplace_back(std::move(key), std::move(value));
}

namespace {

void DumpString(const std::string& text, std::string& out) {
  out += '"';
  for (const unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace

void Json::dumpTo(std::string& out) const {
  switch (kind_) {
    case Kind::Null: out += "null"; break;
    case Kind::Bool: out += bool_ ? "true" : "false"; break;
    case Kind::Number: {
      if (isInteger_) {
        out += std::to_string(integer_);
      } else if (!std::isfinite(number_)) {
        out += "null";  // as JSON.stringify does
      } else {
        char text[32];
        std::snprintf(text, sizeof text, "%.17g", number_);
        out += text;
      }
      break;
    }
    case Kind::String: DumpString(string_, out); break;
    case Kind::Array: {
      out += '[';
      for (size_t i = 0; i < array_->size(); ++i) {
        if (i > 0) out += ',';
        (*array_)[i].dumpTo(out);
      }
      out += ']';
      break;
    }
    case Kind::Object: {
      out += '{';
      bool first = true;
      for (const auto& [name, value] : *object_) {
        if (!first) out += ',';
        first = false;
        DumpString(name, out);
        out += ':';
        value.dumpTo(out);
      }
      out += '}';
      break;
    }
  }
}

std::string Json::dump() const {
  std::string out;
  dumpTo(out);
  return out;
}

bool Json::operator==(const Json& other) const {
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::Null: return true;
    case Kind::Bool: return bool_ == other.bool_;
    case Kind::Number: return isInteger_ && other.isInteger_ ? integer_ == other.integer_ : number_ == other.number_;
    case Kind::String: return string_ == other.string_;
    case Kind::Array: return *array_ == *other.array_;
    case Kind::Object: {
      if (object_->size() != other.object_->size()) return false;
      for (const auto& [name, value] : *object_) {
        const Json* theirs = other.find(name);
        if (theirs == nullptr || *theirs != value) return false;
      }
      return true;
    }
  }
  return false;
}

namespace {

class Parser {
 public:
  Parser(std::string_view text, int maxDepth) : text_(text), maxDepth_(maxDepth) {}

  std::optional<Json> parse(JsonError* error) {
    skipSpace();
    std::optional<Json> value = parseValue(0);
    if (value) {
      skipSpace();
      if (at_ != text_.size()) value = fail("unexpected text after the value");
    }
    if (!value && error != nullptr) *error = JsonError{message_, at_};
    return value;
  }

 private:
  std::nullopt_t fail(const char* message) {
    if (message_.empty()) message_ = message;
    return std::nullopt;
  }

  void skipSpace() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) ++at_;
  }

  bool literal(std::string_view word) {
    if (text_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  std::optional<Json> parseValue(int depth) {
    if (depth > maxDepth_) return fail("nested too deeply");
    if (at_ >= text_.size()) return fail("unexpected end");
    switch (text_[at_]) {
      case '{': return parseObject(depth);
      case '[': return parseArray(depth);
      case '"': {
        std::optional<std::string> text = parseString();
        if (!text) return std::nullopt;
        return Json(std::move(*text));
      }
      case 't': return literal("true") ? std::optional<Json>(Json(true)) : fail("bad literal");
      case 'f': return literal("false") ? std::optional<Json>(Json(false)) : fail("bad literal");
      case 'n': return literal("null") ? std::optional<Json>(Json(nullptr)) : fail("bad literal");
      default: return parseNumber();
    }
  }

  std::optional<Json> parseObject(int depth) {
    ++at_;
    Json::Object members;
    skipSpace();
    if (at_ < text_.size() && text_[at_] == '}') {
      ++at_;
      return Json(std::move(members));
    }
    while (true) {
      skipSpace();
      if (at_ >= text_.size() || text_[at_] != '"') return fail("expected a member name");
      std::optional<std::string> name = parseString();
      if (!name) return std::nullopt;
      skipSpace();
      if (at_ >= text_.size() || text_[at_] != ':') return fail("expected ':'");
      ++at_;
      skipSpace();
      std::optional<Json> value = parseValue(depth + 1);
      if (!value) return std::nullopt;
      // A repeated name: the last one wins, as in JavaScript.
      bool replaced = false;
      for (auto& [existing, old] : members) {
        if (existing == *name) {
          old = std::move(*value);
          replaced = true;
        }
      }
      if (!replaced) members.emplace_back(std::move(*name), std::move(*value));
      skipSpace();
      if (at_ < text_.size() && text_[at_] == ',') {
        ++at_;
        continue;
      }
      if (at_ < text_.size() && text_[at_] == '}') {
        ++at_;
        return Json(std::move(members));
      }
      return fail("expected ',' or '}'");
    }
  }

  std::optional<Json> parseArray(int depth) {
    ++at_;
    Json::Array items;
    skipSpace();
    if (at_ < text_.size() && text_[at_] == ']') {
      ++at_;
      return Json(std::move(items));
    }
    while (true) {
      skipSpace();
      std::optional<Json> value = parseValue(depth + 1);
      if (!value) return std::nullopt;
      items.push_back(std::move(*value));
      skipSpace();
      if (at_ < text_.size() && text_[at_] == ',') {
        ++at_;
        continue;
      }
      if (at_ < text_.size() && text_[at_] == ']') {
        ++at_;
        return Json(std::move(items));
      }
      return fail("expected ',' or ']'");
    }
  }

  static void appendUtf8(uint32_t code, std::string& out) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xc0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xe0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    }
  }

  std::optional<uint32_t> hex4() {
    if (at_ + 4 > text_.size()) return std::nullopt;
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[at_++];
      value <<= 4;
      if (c >= '0' && c <= '9') value |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') value |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') value |= static_cast<uint32_t>(c - 'A' + 10);
      else return std::nullopt;
    }
    return value;
  }

  // The length of a valid UTF-8 sequence starting at `at_`, or 0.
  size_t utf8Length() const {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(text_[at_ + i]); };
    const unsigned char lead = byte(0);
    size_t length = lead < 0xc2 ? 0 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : lead < 0xf5 ? 4 : 0;
    if (length == 0 || at_ + length > text_.size()) return 0;
    for (size_t i = 1; i < length; ++i) {
      if ((byte(i) & 0xc0) != 0x80) return 0;
    }
    if (lead == 0xe0 && byte(1) < 0xa0) return 0;  // overlong
    if (lead == 0xed && byte(1) >= 0xa0) return 0;  // surrogate
    if (lead == 0xf0 && byte(1) < 0x90) return 0;  // overlong
    if (lead == 0xf4 && byte(1) >= 0x90) return 0;  // beyond U+10FFFF
    return length;
  }

  std::optional<std::string> parseString() {
    ++at_;
    std::string out;
    while (at_ < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[at_]);
      if (c == '"') {
        ++at_;
        return out;
      }
      if (c < 0x20) return fail("a control character in a string");
      if (c == '\\') {
        ++at_;
        if (at_ >= text_.size()) break;
        const char escape = text_[at_++];
        switch (escape) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::optional<uint32_t> code = hex4();
            if (!code) return fail("a bad \\u escape");
            if (*code >= 0xd800 && *code < 0xdc00) {
              if (!literal("\\u")) return fail("a lone surrogate");
              std::optional<uint32_t> low = hex4();
              if (!low || *low < 0xdc00 || *low >= 0xe000) return fail("a lone surrogate");
              *code = 0x10000 + ((*code - 0xd800) << 10) + (*low - 0xdc00);
            } else if (*code >= 0xdc00 && *code < 0xe000) {
              return fail("a lone surrogate");
            }
            appendUtf8(*code, out);
            break;
          }
          default: return fail("a bad escape");
        }
        continue;
      }
      if (c < 0x80) {
        out += static_cast<char>(c);
        ++at_;
        continue;
      }
      const size_t length = utf8Length();
      if (length == 0) return fail("invalid UTF-8");
      out.append(text_.substr(at_, length));
      at_ += length;
    }
    return fail("an unterminated string");
  }

  std::optional<Json> parseNumber() {
    const size_t start = at_;
    if (at_ < text_.size() && text_[at_] == '-') ++at_;
    const auto digits = [&] {
      const size_t from = at_;
      while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') ++at_;
      return at_ - from;
    };
    const size_t whole = at_;
    if (digits() == 0) return fail("expected a value");
    if (text_[whole] == '0' && at_ - whole > 1) return fail("a number with a leading zero");
    bool integral = true;
    if (at_ < text_.size() && text_[at_] == '.') {
      ++at_;
      integral = false;
      if (digits() == 0) return fail("a number without digits after '.'");
    }
    if (at_ < text_.size() && (text_[at_] == 'e' || text_[at_] == 'E')) {
      ++at_;
      integral = false;
      if (at_ < text_.size() && (text_[at_] == '+' || text_[at_] == '-')) ++at_;
      if (digits() == 0) return fail("a number without exponent digits");
    }
    const std::string number(text_.substr(start, at_ - start));
    if (integral && number.size() <= 18) return Json(static_cast<int64_t>(std::strtoll(number.c_str(), nullptr, 10)));
    return Json(std::strtod(number.c_str(), nullptr));
  }

  std::string_view text_;
  int maxDepth_;
  size_t at_ = 0;
  std::string message_;
};

}  // namespace

std::optional<Json> ParseJson(std::string_view text, JsonError* error, int maxDepth) {
  return Parser(text, maxDepth).parse(error);
}

}  // namespace sora::runner

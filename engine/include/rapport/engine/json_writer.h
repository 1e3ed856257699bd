// JsonWriter: appends compact JSON to a caller-owned std::string.
//
// Used on hot paths (actions, dead letters), so it never allocates beyond the
// growth of the target string, which callers reuse. Strings are escaped per
// RFC 8259; bytes that are not valid UTF-8 become U+FFFD so the output is
// always valid JSON. The writer does not check nesting: callers pair
// BeginObject/EndObject themselves.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rapport {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  void BeginObject() { Sep(); out_->push_back('{'); first_ = true; }
  void EndObject() { out_->push_back('}'); first_ = false; }
  void BeginArray() { Sep(); out_->push_back('['); first_ = true; }
  void EndArray() { out_->push_back(']'); first_ = false; }
  // Writes `"key":`; the next value call writes the value.
  void Key(std::string_view key);
  void String(std::string_view s);
  void Int(int64_t v);
  // Shortest round-trip spelling; non-finite numbers are written as null.
  void Number(double v);
  void Bool(bool v);
  void Null();
  // Appends already-encoded JSON verbatim as one value.
  void Raw(std::string_view json);

  // Appends s escaped (without quotes) to out.
  static void AppendEscaped(std::string* out, std::string_view s);

 private:
  void Sep() {
    if (!first_ && !after_key_) out_->push_back(',');
    first_ = false;
    after_key_ = false;
  }
  std::string* out_;
  bool first_ = true;
  bool after_key_ = false;
};

}  // namespace rapport

// Byte encodings used by the state store (see docs/state-format.md).
//
// Varints are LEB128 (7 bits a byte, low first); signed values are zig-zag
// encoded first. Fixed-width big-endian integers are used in keys so that
// byte order equals numeric order; signed ones have their sign bit flipped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rapport::coding {

void PutVarint(std::string* out, uint64_t v);
void PutSignedVarint(std::string* out, int64_t v);
void PutBigEndian32(std::string* out, uint32_t v);
void PutBigEndian64(std::string* out, uint64_t v);
// Order-preserving: negative values sort before positive ones.
void PutOrderedInt64(std::string* out, int64_t v);
void PutLengthPrefixed(std::string* out, std::string_view s);

// A cursor over encoded bytes. Each Get* returns false (and leaves the
// output alone) when the input is too short or malformed; callers turn that
// into a corruption Status.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool GetVarint(uint64_t* v);
  bool GetSignedVarint(int64_t* v);
  bool GetBigEndian32(uint32_t* v);
  bool GetBigEndian64(uint64_t* v);
  bool GetOrderedInt64(int64_t* v);
  bool GetLengthPrefixed(std::string_view* s);
  bool GetByte(uint8_t* b);
  bool empty() const { return in_.empty(); }
  std::string_view rest() const { return in_; }

 private:
  std::string_view in_;
};

}  // namespace rapport::coding

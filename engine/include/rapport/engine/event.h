// Events and their decoding (docs/rule-language.md, "Events: what goes in").
//
// An event is one JSON object: `type` (non-empty string), `customer_id`
// (non-empty string without NUL bytes), `ts` (RFC 3339 with a zone, or an
// integer of epoch milliseconds) and any other fields. A purchase must carry a
// numeric `amount`. An event larger than kMaxEventBytes is rejected unread.
// Anything else that breaks the contract is rejected with a RejectReason and
// a message that says what was wrong; the caller sends it to the dead-letter
// sink and goes on.
//
// Lifecycle: an EventDecoder owns a simdjson parser whose buffers grow to the
// largest event seen and are then reused: decoding allocates nothing in the
// steady state. The Event it fills points into the decoder and into the input
// text and is valid until the next Decode() call. One decoder per thread.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "rapport/engine/time.h"

namespace rapport {

inline constexpr size_t kMaxEventBytes = 1 << 20;  // 1 MiB
// Readable bytes that must follow the text handed to Decode().
inline constexpr size_t kEventPadding = simdjson::SIMDJSON_PADDING;

// X(enumerator, stable name used in dead letters and summaries)
#define RAPPORT_REJECT_REASONS(X)                         \
  X(kEmptyLine, "empty_line")                             \
  X(kTooLarge, "too_large")                               \
  X(kInvalidJson, "invalid_json")                         \
  X(kNotAnObject, "not_an_object")                        \
  X(kMissingType, "missing_type")                         \
  X(kBadType, "bad_type")                                 \
  X(kMissingCustomerId, "missing_customer_id")            \
  X(kBadCustomerId, "bad_customer_id")                    \
  X(kMissingTs, "missing_ts")                             \
  X(kBadTs, "bad_ts")                                     \
  X(kMissingAmount, "missing_amount")                     \
  X(kBadAmount, "bad_amount")

enum class RejectReason : uint8_t {
#define RAPPORT_X(e, name) e,
  RAPPORT_REJECT_REASONS(RAPPORT_X)
#undef RAPPORT_X
};
inline constexpr size_t kRejectReasonCount = 0
#define RAPPORT_X(e, name) +1
    RAPPORT_REJECT_REASONS(RAPPORT_X)
#undef RAPPORT_X
    ;
std::string_view RejectReasonName(RejectReason reason);

class EventDecoder;

struct Event {
  std::string_view type;
  std::string_view customer_id;
  EventTime ts;
  std::string_view event_id;  // the optional `event_id` field; empty when absent or not a string
  // Purchases: the amount in hundredths (cents), rounded half away from zero.
  int64_t amount_cents = 0;
  bool has_amount = false;

  // The whole object, for rules that read other fields. Decode() parses it;
  // after Rebuild() the first call parses the text with the rebuilding
  // decoder (an error only if that text is no longer what was decoded).
  simdjson::simdjson_result<simdjson::dom::element> Root() const;

 private:
  friend class EventDecoder;
  std::string_view text_;  // the JSON, followed by kEventPadding readable bytes
  mutable EventDecoder* parser_ = nullptr;  // set while the root is still to parse
  mutable simdjson::dom::element root_;
};

struct Rejection {
  RejectReason reason;
  std::string message;  // e.g. `ts "yesterday" is neither RFC 3339 with a zone nor epoch milliseconds`
};

class EventDecoder {
 public:
  EventDecoder();
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;

  // Decodes `text` (one event, without its line terminator). At least
  // kEventPadding readable bytes must follow text.data() + text.size().
  // Returns true and fills *event, or returns false and fills *rejection.
  bool Decode(std::string_view text, Event* event, Rejection* rejection);

  // Takes *event, whose fields the caller copied from a successful Decode()
  // of `text` (by another decoder, in another thread: the sharded replay
  // decodes once to route), and defers its root: Root() parses `text` with
  // this decoder when a rule first reads a field beyond the decoded ones.
  // The text and the fields' strings must outlive the event; the event is
  // valid until this decoder's next Decode() or Rebuild().
  void Rebuild(std::string_view text, Event* event);

 private:
  friend struct Event;
  simdjson::dom::parser parser_;
};

}  // namespace rapport

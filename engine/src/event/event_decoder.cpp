// EventDecoder: one JSON line -> Event, or a Rejection that says why not.
//
// Decisions worth knowing:
// - simdjson's DOM parser is used with realloc_if_needed=false, so the text is
//   parsed in place (the caller guarantees kEventPadding readable bytes after
//   it). The parser's buffers grow to the largest event seen and are reused.
// - Duplicate keys: the first occurrence wins (simdjson's at_key()).
// - `ts` as integer epoch milliseconds must lie in years 0001-9999 (the range
//   ParseRfc3339 accepts and FormatRfc3339 prints); other integers are kBadTs.
// - `amount` is only read (and required) for `type == "purchase"`; for any
//   other type has_amount stays false and the field is left to `root`.
// - Rejection messages are built into the caller's Rejection::message, which
//   keeps its capacity across calls when the caller reuses it.
#include <charconv>
#include <cmath>
#include <cstring>

#include "rapport/engine/event.h"
#include "rapport/engine/json_writer.h"

namespace rapport {

std::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
#define RAPPORT_X(e, name) \
  case RejectReason::e:    \
    return name;
    RAPPORT_REJECT_REASONS(RAPPORT_X)
#undef RAPPORT_X
  }
  return "unknown";
}

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr size_t kMaxCustomerIdBytes = 256;
constexpr size_t kMaxQuotedBytes = 64;
constexpr double kMaxAmount = 1e13;
constexpr int64_t kMaxAmountInt = 10000000000000;  // 1e13
constexpr int64_t kMinEpochMs = -62135596800000;   // 0001-01-01T00:00:00.000Z
constexpr int64_t kMaxEpochMs = 253402300799999;   // 9999-12-31T23:59:59.999Z

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Typed reads of an element whose type() was already checked.
template <class T>
T As(element e) {
  T v{};
  if (e.get(v) != simdjson::SUCCESS) return T{};
  return v;
}

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendDouble(std::string* out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

// Appends `"value"`, JSON-escaped and cut to about kMaxQuotedBytes bytes
// (without splitting a UTF-8 sequence; "..." marks the cut).
void AppendQuoted(std::string* out, std::string_view value) {
  bool cut = false;
  if (value.size() > kMaxQuotedBytes) {
    size_t n = kMaxQuotedBytes;
    // Back off over continuation bytes so a multi-byte character stays whole.
    for (int i = 0; i < 3 && n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80; ++i) --n;
    value = value.substr(0, n);
    cut = true;
  }
  out->push_back('"');
  JsonWriter::AppendEscaped(out, value);
  if (cut) out->append("...");
  out->push_back('"');
}

// Appends a short description of a JSON value: `an object`, `an array`,
// `null`, `true`, `the number 42`, `the string "x"`, `an empty string`.
void AppendDescription(std::string* out, element e) {
  switch (e.type()) {
    case element_type::OBJECT: out->append("an object"); return;
    case element_type::ARRAY: out->append("an array"); return;
    case element_type::NULL_VALUE: out->append("null"); return;
    case element_type::BOOL: out->append(As<bool>(e) ? "true" : "false"); return;
    case element_type::INT64:
      out->append("the number ");
      AppendInt(out, As<int64_t>(e));
      return;
    case element_type::UINT64:
      out->append("the number ");
      AppendUint(out, As<uint64_t>(e));
      return;
    case element_type::DOUBLE:
      out->append("the number ");
      AppendDouble(out, As<double>(e));
      return;
    case element_type::STRING: {
      std::string_view s = As<std::string_view>(e);
      if (s.empty()) {
        out->append("an empty string");
      } else {
        out->append("the string ");
        AppendQuoted(out, s);
      }
      return;
    }
  }
  out->append("an unknown value");
}

std::string* Reject(Rejection* rejection, RejectReason reason) {
  rejection->reason = reason;
  rejection->message.clear();
  return &rejection->message;
}

const char* ErrorText(simdjson::error_code error) {
  using simdjson::error_code;
  switch (error) {
    case error_code::UTF8_ERROR: return "it is not valid UTF-8";
    case error_code::UNCLOSED_STRING: return "a string is not closed";
    case error_code::DEPTH_ERROR: return "it is nested too deeply";
    case error_code::CAPACITY: return "it is too large";
    case error_code::STRING_ERROR: return "a string is malformed";
    case error_code::UNESCAPED_CHARS: return "a string contains an unescaped control character";
    case error_code::NUMBER_ERROR: return "a number is malformed or out of range";
    case error_code::T_ATOM_ERROR:
    case error_code::F_ATOM_ERROR:
    case error_code::N_ATOM_ERROR: return "it has a misspelled true, false or null";
    case error_code::TAPE_ERROR:
    case error_code::INCOMPLETE_ARRAY_OR_OBJECT:
      return "its structure is broken (missing or extra braces, brackets, commas or colons, or it is truncated)";
    default: return simdjson::error_message(error);
  }
}

}  // namespace

EventDecoder::EventDecoder() : parser_(kMaxEventBytes) {}

bool EventDecoder::Decode(std::string_view text, Event* event, Rejection* rejection) {
  if (text.size() > kMaxEventBytes) {
    std::string* m = Reject(rejection, RejectReason::kTooLarge);
    m->append("event is ");
    AppendUint(m, text.size());
    m->append(" bytes; the limit is ");
    AppendUint(m, kMaxEventBytes);
    return false;
  }
  size_t first = 0;
  while (first < text.size() && IsJsonSpace(text[first])) ++first;
  if (first == text.size()) {
    Reject(rejection, RejectReason::kEmptyLine)->append(text.empty() ? "line is empty" : "line is only whitespace");
    return false;
  }

  element root;
  simdjson::error_code error = parser_.parse(text.data(), text.size(), /*realloc_if_needed=*/false).get(root);
  if (error) {
    std::string* m = Reject(rejection, RejectReason::kInvalidJson);
    m->append("event is not valid JSON: ");
    m->append(ErrorText(error));
    return false;
  }
  simdjson::dom::object obj;
  if (root.get(obj)) {
    std::string* m = Reject(rejection, RejectReason::kNotAnObject);
    m->append("event must be a JSON object, got ");
    AppendDescription(m, root);
    return false;
  }

  // type
  element value;
  if (obj.at_key("type").get(value)) {
    Reject(rejection, RejectReason::kMissingType)->append("event has no type");
    return false;
  }
  std::string_view type;
  if (value.get(type) || type.empty()) {
    std::string* m = Reject(rejection, RejectReason::kBadType);
    m->append("type must be a non-empty string, got ");
    AppendDescription(m, value);
    return false;
  }

  // customer_id
  if (obj.at_key("customer_id").get(value)) {
    Reject(rejection, RejectReason::kMissingCustomerId)->append("event has no customer_id");
    return false;
  }
  std::string_view customer_id;
  if (value.get(customer_id) || customer_id.empty()) {
    std::string* m = Reject(rejection, RejectReason::kBadCustomerId);
    m->append("customer_id must be a non-empty string, got ");
    AppendDescription(m, value);
    return false;
  }
  if (customer_id.size() > kMaxCustomerIdBytes) {
    std::string* m = Reject(rejection, RejectReason::kBadCustomerId);
    m->append("customer_id ");
    AppendQuoted(m, customer_id);
    m->append(" is ");
    AppendUint(m, customer_id.size());
    m->append(" bytes; the limit is ");
    AppendUint(m, kMaxCustomerIdBytes);
    return false;
  }
  if (std::memchr(customer_id.data(), '\0', customer_id.size()) != nullptr) {
    std::string* m = Reject(rejection, RejectReason::kBadCustomerId);
    m->append("customer_id ");
    AppendQuoted(m, customer_id);
    m->append(" contains a NUL byte");
    return false;
  }

  // ts
  if (obj.at_key("ts").get(value)) {
    Reject(rejection, RejectReason::kMissingTs)->append("event has no ts");
    return false;
  }
  EventTime ts;
  switch (value.type()) {
    case element_type::STRING: {
      std::string_view s = As<std::string_view>(value);
      std::optional<EventTime> t = ParseRfc3339(s);
      if (!t) {
        std::string* m = Reject(rejection, RejectReason::kBadTs);
        m->append("ts ");
        AppendQuoted(m, s);
        m->append(" is neither RFC 3339 with a zone nor integer epoch milliseconds");
        return false;
      }
      ts = *t;
      break;
    }
    case element_type::INT64: {
      int64_t ms = As<int64_t>(value);
      if (ms < kMinEpochMs || ms > kMaxEpochMs) {
        std::string* m = Reject(rejection, RejectReason::kBadTs);
        m->append("ts ");
        AppendInt(m, ms);
        m->append(" is out of range: epoch milliseconds must fall in years 0001-9999");
        return false;
      }
      ts.ms = ms;
      break;
    }
    case element_type::UINT64: {
      std::string* m = Reject(rejection, RejectReason::kBadTs);
      m->append("ts ");
      AppendUint(m, As<uint64_t>(value));
      m->append(" is out of range: epoch milliseconds must fall in years 0001-9999");
      return false;
    }
    default: {
      std::string* m = Reject(rejection, RejectReason::kBadTs);
      m->append("ts must be RFC 3339 with a zone or integer epoch milliseconds, got ");
      AppendDescription(m, value);
      return false;
    }
  }

  // amount (purchases only)
  int64_t amount_cents = 0;
  bool has_amount = false;
  if (type == "purchase") {
    if (obj.at_key("amount").get(value)) {
      Reject(rejection, RejectReason::kMissingAmount)->append("purchase has no amount");
      return false;
    }
    bool in_range = false;
    switch (value.type()) {
      case element_type::INT64: {
        int64_t v = As<int64_t>(value);
        in_range = v >= -kMaxAmountInt && v <= kMaxAmountInt;
        if (in_range) amount_cents = v * 100;
        break;
      }
      case element_type::UINT64: in_range = false; break;
      case element_type::DOUBLE: {
        double v = As<double>(value);
        in_range = std::isfinite(v) && std::fabs(v) <= kMaxAmount;
        if (in_range) amount_cents = std::llround(v * 100);
        break;
      }
      default: {
        std::string* m = Reject(rejection, RejectReason::kBadAmount);
        m->append("amount must be a number, got ");
        AppendDescription(m, value);
        return false;
      }
    }
    if (!in_range) {
      std::string* m = Reject(rejection, RejectReason::kBadAmount);
      m->append("amount ");
      if (value.type() == element_type::INT64) {
        AppendInt(m, As<int64_t>(value));
      } else if (value.type() == element_type::UINT64) {
        AppendUint(m, As<uint64_t>(value));
      } else {
        AppendDouble(m, As<double>(value));
      }
      m->append(" is out of range: its magnitude must be at most 1e13");
      return false;
    }
    has_amount = true;
  }

  // event_id (optional)
  std::string_view event_id;
  if (obj.at_key("event_id").get(value) == simdjson::SUCCESS) {
    if (value.get(event_id)) event_id = {};
  }

  event->type = type;
  event->customer_id = customer_id;
  event->ts = ts;
  event->event_id = event_id;
  event->amount_cents = amount_cents;
  event->has_amount = has_amount;
  event->text_ = text;
  event->parser_ = nullptr;
  event->root_ = root;
  return true;
}

void EventDecoder::Rebuild(std::string_view text, Event* event) {
  event->text_ = text;
  event->parser_ = this;
}

simdjson::simdjson_result<simdjson::dom::element> Event::Root() const {
  if (parser_ != nullptr) {
    element root;
    if (auto error = parser_->parser_.parse(text_.data(), text_.size(), /*realloc_if_needed=*/false).get(root)) {
      return error;
    }
    root_ = root;
    parser_ = nullptr;
  }
  return simdjson::simdjson_result<element>(element(root_));
}

}  // namespace rapport

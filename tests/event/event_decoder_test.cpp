#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "rapport/engine/event.h"

using rapport::Event;
using rapport::EventDecoder;
using rapport::kEventPadding;
using rapport::kMaxEventBytes;
using rapport::Rejection;
using rapport::RejectReason;
using rapport::RejectReasonName;

namespace {

// Holds a copy of the text followed by kEventPadding bytes, as the decoder
// requires, and decodes it.
class Harness {
 public:
  bool Decode(const std::string& text) {
    buffer_ = text;
    buffer_.append(kEventPadding, '\0');
    return decoder_.Decode(std::string_view(buffer_.data(), text.size()), &event, &rejection);
  }
  // Decodes text that must be rejected; returns the reason.
  RejectReason Reject(const std::string& text) {
    INFO(text.substr(0, 200));
    REQUIRE_FALSE(Decode(text));
    return rejection.reason;
  }
  // Decodes text that must be accepted.
  const Event& Accept(const std::string& text) {
    bool ok = Decode(text);
    INFO(text.substr(0, 200));
    INFO(rejection.message);
    REQUIRE(ok);
    return event;
  }

  Event event;
  Rejection rejection{RejectReason::kEmptyLine, ""};

 private:
  EventDecoder decoder_;
  std::string buffer_;
};

constexpr int64_t kJan5 = 1767607200000;  // 2026-01-05T10:00:00Z

std::string Ev(const std::string& ts_json, const std::string& extra = "") {
  return R"({"type":"page_view","customer_id":"c1","ts":)" + ts_json + extra + "}";
}

std::string Purchase(const std::string& amount_json) {
  return R"({"type":"purchase","customer_id":"c1","ts":"2026-01-05T10:00:00Z","amount":)" + amount_json + "}";
}

}  // namespace

TEST_CASE("RejectReasonName gives the stable names", "[event]") {
  CHECK(rapport::kRejectReasonCount == 12);
  CHECK(RejectReasonName(RejectReason::kEmptyLine) == "empty_line");
  CHECK(RejectReasonName(RejectReason::kTooLarge) == "too_large");
  CHECK(RejectReasonName(RejectReason::kInvalidJson) == "invalid_json");
  CHECK(RejectReasonName(RejectReason::kNotAnObject) == "not_an_object");
  CHECK(RejectReasonName(RejectReason::kMissingType) == "missing_type");
  CHECK(RejectReasonName(RejectReason::kBadType) == "bad_type");
  CHECK(RejectReasonName(RejectReason::kMissingCustomerId) == "missing_customer_id");
  CHECK(RejectReasonName(RejectReason::kBadCustomerId) == "bad_customer_id");
  CHECK(RejectReasonName(RejectReason::kMissingTs) == "missing_ts");
  CHECK(RejectReasonName(RejectReason::kBadTs) == "bad_ts");
  CHECK(RejectReasonName(RejectReason::kMissingAmount) == "missing_amount");
  CHECK(RejectReasonName(RejectReason::kBadAmount) == "bad_amount");
}

TEST_CASE("a well-formed event decodes", "[event]") {
  Harness h;
  const Event& e = h.Accept(
      R"({"type":"page_view","customer_id":"cust-42","ts":"2026-01-05T10:00:00.250Z","event_id":"e-1",)"
      R"("page":{"url":"/cart","tags":["a","b"],"meta":{"depth":2}},"score":7.5})");
  CHECK(e.type == "page_view");
  CHECK(e.customer_id == "cust-42");
  CHECK(e.ts.ms == kJan5 + 250);
  CHECK(e.event_id == "e-1");
  CHECK_FALSE(e.has_amount);
  CHECK(e.amount_cents == 0);

  // Nested objects are preserved in root.
  simdjson::dom::element root;
  REQUIRE(e.Root().get(root) == simdjson::SUCCESS);
  REQUIRE(root.is_object());
  std::string_view url;
  REQUIRE(root.at_pointer("/page/url").get(url) == simdjson::SUCCESS);
  CHECK(url == "/cart");
  std::string_view tag;
  REQUIRE(root.at_pointer("/page/tags/1").get(tag) == simdjson::SUCCESS);
  CHECK(tag == "b");
  int64_t depth = 0;
  REQUIRE(root.at_pointer("/page/meta/depth").get(depth) == simdjson::SUCCESS);
  CHECK(depth == 2);
  double score = 0;
  REQUIRE(root["score"].get(score) == simdjson::SUCCESS);
  CHECK(score == 7.5);
}

TEST_CASE("ts as RFC 3339 variants and as epoch milliseconds", "[event]") {
  Harness h;
  CHECK(h.Accept(Ev(R"("2026-01-05T10:00:00Z")")).ts.ms == kJan5);
  CHECK(h.Accept(Ev(R"("2026-01-05t10:00:00z")")).ts.ms == kJan5);
  CHECK(h.Accept(Ev(R"("2026-01-05 10:00:00Z")")).ts.ms == kJan5);
  CHECK(h.Accept(Ev(R"("2026-01-05T12:00:00+02:00")")).ts.ms == kJan5);
  CHECK(h.Accept(Ev(R"("2026-01-05T07:00:00-03:00")")).ts.ms == kJan5);
  CHECK(h.Accept(Ev(R"("2026-01-05T10:00:00.123456789Z")")).ts.ms == kJan5 + 123);
  CHECK(h.Accept(Ev("1767607200000")).ts.ms == kJan5);
  CHECK(h.Accept(Ev("0")).ts.ms == 0);
  CHECK(h.Accept(Ev("-1")).ts.ms == -1);
  CHECK(h.Accept(Ev("253402300799999")).ts.ms == 253402300799999);
  CHECK(h.Accept(Ev("-62135596800000")).ts.ms == -62135596800000);
}

TEST_CASE("empty_line", "[event]") {
  Harness h;
  CHECK(h.Reject("") == RejectReason::kEmptyLine);
  CHECK(h.rejection.message == "line is empty");
  CHECK(h.Reject("   \t \r") == RejectReason::kEmptyLine);
  CHECK(h.rejection.message == "line is only whitespace");
}

TEST_CASE("too_large is rejected without parsing", "[event]") {
  Harness h;
  // A valid event padded with whitespace past the limit.
  std::string big = Ev(R"("2026-01-05T10:00:00Z")");
  big.append(kMaxEventBytes + 1 - big.size(), ' ');
  REQUIRE(big.size() == kMaxEventBytes + 1);
  CHECK(h.Reject(big) == RejectReason::kTooLarge);
  CHECK(h.rejection.message == "event is 1048577 bytes; the limit is 1048576");

  // Exactly at the limit parses (the parser's capacity allows 1 MiB).
  std::string at_limit = Ev(R"("2026-01-05T10:00:00Z")", R"(,"blob":")");
  at_limit.append(kMaxEventBytes - at_limit.size() - 2, 'x');
  at_limit += "\"}";
  REQUIRE(at_limit.size() == kMaxEventBytes);
  const Event& e = h.Accept(at_limit);
  CHECK(e.customer_id == "c1");
  // And the decoder keeps working on small events afterwards.
  CHECK(h.Accept(Ev("5")).ts.ms == 5);
}

TEST_CASE("invalid_json: syntax errors, truncation, invalid UTF-8, binary", "[event]") {
  Harness h;
  for (const std::string& bad : {
           std::string(R"({"type":"x",)"),                               // truncated
           std::string(R"({"type":"x")"),                                // truncated
           std::string(R"({"type":"x" "customer_id":"c"})"),             // missing comma
           std::string(R"({type:"x"})"),                                 // unquoted key
           std::string(R"({"type":"x"}})"),                              // extra brace
           std::string(R"({"type":"x"} {"type":"y"})"),                  // two values
           std::string(R"({"type":tru})"),                               // bad atom
           std::string(R"({"type":"a\qb"})"),                            // bad escape
           std::string("{\"type\":\"a\xff\xfe\"}"),                      // invalid UTF-8
           std::string("{\"type\":\"\xc3\"}"),                           // truncated UTF-8
           std::string("{\"type\":\"a\tb\"}"),                           // raw control char
           std::string("\0\x01\x02junk\0", 9),                           // binary with NUL bytes
           std::string("{\"type\":\"x\0\"}", 13),                        // raw NUL in a string
           std::string("hello"),
           std::string(R"({"ts":01})"),                                  // leading zero
           std::string(2000, '['),                                       // nested too deeply
       }) {
    INFO(bad.substr(0, 80));
    CHECK(h.Reject(bad) == RejectReason::kInvalidJson);
    CHECK(h.rejection.message.rfind("event is not valid JSON: ", 0) == 0);
    CHECK(h.rejection.message.size() > std::string("event is not valid JSON: ").size());
  }
  h.Reject("{\"type\":\"a\xff\"}");
  CHECK(h.rejection.message == "event is not valid JSON: it is not valid UTF-8");
  h.Reject(R"({"type":"x",)");
  CHECK_THAT(h.rejection.message, Catch::Contains("truncated"));
}

TEST_CASE("not_an_object", "[event]") {
  Harness h;
  CHECK(h.Reject("[1,2,3]") == RejectReason::kNotAnObject);
  CHECK(h.rejection.message == "event must be a JSON object, got an array");
  CHECK(h.Reject("42") == RejectReason::kNotAnObject);
  CHECK(h.rejection.message == "event must be a JSON object, got the number 42");
  CHECK(h.Reject(R"("text")") == RejectReason::kNotAnObject);
  CHECK(h.rejection.message == R"(event must be a JSON object, got the string "text")");
  CHECK(h.Reject("null") == RejectReason::kNotAnObject);
  CHECK(h.rejection.message == "event must be a JSON object, got null");
  CHECK(h.Reject("  true  ") == RejectReason::kNotAnObject);
  CHECK(h.rejection.message == "event must be a JSON object, got true");
}

TEST_CASE("missing_type and bad_type", "[event]") {
  Harness h;
  CHECK(h.Reject(R"({"customer_id":"c1","ts":0})") == RejectReason::kMissingType);
  CHECK(h.rejection.message == "event has no type");
  CHECK(h.Reject("{}") == RejectReason::kMissingType);
  CHECK(h.Reject(R"({"type":42,"customer_id":"c1","ts":0})") == RejectReason::kBadType);
  CHECK(h.rejection.message == "type must be a non-empty string, got the number 42");
  CHECK(h.Reject(R"({"type":"","customer_id":"c1","ts":0})") == RejectReason::kBadType);
  CHECK(h.rejection.message == "type must be a non-empty string, got an empty string");
  CHECK(h.Reject(R"({"type":null,"customer_id":"c1","ts":0})") == RejectReason::kBadType);
  CHECK(h.rejection.message == "type must be a non-empty string, got null");
  CHECK(h.Reject(R"({"type":["purchase"],"customer_id":"c1","ts":0})") == RejectReason::kBadType);
  CHECK(h.rejection.message == "type must be a non-empty string, got an array");
}

TEST_CASE("missing_customer_id and bad_customer_id", "[event]") {
  Harness h;
  CHECK(h.Reject(R"({"type":"x","ts":0})") == RejectReason::kMissingCustomerId);
  CHECK(h.rejection.message == "event has no customer_id");
  CHECK(h.Reject(R"({"type":"x","customer_id":{"id":1},"ts":0})") == RejectReason::kBadCustomerId);
  CHECK(h.rejection.message == "customer_id must be a non-empty string, got an object");
  CHECK(h.Reject(R"({"type":"x","customer_id":"","ts":0})") == RejectReason::kBadCustomerId);
  CHECK(h.rejection.message == "customer_id must be a non-empty string, got an empty string");
  CHECK(h.Reject(R"({"type":"x","customer_id":17,"ts":0})") == RejectReason::kBadCustomerId);
  CHECK(h.rejection.message == "customer_id must be a non-empty string, got the number 17");
  CHECK(h.Reject(R"({"type":"x","customer_id":false,"ts":0})") == RejectReason::kBadCustomerId);
  CHECK(h.rejection.message == "customer_id must be a non-empty string, got false");

  // An escaped NUL decodes to a NUL byte, which is not allowed.
  CHECK(h.Reject(R"({"type":"x","customer_id":"ab\u0000cd","ts":0})") == RejectReason::kBadCustomerId);
  CHECK(h.rejection.message == R"(customer_id "ab\u0000cd" contains a NUL byte)");

  // 256 bytes is fine, 257 is not; the message quotes a cut value.
  std::string id256(256, 'k');
  CHECK(h.Accept(R"({"type":"x","customer_id":")" + id256 + R"(","ts":0})").customer_id == id256);
  std::string id257(257, 'k');
  CHECK(h.Reject(R"({"type":"x","customer_id":")" + id257 + R"(","ts":0})") == RejectReason::kBadCustomerId);
  CHECK(h.rejection.message == "customer_id \"" + std::string(64, 'k') + "...\" is 257 bytes; the limit is 256");

  // Non-ASCII ids are fine.
  CHECK(h.Accept(R"({"type":"x","customer_id":"józef-東京","ts":0})").customer_id == "józef-東京");
}

TEST_CASE("missing_ts and bad_ts", "[event]") {
  Harness h;
  CHECK(h.Reject(R"({"type":"x","customer_id":"c1"})") == RejectReason::kMissingTs);
  CHECK(h.rejection.message == "event has no ts");

  CHECK(h.Reject(Ev(R"("yesterday")")) == RejectReason::kBadTs);
  CHECK(h.rejection.message == R"(ts "yesterday" is neither RFC 3339 with a zone nor integer epoch milliseconds)");
  CHECK(h.Reject(Ev(R"("2026-01-05T10:00:00")")) == RejectReason::kBadTs);  // no zone
  CHECK(h.rejection.message ==
        R"(ts "2026-01-05T10:00:00" is neither RFC 3339 with a zone nor integer epoch milliseconds)");
  CHECK(h.Reject(Ev(R"("2026-02-30T10:00:00Z")")) == RejectReason::kBadTs);  // no such day
  CHECK(h.Reject(Ev(R"("")")) == RejectReason::kBadTs);
  CHECK(h.rejection.message == R"(ts "" is neither RFC 3339 with a zone nor integer epoch milliseconds)");
  CHECK(h.Reject(Ev(R"("1767607200000")")) == RejectReason::kBadTs);  // a number in a string

  // Long values are quoted cut, with quotes escaped.
  CHECK(h.Reject(Ev("\"" + std::string(100, 'z') + "\"")) == RejectReason::kBadTs);
  CHECK(h.rejection.message ==
        "ts \"" + std::string(64, 'z') + "...\" is neither RFC 3339 with a zone nor integer epoch milliseconds");
  CHECK(h.Reject(Ev(R"("say \"hi\"")")) == RejectReason::kBadTs);
  CHECK(h.rejection.message == R"(ts "say \"hi\"" is neither RFC 3339 with a zone nor integer epoch milliseconds)");
  // The cut does not split a multi-byte character.
  CHECK(h.Reject(Ev("\"" + std::string(63, 'a') + "é\"")) == RejectReason::kBadTs);
  CHECK(h.rejection.message ==
        "ts \"" + std::string(63, 'a') + "...\" is neither RFC 3339 with a zone nor integer epoch milliseconds");

  CHECK(h.Reject(Ev("1767607200000.0")) == RejectReason::kBadTs);
  CHECK(h.rejection.message ==
        "ts must be RFC 3339 with a zone or integer epoch milliseconds, got the number 1767607200000");
  CHECK(h.Reject(Ev("1.5")) == RejectReason::kBadTs);
  CHECK(h.rejection.message == "ts must be RFC 3339 with a zone or integer epoch milliseconds, got the number 1.5");
  CHECK(h.Reject(Ev("true")) == RejectReason::kBadTs);
  CHECK(h.rejection.message == "ts must be RFC 3339 with a zone or integer epoch milliseconds, got true");
  CHECK(h.Reject(Ev("null")) == RejectReason::kBadTs);
  CHECK(h.Reject(Ev("{}")) == RejectReason::kBadTs);
  CHECK(h.rejection.message == "ts must be RFC 3339 with a zone or integer epoch milliseconds, got an object");
  CHECK(h.Reject(Ev("[]")) == RejectReason::kBadTs);

  // Integers outside years 0001-9999.
  CHECK(h.Reject(Ev("253402300800000")) == RejectReason::kBadTs);
  CHECK(h.rejection.message == "ts 253402300800000 is out of range: epoch milliseconds must fall in years 0001-9999");
  CHECK(h.Reject(Ev("-62135596800001")) == RejectReason::kBadTs);
  CHECK(h.Reject(Ev("18446744073709551615")) == RejectReason::kBadTs);
  CHECK(h.rejection.message ==
        "ts 18446744073709551615 is out of range: epoch milliseconds must fall in years 0001-9999");
}

TEST_CASE("purchase amounts: rounding to cents, half away from zero", "[event]") {
  Harness h;
  auto cents = [&h](const std::string& amount) {
    const Event& e = h.Accept(Purchase(amount));
    CHECK(e.has_amount);
    return e.amount_cents;
  };
  CHECK(cents("19.99") == 1999);
  CHECK(cents("0.1") == 10);
  CHECK(cents("0.29") == 29);     // 0.29 * 100 = 28.999999999999996
  CHECK(cents("0.005") == 1);     // 0.005 * 100 rounds to exactly 0.5: away from zero
  CHECK(cents("-0.005") == -1);
  CHECK(cents("0.015") == 2);     // 1.5 -> 2
  CHECK(cents("0.025") == 3);     // 2.5 -> 3 (not banker's rounding)
  CHECK(cents("1.005") == 100);   // 1.005 is 1.00499999999999989... in binary: llround gives 100
  CHECK(cents("0.004") == 0);
  CHECK(cents("-19.99") == -1999);
  CHECK(cents("0") == 0);
  CHECK(cents("-0.0") == 0);
  CHECK(cents("42") == 4200);     // integers are exact
  CHECK(cents("-7") == -700);
  CHECK(cents("1e2") == 10000);
  CHECK(cents("10000000000000") == 1000000000000000);   // 1e13, the limit
  CHECK(cents("-10000000000000") == -1000000000000000);
  CHECK(cents("1e13") == 1000000000000000);
  CHECK(cents("12345678901.23") == 1234567890123);

  // Other fields still decode.
  const Event& e = h.Accept(
      R"({"type":"purchase","customer_id":"c9","ts":1767607200000,"amount":5.5,"event_id":"order-77"})");
  CHECK(e.type == "purchase");
  CHECK(e.customer_id == "c9");
  CHECK(e.ts.ms == kJan5);
  CHECK(e.event_id == "order-77");
  CHECK(e.amount_cents == 550);
}

TEST_CASE("missing_amount and bad_amount", "[event]") {
  Harness h;
  CHECK(h.Reject(R"({"type":"purchase","customer_id":"c1","ts":0})") == RejectReason::kMissingAmount);
  CHECK(h.rejection.message == "purchase has no amount");

  CHECK(h.Reject(Purchase(R"("19.99")")) == RejectReason::kBadAmount);
  CHECK(h.rejection.message == R"(amount must be a number, got the string "19.99")");
  CHECK(h.Reject(Purchase("null")) == RejectReason::kBadAmount);
  CHECK(h.rejection.message == "amount must be a number, got null");
  CHECK(h.Reject(Purchase("true")) == RejectReason::kBadAmount);
  CHECK(h.Reject(Purchase(R"({"value":1})")) == RejectReason::kBadAmount);
  CHECK(h.rejection.message == "amount must be a number, got an object");

  CHECK(h.Reject(Purchase("10000000000001")) == RejectReason::kBadAmount);
  CHECK(h.rejection.message == "amount 10000000000001 is out of range: its magnitude must be at most 1e13");
  CHECK(h.Reject(Purchase("-1e14")) == RejectReason::kBadAmount);
  CHECK(h.rejection.message == "amount -1e+14 is out of range: its magnitude must be at most 1e13");
  CHECK(h.Reject(Purchase("1e300")) == RejectReason::kBadAmount);
  CHECK(h.Reject(Purchase("18446744073709551615")) == RejectReason::kBadAmount);
  CHECK(h.rejection.message == "amount 18446744073709551615 is out of range: its magnitude must be at most 1e13");
  // JSON has no NaN or Infinity; they are invalid JSON.
  CHECK(h.Reject(Purchase("NaN")) == RejectReason::kInvalidJson);
  CHECK(h.Reject(Purchase("1e999")) == RejectReason::kInvalidJson);
}

TEST_CASE("amount is only read for purchases", "[event]") {
  Harness h;
  const Event& e = h.Accept(Ev("0", R"(,"amount":"not a number")"));
  CHECK_FALSE(e.has_amount);
  CHECK(e.amount_cents == 0);
  const Event& f = h.Accept(R"({"type":"refund","customer_id":"c1","ts":0,"amount":3.5})");
  CHECK_FALSE(f.has_amount);
  CHECK(f.amount_cents == 0);
  double amount = 0;
  REQUIRE(f.Root()["amount"].get(amount) == simdjson::SUCCESS);  // still readable from root
  CHECK(amount == 3.5);
  // "Purchase" is not "purchase".
  CHECK_FALSE(h.Accept(R"({"type":"Purchase","customer_id":"c1","ts":0})").has_amount);
}

TEST_CASE("event_id is optional and must be a string", "[event]") {
  Harness h;
  CHECK(h.Accept(Ev("0")).event_id.empty());
  CHECK(h.Accept(Ev("0", R"(,"event_id":"abc")")).event_id == "abc");
  CHECK(h.Accept(Ev("0", R"(,"event_id":123)")).event_id.empty());
  CHECK(h.Accept(Ev("0", R"(,"event_id":null)")).event_id.empty());
}

TEST_CASE("duplicate keys: the first occurrence wins", "[event]") {
  Harness h;
  const Event& e = h.Accept(R"({"type":"a","customer_id":"c1","ts":0,"type":"b","customer_id":"c2"})");
  CHECK(e.type == "a");
  CHECK(e.customer_id == "c1");
  // A bad first value is not rescued by a good second one.
  CHECK(h.Reject(R"({"type":"a","customer_id":"c1","ts":"bad","ts":0})") == RejectReason::kBadTs);
}

TEST_CASE("whitespace around the object and escaped strings", "[event]") {
  Harness h;
  const Event& e = h.Accept(" \t{ \"type\" : \"a\\u00e9\\n\" , \"customer_id\":\"c\\\"1\", \"ts\": 0 }\r ");
  CHECK(e.type == "a\xc3\xa9\n");
  CHECK(e.customer_id == "c\"1");
}

TEST_CASE("the decoder is reusable and rejections reuse their message", "[event]") {
  Harness h;
  for (int i = 0; i < 1000; ++i) {
    std::string id = "c" + std::to_string(i);
    if (i % 3 == 0) {
      CHECK(h.Reject(Ev(R"("nope")")) == RejectReason::kBadTs);
    } else {
      const Event& e = h.Accept(R"({"type":"t","customer_id":")" + id + R"(","ts":)" + std::to_string(i) + "}");
      REQUIRE(e.customer_id == id);
      REQUIRE(e.ts.ms == i);
    }
  }
}

TEST_CASE("a rebuilt event parses its text only when its root is asked for, with the rebuilding decoder",
          "[event]") {
  Harness first;
  const std::string text = R"({"type":"purchase","customer_id":"c\u002d9","ts":1000,"amount":2.5,)"
                           R"("event_id":"e-1","order":{"id":"o-7"}})";
  const Event& decoded = first.Accept(text);
  // The fields as the sharded replay carries them: copies that outlive the
  // first decoder's next parse.
  const std::string type(decoded.type), customer(decoded.customer_id), event_id(decoded.event_id);
  const int64_t ts = decoded.ts.ms, cents = decoded.amount_cents;
  std::string line = text;
  line.append(kEventPadding, '\0');
  first.Accept(R"({"type":"visit","customer_id":"other","ts":5})");

  EventDecoder second;
  Event rebuilt;
  rebuilt.type = type;
  rebuilt.customer_id = customer;
  rebuilt.event_id = event_id;
  rebuilt.ts.ms = ts;
  rebuilt.amount_cents = cents;
  rebuilt.has_amount = true;
  second.Rebuild(std::string_view(line.data(), text.size()), &rebuilt);
  CHECK(rebuilt.customer_id == "c-9");
  std::string_view order;
  REQUIRE(rebuilt.Root().at_pointer("/order/id").get(order) == simdjson::SUCCESS);
  CHECK(order == "o-7");
  double amount = 0;
  REQUIRE(rebuilt.Root()["amount"].get(amount) == simdjson::SUCCESS);  // parsed once, asked twice
  CHECK(amount == 2.5);

  // Text that no longer parses gives an error, not a crash.
  std::string broken = "{\"type\":";
  broken.append(kEventPadding, '\0');
  Event bad;
  second.Rebuild(std::string_view(broken.data(), 9), &bad);
  simdjson::dom::element root;
  CHECK(bad.Root().get(root) != simdjson::SUCCESS);
}

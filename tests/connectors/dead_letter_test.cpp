#include <catch2/catch.hpp>
#include <simdjson.h>

#include <algorithm>
#include <string>
#include <vector>

#include "rapport/connectors/dead_letter.h"
#include "temp_dir.h"

using rapport::RejectReason;
using rapport::connectors::AppendDeadLetterJson;
using rapport::connectors::DeadLetter;
using rapport::connectors::DeadLetterFile;
using rapport::connectors::kMaxRawBytes;
using rapport::testing::ReadFile;
using rapport::testing::TempDir;

namespace {

DeadLetter FileLetter(std::string_view raw) {
  DeadLetter l;
  l.source = "events.jsonl";
  l.line = 17;
  l.offset = 1234;
  l.reason = RejectReason::kBadTs;
  l.message = R"(ts "yesterday" is neither RFC 3339 with a zone nor integer epoch milliseconds)";
  l.raw = raw;
  return l;
}

std::vector<std::string_view> Keys(simdjson::dom::object obj) {
  std::vector<std::string_view> keys;
  for (auto field : obj) keys.push_back(field.key);
  return keys;
}

std::string_view Str(simdjson::dom::object obj, const char* key) {
  std::string_view s;
  REQUIRE(obj[key].get(s) == simdjson::SUCCESS);
  return s;
}

int64_t Int(simdjson::dom::object obj, const char* key) {
  int64_t v = 0;
  REQUIRE(obj[key].get(v) == simdjson::SUCCESS);
  return v;
}

}  // namespace

TEST_CASE("dead letter JSON for a file source parses back", "[dead_letter]") {
  std::string raw = R"({"type":"x","customer_id":"c1","ts":"yesterday"})";
  std::string out = "prefix:";
  AppendDeadLetterJson(FileLetter(raw), &out);
  REQUIRE(out.rfind("prefix:", 0) == 0);  // appends
  std::string json = out.substr(7);
  CHECK(json ==
        R"({"source":"events.jsonl","line":17,"offset":1234,"reason":"bad_ts",)"
        R"("message":"ts \"yesterday\" is neither RFC 3339 with a zone nor integer epoch milliseconds",)"
        R"("raw":"{\"type\":\"x\",\"customer_id\":\"c1\",\"ts\":\"yesterday\"}"})");

  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(json).get(obj) == simdjson::SUCCESS);
  CHECK(Keys(obj) == std::vector<std::string_view>{"source", "line", "offset", "reason", "message", "raw"});
  CHECK(Str(obj, "source") == "events.jsonl");
  CHECK(Int(obj, "line") == 17);
  CHECK(Int(obj, "offset") == 1234);
  CHECK(Str(obj, "reason") == "bad_ts");
  CHECK(Str(obj, "message") == FileLetter(raw).message);
  CHECK(Str(obj, "raw") == raw);
}

TEST_CASE("dead letter JSON for a Kafka source has partition, not line", "[dead_letter]") {
  DeadLetter l;
  l.source = "events-topic";
  l.partition = 3;
  l.offset = 9876543210;
  l.reason = RejectReason::kNotAnObject;
  l.message = "event must be a JSON object, got an array";
  l.raw = "[1,2,3]";
  std::string json;
  AppendDeadLetterJson(l, &json);
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(json).get(obj) == simdjson::SUCCESS);
  CHECK(Keys(obj) == std::vector<std::string_view>{"source", "topic", "partition", "offset", "reason", "message", "raw"});
  CHECK(Str(obj, "source") == "events-topic");
  CHECK(Str(obj, "topic") == "events-topic");
  CHECK(Int(obj, "partition") == 3);
  CHECK(Int(obj, "offset") == 9876543210);
  CHECK(Str(obj, "reason") == "not_an_object");
  CHECK(Str(obj, "raw") == "[1,2,3]");
}

TEST_CASE("dead letter raw is cut to kMaxRawBytes", "[dead_letter]") {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;

  std::string exact(kMaxRawBytes, 'a');
  std::string json;
  AppendDeadLetterJson(FileLetter(exact), &json);
  REQUIRE(parser.parse(json).get(obj) == simdjson::SUCCESS);
  CHECK(Str(obj, "raw") == exact);
  CHECK(obj["raw_truncated"].error() == simdjson::NO_SUCH_FIELD);

  std::string longer(5000, 'b');
  json.clear();
  AppendDeadLetterJson(FileLetter(longer), &json);
  REQUIRE(parser.parse(json).get(obj) == simdjson::SUCCESS);
  CHECK(Str(obj, "raw") == std::string(kMaxRawBytes, 'b'));
  bool truncated = false;
  REQUIRE(obj["raw_truncated"].get(truncated) == simdjson::SUCCESS);
  CHECK(truncated);
  CHECK(Keys(obj).back() == "raw_truncated");

  // The cut does not split a UTF-8 sequence: "€" is 3 bytes and would
  // straddle the limit.
  std::string utf8 = std::string(kMaxRawBytes - 1, 'c') + "\xe2\x82\xac" + "tail";
  json.clear();
  AppendDeadLetterJson(FileLetter(utf8), &json);
  REQUIRE(parser.parse(json).get(obj) == simdjson::SUCCESS);
  CHECK(Str(obj, "raw") == std::string(kMaxRawBytes - 1, 'c'));
}

TEST_CASE("dead letter raw with binary junk is still valid JSON", "[dead_letter]") {
  std::string junk;
  for (int i = 0; i < 256; ++i) junk.push_back(static_cast<char>(i));
  junk += std::string("\0\0\xff\"\\\n", 6);
  std::string json;
  AppendDeadLetterJson(FileLetter(junk), &json);
  CHECK(json.find('\0') == std::string::npos);
  CHECK(json.find('\n') == std::string::npos);  // one line
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(json).get(obj) == simdjson::SUCCESS);
  std::string_view raw = Str(obj, "raw");
  // ASCII bytes survive exactly (NUL and control bytes included); invalid
  // UTF-8 becomes U+FFFD.
  CHECK(raw.substr(0, 128) == junk.substr(0, 128));
  CHECK(raw.find("\xef\xbf\xbd") != std::string_view::npos);
  std::string tail("\0\0\xef\xbf\xbd\"\\\n", 8);
  REQUIRE(raw.size() >= tail.size());
  CHECK(raw.substr(raw.size() - tail.size()) == tail);

  // Binary cut at the limit (continuation bytes everywhere) is still valid.
  std::string cont(3000, '\x80');
  json.clear();
  AppendDeadLetterJson(FileLetter(cont), &json);
  REQUIRE(parser.parse(json).get(obj) == simdjson::SUCCESS);
  bool truncated = false;
  REQUIRE(obj["raw_truncated"].get(truncated) == simdjson::SUCCESS);
  CHECK(truncated);
}

TEST_CASE("DeadLetterFile writes one JSON object per line and appends", "[dead_letter]") {
  TempDir dir;
  std::string path = dir.File("dead.jsonl");
  {
    auto file = DeadLetterFile::Open(path);
    REQUIRE(file.ok());
    CHECK((*file)->Write(FileLetter("{bad")).ok());
    const std::string nul_raw("\0x", 2);
    DeadLetter second = FileLetter(nul_raw);
    second.line = 18;
    second.reason = RejectReason::kInvalidJson;
    CHECK((*file)->Write(second).ok());
    CHECK((*file)->Flush().ok());
    std::string content = ReadFile(path);
    CHECK(std::count(content.begin(), content.end(), '\n') == 2);
  }  // destruction flushes and closes
  {
    auto file = DeadLetterFile::Open(path);
    REQUIRE(file.ok());
    CHECK((*file)->Write(FileLetter("third")).ok());
  }
  std::string content = ReadFile(path);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = content.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(content.substr(start, nl - start));
  }
  CHECK(start == content.size());  // ends with a newline
  REQUIRE(lines.size() == 3);
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(lines[0]).get(obj) == simdjson::SUCCESS);
  CHECK(Str(obj, "raw") == "{bad");
  REQUIRE(parser.parse(lines[1]).get(obj) == simdjson::SUCCESS);
  CHECK(Int(obj, "line") == 18);
  CHECK(Str(obj, "reason") == "invalid_json");
  CHECK(Str(obj, "raw") == std::string("\0x", 2));
  REQUIRE(parser.parse(lines[2]).get(obj) == simdjson::SUCCESS);
  CHECK(Str(obj, "raw") == "third");
}

TEST_CASE("DeadLetterFile open errors name the path", "[dead_letter]") {
  TempDir dir;
  std::string path = dir.File("no/such/dir/dead.jsonl");
  auto file = DeadLetterFile::Open(path);
  REQUIRE_FALSE(file.ok());
  CHECK(file.status().code() == rapport::StatusCode::kIoError);
  CHECK_THAT(file.status().message(), Catch::Contains(path));
  CHECK_THAT(file.status().message(), Catch::Contains("No such file"));
}

TEST_CASE("DeadLetterFile reports write errors", "[dead_letter]") {
  auto file = DeadLetterFile::Open("/dev/full");
  if (!file.ok()) return;  // not available here
  rapport::Status status = (*file)->Write(FileLetter("x"));
  if (status.ok()) status = (*file)->Flush();  // buffered: the error may surface on flush
  CHECK_FALSE(status.ok());
  CHECK_THAT(status.message(), Catch::Contains("No space left"));
}

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "rapport/connectors/jsonl_reader.h"
#include "rapport/engine/event.h"
#include "temp_dir.h"

using rapport::kEventPadding;
using rapport::kMaxEventBytes;
using rapport::connectors::JsonlReader;
using rapport::connectors::Line;
using rapport::testing::TempDir;
using rapport::testing::WriteFile;

namespace {

struct Got {
  std::string text;
  uint64_t number;
  uint64_t offset;
  bool too_long;
};

std::unique_ptr<JsonlReader> OpenOk(const std::string& path) {
  auto r = JsonlReader::Open(path);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::vector<Got> ReadAll(JsonlReader* reader) {
  std::vector<Got> out;
  Line line;
  while (reader->Next(&line)) {
    // The padding after the text must be readable (ASan would catch a miss).
    volatile char sink = 0;
    for (size_t i = 0; i < kEventPadding; ++i) sink = sink + line.text.data()[line.text.size() + i];
    (void)sink;
    out.push_back({std::string(line.text), line.number, line.offset, line.too_long});
    CHECK(reader->position() > line.offset);
  }
  CHECK(reader->status().ok());
  return out;
}

std::vector<Got> ReadContent(const std::string& content) {
  TempDir dir;
  std::string path = dir.File("in.jsonl");
  WriteFile(path, content);
  auto reader = OpenOk(path);
  auto lines = ReadAll(reader.get());
  CHECK(reader->position() == content.size());
  return lines;
}

}  // namespace

TEST_CASE("JsonlReader: simple lines with numbers and offsets", "[jsonl]") {
  auto lines = ReadContent("{\"a\":1}\n{\"b\":2}\n\nlast\n");
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].text == "{\"a\":1}");
  CHECK(lines[0].number == 1);
  CHECK(lines[0].offset == 0);
  CHECK(lines[1].text == "{\"b\":2}");
  CHECK(lines[1].number == 2);
  CHECK(lines[1].offset == 8);
  CHECK(lines[2].text.empty());  // empty lines are returned; the decoder rejects them
  CHECK(lines[2].number == 3);
  CHECK(lines[2].offset == 16);
  CHECK(lines[3].text == "last");
  CHECK(lines[3].number == 4);
  CHECK(lines[3].offset == 17);
  for (const Got& g : lines) CHECK_FALSE(g.too_long);
}

TEST_CASE("JsonlReader: empty file and a file of only a newline", "[jsonl]") {
  CHECK(ReadContent("").empty());
  auto lines = ReadContent("\n");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].text.empty());
}

TEST_CASE("JsonlReader: CRLF line ends and a last line without a newline", "[jsonl]") {
  auto lines = ReadContent("one\r\ntwo\r\n\r\nthree\rx\nfour");
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].text == "one");
  CHECK(lines[1].text == "two");
  CHECK(lines[1].offset == 5);
  CHECK(lines[2].text.empty());
  CHECK(lines[3].text == "three\rx");  // only a trailing \r is a line end
  CHECK(lines[4].text == "four");
  CHECK(lines[4].number == 5);
  CHECK(lines[4].offset == 20);

  auto crlf_last = ReadContent("a\r\nb\r");
  REQUIRE(crlf_last.size() == 2);
  CHECK(crlf_last[1].text == "b");
}

TEST_CASE("JsonlReader: binary junk with NUL bytes is just bytes", "[jsonl]") {
  std::string junk("\0\x01\xff\xfe{\0}\x80", 8);
  auto lines = ReadContent(junk + "\n" + std::string("\0\0", 2) + "\n{}\n");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].text == junk);
  CHECK(lines[1].text == std::string("\0\0", 2));
  CHECK(lines[2].text == "{}");
  CHECK(lines[2].offset == 12);
}

TEST_CASE("JsonlReader: a line longer than kMaxEventBytes is cut and skipped", "[jsonl]") {
  std::string first = "{\"n\":1}";
  std::string huge = "{\"blob\":\"" + std::string(kMaxEventBytes + 1, 'x') + "\"}";  // 1 MiB + 12
  std::string at_limit(kMaxEventBytes, 'y');
  std::string over_by_one(kMaxEventBytes + 1, 'z');
  std::string content = first + "\n" + huge + "\n" + "{\"n\":3}\r\n" + at_limit + "\r\n" + over_by_one + "\n" +
                        std::string(3 * kMaxEventBytes + 17, 'w') + "\r\n" + "{\"n\":7}";
  auto lines = ReadContent(content);
  REQUIRE(lines.size() == 7);

  CHECK(lines[0].text == first);
  CHECK_FALSE(lines[0].too_long);

  CHECK(lines[1].too_long);
  CHECK(lines[1].number == 2);
  CHECK(lines[1].offset == first.size() + 1);
  CHECK(lines[1].text.size() == kMaxEventBytes + 1);
  CHECK(lines[1].text == huge.substr(0, kMaxEventBytes + 1));

  CHECK(lines[2].text == "{\"n\":3}");
  CHECK(lines[2].number == 3);
  CHECK(lines[2].offset == first.size() + 1 + huge.size() + 1);
  CHECK_FALSE(lines[2].too_long);

  CHECK(lines[3].text == at_limit);  // exactly the limit (plus \r\n) is fine
  CHECK_FALSE(lines[3].too_long);

  CHECK(lines[4].too_long);
  CHECK(lines[4].text == over_by_one);

  CHECK(lines[5].too_long);
  CHECK(lines[5].text == std::string(kMaxEventBytes + 1, 'w'));
  CHECK(lines[5].number == 6);

  CHECK(lines[6].text == "{\"n\":7}");
  CHECK(lines[6].number == 7);
  CHECK(lines[6].offset == content.size() - 7);
  CHECK_FALSE(lines[6].too_long);
}

TEST_CASE("JsonlReader: a too-long last line without a newline", "[jsonl]") {
  std::string content = "a\n" + std::string(kMaxEventBytes + 2, 'q');
  auto lines = ReadContent(content);
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].too_long);
  CHECK(lines[1].text.size() == kMaxEventBytes + 1);
  CHECK(lines[1].offset == 2);

  auto longer = ReadContent("a\n" + std::string(2 * kMaxEventBytes + 5, 'q'));
  REQUIRE(longer.size() == 2);
  CHECK(longer[1].too_long);
  CHECK(longer[1].text.size() == kMaxEventBytes + 1);
}

TEST_CASE("JsonlReader: lines spanning buffer refills round-trip", "[jsonl]") {
  std::mt19937_64 rng(12345);
  std::vector<std::string> expected;
  std::vector<uint64_t> offsets;
  std::vector<bool> crlf;
  std::string content;
  // About 12 MiB of lines from 0 bytes to 300 KiB, so lines cross every
  // block boundary in every position.
  while (content.size() < 12 * (size_t{1} << 20)) {
    size_t kind = rng() % 100;
    size_t len = kind < 80 ? rng() % 200 : (kind < 98 ? rng() % 20000 : rng() % 300000);
    std::string s(len, '\0');
    for (char& c : s) {
      c = static_cast<char>('a' + rng() % 26);
    }
    if (len > 0 && rng() % 7 == 0) s[rng() % len] = '\r';  // a \r inside is kept
    if (len > 0 && rng() % 11 == 0) s[rng() % len] = '\0';
    bool use_crlf = rng() % 5 == 0;
    offsets.push_back(content.size());
    expected.push_back(s);
    crlf.push_back(use_crlf);
    content += s;
    content += use_crlf ? "\r\n" : "\n";
  }
  // Fix up a line whose last byte is \r without being a CRLF line: it would
  // (correctly) be stripped, so avoid it in the expectations.
  content.clear();
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!expected[i].empty() && expected[i].back() == '\r') expected[i].back() = 'r';
    offsets[i] = content.size();
    content += expected[i];
    content += crlf[i] ? "\r\n" : "\n";
  }

  auto lines = ReadContent(content);
  REQUIRE(lines.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("line " << i + 1);
    REQUIRE(lines[i].number == i + 1);
    REQUIRE(lines[i].offset == offsets[i]);
    REQUIRE(lines[i].text == expected[i]);
    REQUIRE_FALSE(lines[i].too_long);
  }
}

TEST_CASE("JsonlReader: reads a pipe in small pieces", "[jsonl]") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::string content;
  for (int i = 0; i < 20000; ++i) content += "{\"i\":" + std::to_string(i) + "}\n";
  content += std::string(kMaxEventBytes + 100, 'p') + "\nend";
  std::thread writer([&] {
    size_t done = 0;
    while (done < content.size()) {
      size_t n = std::min<size_t>(4093, content.size() - done);
      ssize_t w = write(fds[1], content.data() + done, n);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    close(fds[1]);
  });
  // Read the pipe through /dev/fd so that Open() takes the file path route.
  std::string path = "/dev/fd/" + std::to_string(fds[0]);
  auto reader = OpenOk(path);
  auto lines = ReadAll(reader.get());
  writer.join();
  close(fds[0]);
  REQUIRE(lines.size() == 20002);
  CHECK(lines[19999].text == "{\"i\":19999}");
  CHECK(lines[20000].too_long);
  CHECK(lines[20001].text == "end");
  CHECK(lines[20001].number == 20002);
  CHECK(reader->position() == content.size());
}

TEST_CASE("JsonlReader: open errors name the path", "[jsonl]") {
  TempDir dir;
  auto missing = JsonlReader::Open(dir.File("nope.jsonl"));
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains(dir.File("nope.jsonl")));
  CHECK_THAT(missing.status().message(), Catch::Contains("No such file"));

  auto directory = JsonlReader::Open(dir.path().string());
  REQUIRE_FALSE(directory.ok());
  CHECK_THAT(directory.status().message(), Catch::Contains(dir.path().string()));

  auto stdin_reader = JsonlReader::Open("-");
  REQUIRE(stdin_reader.ok());
  CHECK((*stdin_reader)->path() == "-");
}

TEST_CASE("JsonlReader: a read error stops reading with a status", "[jsonl]") {
  // Reading /proc/self/mem at offset 0 fails with EIO: address 0 is unmapped.
  auto r = JsonlReader::Open("/proc/self/mem");
  if (!r.ok()) return;  // not available here
  Line line;
  CHECK_FALSE((*r)->Next(&line));
  CHECK_FALSE((*r)->status().ok());
  CHECK_THAT((*r)->status().message(), Catch::Contains("/proc/self/mem"));
  CHECK_FALSE((*r)->Next(&line));  // and stays stopped
}

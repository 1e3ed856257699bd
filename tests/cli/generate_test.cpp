// `rapport generate`, run as the real binary.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "rapport/engine/time.h"
#include "temp_dir.h"

using rapport::testing::ReadFile;
using rapport::testing::RunCommand;
using rapport::testing::TempDir;

namespace {

// Runs `rapport generate <args>`; stderr goes to *err when given.
int Generate(const std::string& args, const TempDir& dir, std::string* out = nullptr, std::string* err = nullptr) {
  const std::string err_file = dir.File("stderr.txt");
  const int rc = RunCommand(rapport::testing::RapportBinary() + " generate " + args + " 2>" + err_file, out);
  if (err != nullptr) *err = ReadFile(err_file);
  return rc;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    REQUIRE(nl != std::string::npos);
    lines.emplace_back(text, pos, nl - pos);
    pos = nl + 1;
  }
  return lines;
}

}  // namespace

TEST_CASE("rapport generate: deterministic, sorted, valid JSON Lines", "[cli][generate]") {
  TempDir dir;
  const std::string a = dir.File("a.jsonl"), b = dir.File("b.jsonl"), c = dir.File("c.jsonl");
  std::string err;
  REQUIRE(Generate("--customers 200 --days 30 --seed 3 --out " + a, dir, nullptr, &err) == 0);
  const std::string text = ReadFile(a);
  const std::vector<std::string> lines = Lines(text);
  REQUIRE(lines.size() > 500);
  REQUIRE(err == "wrote " + std::to_string(lines.size()) + " events for 200 customers\n");

  REQUIRE(Generate("--customers 200 --days 30 --seed 3 --out " + b, dir) == 0);
  REQUIRE(ReadFile(b) == text);
  REQUIRE(Generate("--customers 200 --days 30 --seed 4 --out " + c, dir) == 0);
  REQUIRE(ReadFile(c) != text);

  // stdout is the default output and gets the same bytes.
  std::string out;
  REQUIRE(Generate("--customers 200 --days 30 --seed 3", dir, &out) == 0);
  REQUIRE(out == text);

  simdjson::dom::parser parser;
  int64_t prev = INT64_MIN;
  const int64_t start = rapport::ParseRfc3339("2026-01-01T00:00:00Z")->ms;
  for (size_t i = 0; i < lines.size(); ++i) {
    INFO(lines[i]);
    simdjson::dom::object obj;
    REQUIRE(parser.parse(lines[i]).get_object().get(obj) == simdjson::SUCCESS);
    std::string_view id, ts, type, customer;
    REQUIRE(obj["event_id"].get_string().get(id) == simdjson::SUCCESS);
    REQUIRE(id == "e-" + std::to_string(i + 1));
    REQUIRE(obj["type"].get_string().get(type) == simdjson::SUCCESS);
    REQUIRE(obj["customer_id"].get_string().get(customer) == simdjson::SUCCESS);
    REQUIRE(customer.substr(0, 2) == "c-");
    REQUIRE(obj["ts"].get_string().get(ts) == simdjson::SUCCESS);
    auto t = rapport::ParseRfc3339(ts);
    REQUIRE(t);
    REQUIRE(t->ms >= prev);
    REQUIRE(t->ms >= start);
    REQUIRE(t->ms < start + 30 * rapport::kMsPerDay);
    prev = t->ms;
  }
}

TEST_CASE("rapport generate: options", "[cli][generate]") {
  TempDir dir;
  std::string out;
  REQUIRE(Generate("--customers 50 --days 10 --start 2027-03-01 --id-prefix shop- --epoch-ms", dir, &out) == 0);
  const std::vector<std::string> lines = Lines(out);
  REQUIRE(!lines.empty());
  const int64_t start = rapport::ParseRfc3339("2027-03-01T00:00:00Z")->ms;
  simdjson::dom::parser parser;
  for (const std::string& line : lines) {
    INFO(line);
    simdjson::dom::object obj;
    REQUIRE(parser.parse(line).get_object().get(obj) == simdjson::SUCCESS);
    int64_t ts = 0;
    REQUIRE(obj["ts"].get_int64().get(ts) == simdjson::SUCCESS);
    REQUIRE(ts >= start);
    REQUIRE(ts < start + 10 * rapport::kMsPerDay);
    std::string_view customer;
    REQUIRE(obj["customer_id"].get_string().get(customer) == simdjson::SUCCESS);
    REQUIRE(customer.substr(0, 5) == "shop-");
  }

  // Malformed lines mixed in: more lines than events, all counted events valid.
  std::string err;
  REQUIRE(Generate("--customers 300 --days 30 --bad-rate 0.2", dir, &out, &err) == 0);
  const std::vector<std::string> dirty = Lines(out);
  size_t events = 0;
  for (const std::string& line : dirty) events += line.rfind("{\"event_id\":", 0) == 0;
  REQUIRE(err == "wrote " + std::to_string(events) + " events for 300 customers\n");
  REQUIRE(dirty.size() > events + events / 10);
  REQUIRE(dirty.size() < events + events * 3 / 10);
}

TEST_CASE("rapport generate: bad arguments exit with 2 and say why", "[cli][generate]") {
  TempDir dir;
  const std::string file = dir.File("never.jsonl");
  struct Case {
    std::string args;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"--customers 0", "--customers"},
      {"--customers -5", "--customers"},
      {"--customers abc", "--customers"},
      {"--customers 99999999999", "--customers"},
      {"--days 0", "--days"},
      {"--days 1.5", "--days"},
      {"--days 5000000", "--days"},
      {"--start 9999-12-31 --days 2", "--days"},
      {"--bad-rate 1.5", "--bad-rate"},
      {"--bad-rate -0.1", "--bad-rate"},
      {"--bad-rate nan", "--bad-rate"},
      {"--bad-rate x", "--bad-rate"},
      {"--start 2026-13-01", "--start"},
      {"--start 2026-02-30", "--start"},
      {"--start 01/02/2026", "--start"},
      {"--start 2026-1-1", "--start"},
      {"--seed -1", "--seed"},
      {"--id-prefix " + std::string(300, 'p'), "--id-prefix"},
  };
  for (const Case& c : cases) {
    INFO(c.args);
    std::string err;
    REQUIRE(Generate(c.args + " --out " + file, dir, nullptr, &err) == 2);
    REQUIRE(err.find(c.mentions) != std::string::npos);
    REQUIRE(!std::filesystem::exists(file));
  }
  std::string err;
  REQUIRE(Generate("--customers 10 --out " + dir.File("no/such/dir/x.jsonl"), dir, nullptr, &err) == 2);
  REQUIRE(err.find("cannot open") != std::string::npos);
}

TEST_CASE("rapport generate: --help documents every option", "[cli][generate]") {
  TempDir dir;
  std::string out;
  REQUIRE(Generate("--help", dir, &out) == 0);
  for (const char* option : {"--customers", "--days", "--start", "--seed", "--bad-rate", "--id-prefix", "--out",
                             "--epoch-ms"}) {
    REQUIRE(out.find(option) != std::string::npos);
  }
}

// `rapport generate`: deterministic synthetic store traffic as JSON Lines.
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "commands.h"
#include "rapport/connectors/store_simulator.h"
#include "rapport/engine/time.h"

namespace rapport::cli {
namespace {

// Numbers are taken as text and parsed here, so that every bad value gets the
// same clear message and exit code 2.
struct GenerateArgs {
  std::string customers = "10000";
  std::string days = "120";
  std::string start = "2026-01-01";
  std::string seed = "1";
  std::string bad_rate = "0";
  std::string id_prefix = "c-";
  std::string out = "-";
  bool epoch_ms = false;
};

constexpr char kDescription[] =
    "Write deterministic synthetic store traffic as JSON Lines, sorted by time.\n"
    "Customers browse, buy once, buy often or refer friends (advocates, from\n"
    "their third purchase on); they lapse for weeks and half of those never come\n"
    "back. The same arguments always give the same bytes, on any machine.";

constexpr char kFooter[] =
    "Events (one JSON object a line, event_id counts 1, 2, 3... in output order):\n"
    "  {\"event_id\":\"e-1\",\"type\":\"visit\",\"customer_id\":\"c-7\",\"ts\":\"2026-01-05T10:00:00.123Z\","
    "\"page\":\"/sale\"}\n"
    "  type cart:     \"sku\":\"sku-042\"\n"
    "  type purchase: \"order_id\":\"o-c-7-2\",\"amount\":36.6,\"currency\":\"EUR\"\n"
    "  type referral: \"referred_customer_id\":\"r-c-7-3\"\n"
    "\nExamples:\n"
    "  rapport generate --customers 10000 --days 120 --seed 7 > events.jsonl\n"
    "  rapport generate --customers 1000000 --days 365 --out big.jsonl\n"
    "  rapport generate --bad-rate 0.01 --out dirty.jsonl   # with malformed lines\n";

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

bool ParseRate(std::string_view s, double* out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out, std::chars_format::general);
  return ec == std::errc() && ptr == end && std::isfinite(*out);
}

// Strict YYYY-MM-DD, midnight UTC.
std::optional<EventTime> ParseDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  }
  std::string text(s);
  text += "T00:00:00Z";
  return ParseRfc3339(text);  // checks the month and the day of the month
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "rapport generate: %s\n", message.c_str());
  return 2;
}

int RunGenerate(const GenerateArgs& a) {
  connectors::StoreSimulatorOptions o;
  uint64_t days = 0;
  if (!ParseUint(a.customers, &o.customers) || o.customers == 0 || o.customers > connectors::kMaxSimulatedCustomers) {
    return Fail("--customers must be an integer from 1 to " + std::to_string(connectors::kMaxSimulatedCustomers) +
                ", got \"" + a.customers + "\"");
  }
  if (!ParseUint(a.days, &days) || days == 0 || days > 10'000'000) {
    return Fail("--days must be a positive integer, got \"" + a.days + "\"");
  }
  o.days = static_cast<int64_t>(days);
  std::optional<EventTime> start = ParseDate(a.start);
  if (!start) return Fail("--start must be a date YYYY-MM-DD, got \"" + a.start + "\"");
  o.start = *start;
  if (!ParseUint(a.seed, &o.seed)) {
    return Fail("--seed must be a non-negative integer, got \"" + a.seed + "\"");
  }
  if (!ParseRate(a.bad_rate, &o.bad_rate) || o.bad_rate < 0 || o.bad_rate > 1) {
    return Fail("--bad-rate must be a number from 0 to 1, got \"" + a.bad_rate + "\"");
  }
  if (const EventTime last = *ParseDate("9999-12-31"); o.days > (last.ms - o.start.ms) / kMsPerDay + 1) {
    return Fail("--days " + a.days + " from " + a.start + " ends after 9999-12-31");
  }
  if (a.id_prefix.size() > connectors::kMaxIdPrefixBytes) {
    return Fail("--id-prefix must be at most " + std::to_string(connectors::kMaxIdPrefixBytes) + " bytes");
  }
  o.id_prefix = a.id_prefix;
  o.epoch_ms = a.epoch_ms;
  if (Status s = connectors::ValidateStoreSimulatorOptions(o); !s.ok()) return Fail(s.message());
  if (a.out.empty()) return Fail("--out must be a file path or - for stdout");

  const bool to_stdout = a.out == "-";
  std::FILE* out = to_stdout ? stdout : std::fopen(a.out.c_str(), "wb");
  if (out == nullptr) return Fail("cannot open " + a.out + ": " + std::strerror(errno));
  connectors::GenerateStats stats;
  Status status = connectors::WriteStoreEvents(o, out, &stats);
  if (!to_stdout && std::fclose(out) != 0 && status.ok()) {
    status = Status::IoError("closing " + a.out + ": " + std::strerror(errno));
  }
  if (!status.ok()) {
    if (!to_stdout) std::remove(a.out.c_str());  // no half-written file that looks complete
    return Fail(status.message());
  }
  std::fprintf(stderr, "wrote %llu events for %llu customers\n", static_cast<unsigned long long>(stats.events),
               static_cast<unsigned long long>(stats.customers));
  return 0;
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", kDescription);
  cmd->footer(kFooter);
  cmd->add_option("--customers", args->customers, "Number of customers to simulate (ids <prefix>0, <prefix>1, ...)")
      ->type_name("N")
      ->capture_default_str();
  cmd->add_option("--days", args->days, "Length of the simulated period in days")
      ->type_name("N")
      ->capture_default_str();
  cmd->add_option("--start", args->start, "First day of the period, YYYY-MM-DD (UTC midnight)")
      ->type_name("DATE")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed; the same seed and options give the same bytes")
      ->type_name("N")
      ->capture_default_str();
  cmd->add_option("--bad-rate", args->bad_rate,
                  "Probability, from 0 to 1, that a malformed line (broken JSON, missing or mistyped fields, "
                  "binary, a 70 KB line, an empty line) comes before an event")
      ->type_name("F")
      ->capture_default_str();
  cmd->add_option("--id-prefix", args->id_prefix, "Prefix of customer ids")->type_name("TEXT")->capture_default_str();
  cmd->add_option("--out", args->out, "Output file, - for stdout")->type_name("FILE")->capture_default_str();
  cmd->add_flag("--epoch-ms", args->epoch_ms, "Write ts as integer epoch milliseconds instead of RFC 3339");
  cmd->callback([args, exit_code] { *exit_code = RunGenerate(*args); });
}

}  // namespace rapport::cli

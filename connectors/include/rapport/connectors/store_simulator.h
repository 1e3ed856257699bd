// StoreSimulator: deterministic synthetic store traffic (`rapport generate`).
//
// Simulates the customers of an online store over [start, start + days):
// browsers (45%) who never buy, one-time (25%) and repeat (22%) buyers, and
// advocates (8%) who may refer a friend after each purchase from their third
// on. After any visit a customer may lapse for weeks; half of the lapsed never
// come back. One JSON object a line, keys in this order:
//   {"event_id":"e-1","type":"visit","customer_id":"c-7","ts":"2026-01-05T10:00:00.123Z","page":"/sale"}
//   ... "type":"cart", ..., "sku":"sku-042"
//   ... "type":"purchase", ..., "order_id":"o-c-7-2","amount":36.6,"currency":"EUR"
//   ... "type":"referral", ..., "referred_customer_id":"r-c-7-3"
// `ts` is RFC 3339 UTC with milliseconds, or integer epoch milliseconds when
// epoch_ms is set. Amounts are lognormal, capped at 2000, with at most two
// decimals, printed like Python's repr (120.0, 36.6, 12.05).
//
// Contract:
// - Deterministic: the same options give the same bytes on any machine (own
//   PRNG, own distributions, only IEEE-exact arithmetic).
// - Ordered: events come sorted by (ts, customer index); event_id counts
//   events 1, 2, 3... in output order (malformed lines are not counted).
// - Malformed lines: with probability bad_rate, an event is preceded by one
//   line picked uniformly from MalformedStoreLines(): broken JSON, an empty
//   line, an array, missing or wrongly typed fields, a bad ts, an unclosed
//   object, a visit whose page is 70000 'x' (a ~70 KB line), the binary line
//   "\x00\x01\x02garbage" and a nested customer_id. The draw uses its own
//   random stream: the events are the same whatever the bad_rate.
// - Streaming: memory grows with the number of customers, not of events (the
//   simulation advances one time window at a time).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/engine/status.h"
#include "rapport/engine/time.h"

namespace rapport::connectors {

struct StoreSimulatorOptions {
  uint64_t customers = 10000;      // 1 .. kMaxSimulatedCustomers
  int64_t days = 120;              // > 0; the period must end by year 9999
  EventTime start{1767225600000};  // 2026-01-01T00:00:00Z
  uint64_t seed = 1;
  double bad_rate = 0.0;         // in [0, 1]
  std::string id_prefix = "c-";  // customer ids are id_prefix + index (0-based)
  bool epoch_ms = false;         // write ts as integer epoch milliseconds
};

inline constexpr uint64_t kMaxSimulatedCustomers = 0xFFFFFFFFu;
inline constexpr size_t kMaxIdPrefixBytes = 256;

// InvalidArgument naming the offending option when the options are unusable.
Status ValidateStoreSimulatorOptions(const StoreSimulatorOptions& options);

// The malformed lines mixed in by bad_rate, without line ends.
const std::vector<std::string>& MalformedStoreLines();

struct GenerateStats {
  uint64_t events = 0;     // well-formed events written
  uint64_t malformed = 0;  // malformed lines written
  uint64_t customers = 0;  // customers simulated
  uint64_t bytes = 0;      // bytes written, line ends included
};

struct SimulatedLine {
  std::string_view text;         // without "\n"; valid until the next Next()
  bool malformed = false;        // one of MalformedStoreLines()
  EventTime ts;                  // the event's time (for a malformed line: the next event's)
  std::string_view customer_id;  // empty for a malformed line; e.g. a Kafka key
};

// Hands out the lines one by one. Not thread-safe.
class StoreSimulator {
 public:
  static Result<std::unique_ptr<StoreSimulator>> Create(const StoreSimulatorOptions& options);
  ~StoreSimulator();
  StoreSimulator(const StoreSimulator&) = delete;
  StoreSimulator& operator=(const StoreSimulator&) = delete;

  // Fills *line with the next line. False when all lines were handed out,
  // or on failure (out of memory); status() then says which.
  bool Next(SimulatedLine* line);
  const Status& status() const;
  const GenerateStats& stats() const;

 private:
  struct Impl;
  explicit StoreSimulator(std::unique_ptr<Impl> impl);
  friend Status WriteStoreEvents(const StoreSimulatorOptions&, std::FILE*, GenerateStats*);
  std::unique_ptr<Impl> impl_;
};

// Writes all lines, each ending in "\n", to out (not closed; flushed).
// IoError when writing fails. Fills *stats when not null.
Status WriteStoreEvents(const StoreSimulatorOptions& options, std::FILE* out, GenerateStats* stats);

}  // namespace rapport::connectors

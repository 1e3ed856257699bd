// ProfileJson: one customer's stored Profile as JSON, with names instead of
// symbol ids, for people and tools (`rapport state get`, `rapport explain`,
// tests).
//
// The object, keys in this order:
//   customer_id, partition (when given), first_seen, last_seen (RFC 3339 or
//   null), total_spent (a decimal number: the stored cents / 100), stage_index,
//   stage (the ladder stage's name; only with a rule set that has it),
//   events     {"<type>": {"count": n, "last": time}} by type name,
//   aggregates {"<name>": {...}} by name, see below,
//   campaigns  {"<id>": {"armed_due": time or null, "fired": n, "last_fired",
//               "last_held_out" and "converted" (after a firing),
//               "recent_firings": [times kept for `at_most` caps]}} by id.
// A symbol the store does not know is written as "#<id>" so nothing is
// silently dropped. Times are RFC 3339 (UTC, milliseconds) or null.
//
// Aggregates are stored as raw numbers whose unit depends on the aggregate's
// function (count: whole events; sum, min, max, numeric last: hundredths), so
// only a rule set can turn them into the values rules read. With a rule set
// that declares the aggregate, its entry has "function", "window" (or null)
// and "value": what a rule would read at `now` (for a windowed aggregate, over
// the contributions after now - window). Without one, or for an aggregate the
// rules no longer declare, it has "stored": the raw number, the text or
// boolean of `last`, or null (windowed aggregates keep only contributions).
// A windowed aggregate also lists its stored contributions as
// "window_entries": [[time, value], ...] (raw without a rule set).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "rapport/engine/json_writer.h"
#include "rapport/engine/profile.h"
#include "rapport/engine/state_store.h"
#include "rapport/engine/time.h"
#include "rapport/rules/rule_set.h"

namespace rapport {

struct ProfileJsonOptions {
  // The name of a symbol id, "" when unknown: usually StateStore::SymbolName.
  std::function<std::string(SymbolKind, uint32_t)> symbol_name;
  // Names the stage and gives aggregates their function and value; optional.
  const rules::RuleSet* rules = nullptr;
  // When windowed aggregates are read; the customer's last_seen when unset.
  std::optional<EventTime> now;
  // Written as "partition" when set.
  std::optional<uint32_t> partition;
};

// Writes the profile as one JSON object (a value: after a Key, in an array,
// or at the top).
void WriteProfileJson(JsonWriter& w, std::string_view customer, const Profile& profile,
                      const ProfileJsonOptions& options);

// The same, as a string.
std::string ProfileToJson(std::string_view customer, const Profile& profile, const ProfileJsonOptions& options);

}  // namespace rapport

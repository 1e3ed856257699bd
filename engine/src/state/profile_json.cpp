#include "rapport/engine/profile_json.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace rapport {
namespace {

std::string NameOf(const ProfileJsonOptions& options, SymbolKind kind, uint32_t id) {
  std::string name = options.symbol_name ? options.symbol_name(kind, id) : std::string();
  if (!name.empty()) return name;
  // Built in a fresh string: `"#" + std::to_string(id)` or assigning to
  // `name` draws a false -Wrestrict from GCC 12 at -O2.
  std::string numbered(1, '#');
  numbered += std::to_string(id);
  return numbered;
}

void Time(JsonWriter& w, int64_t ms) {
  if (ms == kNoTime) {
    w.Null();
  } else {
    w.String(FormatRfc3339(EventTime{ms}));
  }
}

// Hundredths as a decimal number. Exact for every value a profile can hold
// (at most 10^13 units a contribution), which a double represents to the cent.
void Hundredths(JsonWriter& w, int64_t hundredths) { w.Number(static_cast<double>(hundredths) / 100); }

const rules::Aggregate* FindAggregate(const rules::RuleSet* rules, std::string_view name) {
  if (rules == nullptr) return nullptr;
  for (const rules::Aggregate& a : rules->aggregates) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

// The value a rule reads; mirrors the processor's evaluation context.
void AggregateValue(JsonWriter& w, const rules::Aggregate& agg, const AggregateState& s, EventTime now) {
  using F = rules::AggregateFunction;
  const bool count = agg.function == F::kCount;
  if (agg.window) {
    const int64_t from = now.ms - agg.window->ms;
    int64_t n = 0, sum = 0;
    std::optional<int64_t> lo, hi;
    for (const auto& [t, v] : s.window) {
      if (t <= from || t > now.ms) continue;
      ++n;
      sum += v;
      lo = lo ? std::min(*lo, v) : v;
      hi = hi ? std::max(*hi, v) : v;
    }
    switch (agg.function) {
      case F::kCount: w.Int(n); return;
      case F::kSum: Hundredths(w, sum); return;
      case F::kMin: lo ? Hundredths(w, *lo) : w.Null(); return;
      case F::kMax: hi ? Hundredths(w, *hi) : w.Null(); return;
      case F::kLast: w.Null(); return;
    }
  }
  switch (s.kind) {
    case AggregateState::Kind::kNone:
      // Nothing seen yet: a count or sum is 0, the others are missing.
      (count || agg.function == F::kSum) ? w.Int(0) : w.Null();
      return;
    case AggregateState::Kind::kNumber: count ? w.Int(s.number) : Hundredths(w, s.number); return;
    case AggregateState::Kind::kString: w.String(s.text); return;
    case AggregateState::Kind::kBool: w.Bool(s.boolean); return;
  }
}

void Stored(JsonWriter& w, const AggregateState& s) {
  switch (s.kind) {
    case AggregateState::Kind::kNone: w.Null(); return;
    case AggregateState::Kind::kNumber: w.Int(s.number); return;
    case AggregateState::Kind::kString: w.String(s.text); return;
    case AggregateState::Kind::kBool: w.Bool(s.boolean); return;
  }
}

void WriteAggregate(JsonWriter& w, const AggregateState& s, const rules::Aggregate* agg, EventTime now) {
  w.BeginObject();
  const bool count = agg != nullptr && agg->function == rules::AggregateFunction::kCount;
  if (agg != nullptr) {
    w.Key("function");
    w.String(rules::AggregateFunctionName(agg->function));
    w.Key("window");
    if (agg->window) {
      w.String(FormatDuration(*agg->window));
    } else {
      w.Null();
    }
    w.Key("value");
    AggregateValue(w, *agg, s, now);
  } else {
    w.Key("stored");
    Stored(w, s);
  }
  if (!s.window.empty()) {
    w.Key("window_entries");
    w.BeginArray();
    for (const auto& [t, v] : s.window) {
      w.BeginArray();
      Time(w, t);
      // Raw without rules; a count contributes whole events.
      (agg == nullptr || count) ? w.Int(v) : Hundredths(w, v);
      w.EndArray();
    }
    w.EndArray();
  }
  w.EndObject();
}

}  // namespace

void WriteProfileJson(JsonWriter& w, std::string_view customer, const Profile& profile,
                      const ProfileJsonOptions& options) {
  w.BeginObject();
  w.Key("customer_id");
  w.String(customer);
  if (options.partition) {
    w.Key("partition");
    w.Int(*options.partition);
  }
  w.Key("first_seen");
  Time(w, profile.first_seen_ms);
  w.Key("last_seen");
  Time(w, profile.last_seen_ms);
  w.Key("total_spent");
  Hundredths(w, profile.total_spent_cents);
  w.Key("stage_index");
  w.Int(profile.stage);
  if (options.rules != nullptr && profile.stage < options.rules->ladder.size()) {
    w.Key("stage");
    w.String(options.rules->ladder[profile.stage].name);
  }

  // Sorted by name so that the output does not depend on symbol ids.
  std::vector<std::pair<std::string, const TypeStats*>> types;
  for (const TypeStats& t : profile.types) types.emplace_back(NameOf(options, SymbolKind::kEventType, t.type), &t);
  std::sort(types.begin(), types.end());
  w.Key("events");
  w.BeginObject();
  for (const auto& [name, t] : types) {
    w.Key(name);
    w.BeginObject();
    w.Key("count");
    w.Int(static_cast<int64_t>(t->count));
    w.Key("last");
    Time(w, t->last_ms);
    w.EndObject();
  }
  w.EndObject();

  const EventTime now = options.now.value_or(EventTime{profile.last_seen_ms == kNoTime ? 0 : profile.last_seen_ms});
  std::vector<std::pair<std::string, const AggregateState*>> aggregates;
  for (const AggregateState& a : profile.aggregates) {
    aggregates.emplace_back(NameOf(options, SymbolKind::kAggregate, a.aggregate), &a);
  }
  std::sort(aggregates.begin(), aggregates.end());
  w.Key("aggregates");
  w.BeginObject();
  for (const auto& [name, a] : aggregates) {
    w.Key(name);
    WriteAggregate(w, *a, FindAggregate(options.rules, name), now);
  }
  w.EndObject();

  std::vector<std::pair<std::string, const CampaignState*>> campaigns;
  for (const CampaignState& c : profile.campaigns) {
    if (!c.empty()) campaigns.emplace_back(NameOf(options, SymbolKind::kCampaign, c.campaign), &c);
  }
  std::sort(campaigns.begin(), campaigns.end());
  w.Key("campaigns");
  w.BeginObject();
  for (const auto& [id, c] : campaigns) {
    w.Key(id);
    w.BeginObject();
    w.Key("armed_due");
    Time(w, c->armed_due_ms);
    w.Key("fired");
    w.Int(c->fired);
    w.Key("last_fired");
    Time(w, c->last_fired_ms);
    if (c->fired > 0) {
      w.Key("last_held_out");
      w.Bool(c->last_held_out);
      w.Key("converted");
      w.Bool(c->converted);
    }
    w.Key("recent_firings");
    w.BeginArray();
    for (int64_t t : c->recent_ms) Time(w, t);
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
}

std::string ProfileToJson(std::string_view customer, const Profile& profile, const ProfileJsonOptions& options) {
  std::string out;
  JsonWriter w(&out);
  WriteProfileJson(w, customer, profile, options);
  return out;
}

}  // namespace rapport

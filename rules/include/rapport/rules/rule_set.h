// RuleSet: the compiled campaigns, aggregates and loyalty ladder of a set of
// rule files, and LoadRules(), which builds one.
//
// A RuleSet is immutable once built and shared as shared_ptr<const RuleSet>:
// a reload builds a new one and swaps the pointer, so evaluation never sees a
// half-loaded set. Loading collects every error of every file; a set with any
// error is refused as a whole (LoadResult::rules is null).
//
// Order that users may rely on: campaigns are kept sorted by id, and every
// list of campaign indexes below is in that order, so campaigns fire for one
// trigger in id order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/engine/time.h"
#include "rapport/rules/diagnostic.h"
#include "rapport/rules/expr.h"

namespace rapport::rules {

// Where something was written, for messages and for `validate --format json`.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

// What `customer.<name>` resolves to: a kind and an index whose meaning
// depends on the kind. Packed into CustomerFieldRef::id.
enum class CustomerFieldKind : uint8_t {
  kId,          // customer.id
  kStage,       // customer.stage: the loyalty-ladder stage name
  kTotalSpent,  // customer.total_spent
  kFirstSeen,   // customer.first_seen
  kLastSeen,    // customer.last_seen
  kCount,       // customer.<type>s: events of event_types[index]
  kLastOf,      // customer.last_<type>: time of the latest event_types[index]
  kAggregate,   // customer.<name>: aggregates[index]
};
inline uint32_t PackCustomerField(CustomerFieldKind kind, uint32_t index) {
  return (static_cast<uint32_t>(kind) << 24) | index;
}
inline CustomerFieldKind FieldKind(uint32_t id) { return static_cast<CustomerFieldKind>(id >> 24); }
inline uint32_t FieldIndex(uint32_t id) { return id & 0xFFFFFF; }

// "visit" -> "visits", "search" -> "searches", "reply" -> "replies".
std::string PluralOf(std::string_view event_type);

enum class TriggerKind : uint8_t { kEvent, kInactivity, kStage };

struct Trigger {
  TriggerKind kind = TriggerKind::kEvent;
  uint32_t event_type = 0;  // kEvent, kInactivity: index into RuleSet::event_types
  Duration inactivity;      // kInactivity: how long without such an event
  uint32_t stage = 0;       // kStage: index into RuleSet::ladder
};

struct Limits {
  bool once_per_customer = false;
  std::optional<Duration> cooldown;
  uint32_t at_most_count = 0;  // 0: no window cap
  Duration at_most_per;
  bool any() const { return once_per_customer || cooldown || at_most_count > 0; }
};

// A payload value: a JSON literal, a template ("Hi {{ customer.id }}") or a
// nested object or array of those.
struct PayloadNode {
  enum class Kind : uint8_t { kLiteral, kTemplate, kObject, kArray };
  Kind kind = Kind::kLiteral;
  std::string literal_json;                  // kLiteral: encoded JSON
  std::vector<std::string> text;             // kTemplate: text[i] precedes exprs[i]; text.size() == exprs.size() + 1
  std::vector<std::unique_ptr<Expr>> exprs;  // kTemplate
  // kTemplate with exactly one substitution and no text around it: the
  // value keeps its type ("{{ event.amount }}" stays a number).
  bool single_expression = false;
  std::vector<std::pair<std::string, PayloadNode>> members;  // kObject, in file order
  std::vector<PayloadNode> items;                            // kArray
};

// What counts as the campaign working: the customer does `event_type` (and
// `condition` holds) within `within` after a firing. Goals only measure: they
// never change what fires. Held-out firings convert too, which is what makes
// the treated and held-out conversion rates comparable.
struct Goal {
  uint32_t event_type = 0;          // index into RuleSet::event_types
  std::unique_ptr<Expr> condition;  // null: every event of the type counts
  Duration within;
};

struct Action {
  std::string channel;
  std::string template_name;
  PayloadNode payload;  // always kObject
};

struct Campaign {
  std::string id;
  std::string description;
  bool enabled = true;
  SourceLocation location;
  Trigger trigger;
  std::unique_ptr<Expr> condition;  // null: always
  std::optional<Duration> delay;
  std::unique_ptr<Expr> recheck;  // evaluated when the delay ends; null: none
  // Where the condition's and the recheck's text starts, for warnings
  // about them (rules/include/rapport/rules/lint.h).
  SourceLocation condition_location, recheck_location;
  Limits limits;
  uint32_t holdout_basis_points = 0;  // 0..10000 (hundredths of a percent)
  std::string group;                  // empty: not in a group
  int64_t priority = 0;               // higher wins inside a group
  std::vector<Action> actions;
  std::optional<Goal> goal;
};

enum class AggregateFunction : uint8_t { kCount, kSum, kMin, kMax, kLast };
std::string_view AggregateFunctionName(AggregateFunction fn);

struct Aggregate {
  std::string name;  // customer.<name>
  AggregateFunction function = AggregateFunction::kCount;
  uint32_t event_type = 0;         // index into RuleSet::event_types
  std::vector<std::string> field;  // path in the event; empty for count
  std::optional<Duration> window;  // sliding window ending at the evaluation time
  SourceLocation location;
};

struct Stage {
  std::string name;
  std::unique_ptr<Expr> condition;  // null for the first stage, which always holds
};

class RuleSet {
 public:
  std::vector<Campaign> campaigns;  // sorted by id
  std::vector<Aggregate> aggregates;
  // Lowest first. A customer's stage is the last one whose condition holds.
  std::vector<Stage> ladder;
  bool ladder_declared = false;  // false: `ladder` is the default one
  // Event types the rules know (visit, purchase, referral and every declared
  // or referenced one), sorted.
  std::vector<std::string> event_types;
  std::vector<std::string> files;  // the files loaded, sorted

  std::optional<uint32_t> FindEventType(std::string_view type) const;
  std::optional<uint32_t> FindCampaign(std::string_view id) const;
  std::optional<uint32_t> FindStage(std::string_view name) const;

  // Campaign indexes (enabled only) subscribed to each trigger, in id order.
  const std::vector<uint32_t>& OnEvent(uint32_t event_type) const { return on_event_[event_type]; }
  const std::vector<uint32_t>& OnInactivity(uint32_t event_type) const { return on_inactivity_[event_type]; }
  const std::vector<uint32_t>& OnStage(uint32_t stage) const { return on_stage_[stage]; }
  // Aggregate indexes fed by each event type.
  const std::vector<uint32_t>& AggregatesOf(uint32_t event_type) const { return aggregates_of_[event_type]; }
  // Campaign indexes (disabled ones too: their earlier firings can still
  // convert) whose goal is an event of this type, in id order.
  const std::vector<uint32_t>& GoalsOf(uint32_t event_type) const { return goals_of_[event_type]; }

  // Builds the indexes above; the loader calls it once the vectors are final.
  void BuildIndexes();

 private:
  std::vector<std::vector<uint32_t>> on_event_, on_inactivity_, on_stage_, aggregates_of_, goals_of_;
};

struct LoadResult {
  std::shared_ptr<const RuleSet> rules;  // null when diagnostics has an error
  Diagnostics diagnostics;               // errors and warnings, in file order
};

// Loads rule files. Each path is a YAML file or a directory, searched
// recursively for *.yaml and *.yml (test files, *.test.yaml, are skipped).
// Files are read in sorted path order.
LoadResult LoadRules(const std::vector<std::string>& paths);

// Loads rules from YAML text, as if read from `file_name`; for tests and
// for editors that validate a buffer.
LoadResult LoadRulesFromStrings(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace rapport::rules

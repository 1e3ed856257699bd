// Explain: what the processor decided for a customer and why, step by step.
// The engine of `rapport explain`, and of the explanation `rapport test`
// prints when a campaign test fails.
//
// ExplainRecorder is a ProcessorTracer (ProcessorOptions::tracer). For the
// customers it watches it keeps one ExplainStep per event of theirs and one
// per timer of theirs that came due, in the order the processor took them
// (time order, but for late events), each with the decisions taken in it:
// campaigns offered, with the value of every part of their condition;
// suppressions by a limit, a group, a failed recheck or a pending delay;
// held-out firings; timers armed, replaced and fired (stale or not); and the
// actions fired. Condition parts are evaluated when the campaign is offered,
// with the processor's own evaluation context, so they show exactly what the
// processor saw.
//
// FormatExplanation and ExplanationJson render steps for people and for
// tools; both can be limited to one customer and one campaign. RunExplain
// replays an events file through a rule set and records one customer.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/engine/processor.h"
#include "rapport/engine/status.h"
#include "rapport/engine/time.h"
#include "rapport/rules/rule_set.h"

namespace rapport::connectors {

// One part of a condition (rules::Explain) and its value at the offer.
struct ConditionPart {
  std::string text;   // as written in the rule file
  int depth = 0;      // 0 for the whole condition; operands one deeper
  std::string value;  // "true", "false", "unknown", or the value as template text
  std::string json;   // the value as JSON: true, false, null for unknown, a number or a string
};

enum class DecisionKind : uint8_t {
  kOffered,     // the campaign's trigger matched and its condition was evaluated
  kSuppressed,  // a limit, group, recheck or pending delay held it back
  kTimerArmed,  // a delay or inactivity timer was armed (or moved: `replaced`)
  kFired,       // an action fired, or was held out (`held_out`)
};

struct ExplainDecision {
  DecisionKind kind = DecisionKind::kOffered;
  std::string campaign;
  // kOffered: the condition's value (true when the campaign has none) and
  // its parts, the whole condition first; empty when there is none.
  bool condition_true = true;
  std::vector<ConditionPart> condition;
  // kSuppressed: the suppression's name (SuppressionName) and the limit
  // behind it in words, e.g. "cooldown 30d".
  std::string reason;
  std::string detail;
  // kTimerArmed
  EventTime due;
  std::optional<EventTime> replaced;  // the due time of the timer it replaced
  // kFired
  bool held_out = false;
  std::string action_json;  // the whole action, as the sink got it
  std::string channel, template_name;
  std::string payload_json;
};

struct ExplainStep {
  enum class Kind : uint8_t { kEvent, kTimer };
  Kind kind = Kind::kEvent;
  EventTime time;  // the event's time, or the timer's due time
  std::string customer;
  // kEvent: the event as read, and the ladder stage before and after it.
  std::string event_type;
  std::string event_json;
  std::string stage_before, stage_after;
  // kTimer: whose timer came due; stale when it had been replaced (or its
  // campaign was removed) and so did nothing.
  std::string timer_campaign;
  bool stale = false;
  std::vector<ExplainDecision> decisions;
};

class ExplainRecorder : public ProcessorTracer {
 public:
  // Watches `customers`, or every customer when it is empty. `rules` must be
  // the processor's rule set (for stage names) and outlive the recorder.
  ExplainRecorder(const rules::RuleSet& rules, std::set<std::string, std::less<>> customers);

  const std::vector<ExplainStep>& steps() const { return steps_; }

  void OnEvent(const Event& event, std::string_view customer, const Profile& profile, uint8_t old_stage) override;
  void OnOffered(const rules::Campaign& campaign, std::string_view customer, EventTime now,
                 const rules::EvalContext& context, bool condition_true) override;
  void OnSuppressed(const rules::Campaign& campaign, std::string_view customer, EventTime now,
                    Suppression why) override;
  void OnTimerArmed(const rules::Campaign& campaign, std::string_view customer, EventTime due,
                    std::optional<EventTime> replaced) override;
  void OnTimerFired(std::string_view campaign_id, std::string_view customer, EventTime due, bool stale) override;
  void OnFired(const FiredAction& action) override;

 private:
  bool Watched(std::string_view customer) const;
  // The step that decisions about `customer` belong to: the latest one.
  ExplainDecision* Add(std::string_view customer, DecisionKind kind, std::string_view campaign);

  const rules::RuleSet& rules_;
  std::set<std::string, std::less<>> customers_;
  std::vector<ExplainStep> steps_;
  rules::Scratch scratch_;
};

// "+2d", "-10d", "+1h30m", "+0": an offset as campaign tests write times.
std::string FormatOffset(Duration d);

struct ExplainFormat {
  std::string customer;  // only this customer's steps; empty: all
  std::string campaign;  // only steps and decisions about this campaign; empty: all
  // When set, every time is followed by its offset from here, "(+2d)", as
  // campaign tests write times.
  std::optional<EventTime> origin;
  std::string indent;  // prefixed to every line
};

// The steps as text, one block per step:
//
//   2026-01-05T10:00:00.000Z  event purchase {"type":"purchase",...}
//     stage prospect -> customer
//     offered post-purchase-thank-you: condition true
//       true     customer.purchases == 1
//     fired post-purchase-thank-you: email thank-you-first-order {"order_id":"o-1",...}
//
// Ends with a newline unless nothing matched (then it is empty).
std::string FormatExplanation(std::span<const ExplainStep> steps, const ExplainFormat& format);

// The steps as one JSON array (docs/marketer-guide.md has the keys).
std::string ExplanationJson(std::span<const ExplainStep> steps, const ExplainFormat& format);

struct ExplainOptions {
  std::string events_path;  // JSON lines; "-" for stdin
  std::string customer;
  std::optional<EventTime> until;  // fire timers up to here at the end (default: the last event's time)
  std::string coupon_secret;
};

struct ExplainRun {
  std::vector<ExplainStep> steps;  // the customer's
  uint64_t lines = 0, accepted = 0, rejected = 0;
  uint64_t customer_events = 0;  // accepted events of the customer
  std::optional<EventTime> final_clock;
};

// Replays every event of the file (other customers' events move the clock
// and fire timers too) in a scratch state directory and records the
// customer's steps. Rejected lines are counted and skipped, as in a replay.
// Errors: I/O and RocksDB failures only.
Result<ExplainRun> RunExplain(const ExplainOptions& options, std::shared_ptr<const rules::RuleSet> rules);

}  // namespace rapport::connectors

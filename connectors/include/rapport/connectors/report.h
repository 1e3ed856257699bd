// Report: what `rapport replay --report FILE.html` shows a marketer, gathered
// while a replay runs and rendered as one self-contained HTML page.
//
// ReportCollector is a ProcessorTracer: pass it as ReplayOptions::tracer and
// it builds the time series the processor's counters do not keep (firings
// per day and campaign, customers per ladder stage per week, conversions).
// Replays without a report pass no tracer and pay nothing. Its memory grows
// with customers (it remembers who it has seen, to count them once) and with
// days, never with events.
//
// RenderHtmlReport turns a collector's data, the replay summary and the rule
// set into HTML that needs nothing else: inline CSS, charts as inline SVG
// generated here, no script, font or image from anywhere. Each chart is an
// <svg> with a stable id (actions-per-day, conversion-lift, ladder-funnel,
// suppressions); a chart with nothing to show is a sentence saying why.
// Output depends only on its inputs: the same replay gives the same bytes.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "rapport/connectors/replay.h"
#include "rapport/engine/processor.h"
#include "rapport/rules/rule_set.h"

namespace rapport::connectors {

struct ReportData {
  // Delivered (not held-out) firings per UTC day (days since the epoch) and
  // campaign index of the rule set. A day without firings is absent.
  std::map<int64_t, std::vector<uint64_t>> firings_by_day;
  // Customers at each ladder stage at the end of each week: weeks since the
  // Monday 1970-01-05, in UTC; a week without events is absent and reads as
  // the week before. Only customers with an event in this replay count.
  std::map<int64_t, std::vector<uint64_t>> stages_by_week;
  uint64_t customers = 0;  // distinct customers with an event in this replay
  // UTC days of the earliest and latest event; first_day > last_day when
  // there was none.
  int64_t first_day = INT64_MAX, last_day = INT64_MIN;
  // Per campaign index, as OnConversion reported them.
  std::vector<uint64_t> conversions, conversions_held_out;
  // Per campaign index and Suppression.
  std::vector<std::array<uint64_t, kSuppressionCount>> suppressed;
};

class ReportCollector : public ProcessorTracer {
 public:
  explicit ReportCollector(std::shared_ptr<const rules::RuleSet> rules);

  void OnEvent(const Event& event, std::string_view customer, const Profile& profile, uint8_t old_stage) override;
  void OnSuppressed(const rules::Campaign& campaign, std::string_view customer, EventTime now,
                    Suppression why) override;
  // Counts a firing at its first action: the processor delivers a firing's
  // actions one after the other, nothing in between.
  void OnFired(const FiredAction& action) override;
  void OnConversion(const rules::Campaign& campaign, std::string_view customer, EventTime now, EventTime fired_at,
                    bool held_out) override;

  // What was collected so far, the current week included.
  ReportData Data() const;
  const rules::RuleSet& rules() const { return *rules_; }

 private:
  size_t IndexOf(const rules::Campaign& campaign) const;

  std::shared_ptr<const rules::RuleSet> rules_;
  ReportData data_;
  std::unordered_set<std::string> seen_;
  std::vector<uint64_t> stage_counts_;  // customers per stage now
  int64_t week_ = INT64_MIN;            // the latest week an event fell in
  size_t actions_left_in_firing_ = 0;
};

// Where the replay's inputs came from, for the report's heading.
struct ReportContext {
  std::string rules;   // the rule paths, as given
  std::string events;  // the events path, as given
};

std::string RenderHtmlReport(const ReportData& data, const ReplaySummary& summary, const rules::RuleSet& rules,
                             const ReportContext& context);

}  // namespace rapport::connectors

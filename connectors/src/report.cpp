// ReportCollector: the time series of a replay report, from tracer callbacks.
#include "rapport/connectors/report.h"

#include <algorithm>

namespace rapport::connectors {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// 1970-01-01 was a Thursday: weeks start on the Monday 4 days later.
int64_t WeekOf(int64_t ms) { return FloorDiv(FloorDiv(ms, kMsPerDay) - 4, 7); }

}  // namespace

ReportCollector::ReportCollector(std::shared_ptr<const rules::RuleSet> rules) : rules_(std::move(rules)) {
  const size_t campaigns = rules_->campaigns.size();
  data_.conversions.assign(campaigns, 0);
  data_.conversions_held_out.assign(campaigns, 0);
  data_.suppressed.assign(campaigns, {});
  stage_counts_.assign(rules_->ladder.size(), 0);
}

size_t ReportCollector::IndexOf(const rules::Campaign& campaign) const {
  const auto& all = rules_->campaigns;
  if (!all.empty() && &campaign >= all.data() && &campaign < all.data() + all.size()) {
    return static_cast<size_t>(&campaign - all.data());
  }
  // Not this rule set's object (the processor's rules were swapped): by id.
  return rules_->FindCampaign(campaign.id).value_or(all.size());
}

void ReportCollector::OnEvent(const Event& event, std::string_view customer, const Profile& profile,
                              uint8_t old_stage) {
  // A stored stage beyond the ladder (from other rules) is no stage.
  auto count = [this](uint8_t stage) -> uint64_t* {
    return stage < stage_counts_.size() ? &stage_counts_[stage] : nullptr;
  };
  if (seen_.emplace(customer).second) {
    ++data_.customers;
    if (uint64_t* c = count(old_stage)) ++*c;
  }
  if (profile.stage != old_stage) {
    if (uint64_t* c = count(old_stage); c != nullptr && *c > 0) --*c;
    if (uint64_t* c = count(profile.stage)) ++*c;
  }
  const int64_t day = FloorDiv(event.ts.ms, kMsPerDay);
  data_.first_day = std::min(data_.first_day, day);
  data_.last_day = std::max(data_.last_day, day);
  // A late event changes today's counts, not those of its own week.
  const int64_t week = std::max(week_, WeekOf(event.ts.ms));
  if (week != week_) {
    if (week_ != INT64_MIN) data_.stages_by_week[week_] = stage_counts_;
    week_ = week;
  }
}

void ReportCollector::OnSuppressed(const rules::Campaign& campaign, std::string_view, EventTime, Suppression why) {
  const size_t ci = IndexOf(campaign);
  if (ci < data_.suppressed.size()) ++data_.suppressed[ci][static_cast<size_t>(why)];
}

void ReportCollector::OnFired(const FiredAction& action) {
  if (actions_left_in_firing_ > 0) {
    --actions_left_in_firing_;
    return;
  }
  actions_left_in_firing_ = action.campaign->actions.empty() ? 0 : action.campaign->actions.size() - 1;
  if (action.held_out) return;
  const size_t ci = IndexOf(*action.campaign);
  if (ci >= rules_->campaigns.size()) return;
  std::vector<uint64_t>& day = data_.firings_by_day[FloorDiv(action.ts.ms, kMsPerDay)];
  if (day.empty()) day.assign(rules_->campaigns.size(), 0);
  ++day[ci];
}

void ReportCollector::OnConversion(const rules::Campaign& campaign, std::string_view, EventTime, EventTime,
                                   bool held_out) {
  const size_t ci = IndexOf(campaign);
  if (ci >= data_.conversions.size()) return;
  ++(held_out ? data_.conversions_held_out[ci] : data_.conversions[ci]);
}

ReportData ReportCollector::Data() const {
  ReportData out = data_;
  if (week_ != INT64_MIN) out.stages_by_week[week_] = stage_counts_;
  return out;
}

}  // namespace rapport::connectors

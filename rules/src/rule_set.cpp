#include <algorithm>

#include "rapport/rules/rule_set.h"

namespace rapport::rules {

std::string PluralOf(std::string_view t) {
  std::string s(t);
  auto ends = [&](std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends("s") || ends("x") || ends("z") || ends("ch") || ends("sh")) return s + "es";
  if (s.size() >= 2 && s.back() == 'y' && std::string_view("aeiou").find(s[s.size() - 2]) == std::string_view::npos) {
    return s.substr(0, s.size() - 1) + "ies";
  }
  return s + "s";
}

std::string_view AggregateFunctionName(AggregateFunction fn) {
  switch (fn) {
    case AggregateFunction::kCount: return "count";
    case AggregateFunction::kSum: return "sum";
    case AggregateFunction::kMin: return "min";
    case AggregateFunction::kMax: return "max";
    case AggregateFunction::kLast: return "last";
  }
  return "?";
}

std::optional<uint32_t> RuleSet::FindEventType(std::string_view type) const {
  auto it = std::lower_bound(event_types.begin(), event_types.end(), type);
  if (it == event_types.end() || *it != type) return std::nullopt;
  return static_cast<uint32_t>(it - event_types.begin());
}

std::optional<uint32_t> RuleSet::FindCampaign(std::string_view id) const {
  auto it = std::lower_bound(campaigns.begin(), campaigns.end(), id,
                             [](const Campaign& c, std::string_view v) { return c.id < v; });
  if (it == campaigns.end() || it->id != id) return std::nullopt;
  return static_cast<uint32_t>(it - campaigns.begin());
}

std::optional<uint32_t> RuleSet::FindStage(std::string_view name) const {
  for (size_t i = 0; i < ladder.size(); ++i) {
    if (ladder[i].name == name) return static_cast<uint32_t>(i);
  }
  return std::nullopt;
}

void RuleSet::BuildIndexes() {
  on_event_.assign(event_types.size(), {});
  on_inactivity_.assign(event_types.size(), {});
  aggregates_of_.assign(event_types.size(), {});
  goals_of_.assign(event_types.size(), {});
  on_stage_.assign(ladder.size(), {});
  for (uint32_t i = 0; i < campaigns.size(); ++i) {
    const Campaign& c = campaigns[i];
    if (c.goal) goals_of_[c.goal->event_type].push_back(i);
    if (!c.enabled) continue;
    switch (c.trigger.kind) {
      case TriggerKind::kEvent: on_event_[c.trigger.event_type].push_back(i); break;
      case TriggerKind::kInactivity: on_inactivity_[c.trigger.event_type].push_back(i); break;
      case TriggerKind::kStage: on_stage_[c.trigger.stage].push_back(i); break;
    }
  }
  for (uint32_t i = 0; i < aggregates.size(); ++i) aggregates_of_[aggregates[i].event_type].push_back(i);
}

}  // namespace rapport::rules

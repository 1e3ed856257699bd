// RenderHtmlReport: one HTML page, charts drawn here as inline SVG.
//
// Every chart shares one coordinate system (a 960-unit-wide viewBox, scaled
// to the page by CSS), the same axis helper and the same palette, so the
// page reads as one document. Hover text comes from SVG <title> elements,
// which browsers show without any script.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "rapport/connectors/report.h"

namespace rapport::connectors {
namespace {

constexpr double kWidth = 960;
// Categorical colours (Tableau 10), distinguishable in print and by most
// colour-blind readers.
constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr const char* kTreated = "#4e79a7";
constexpr const char* kHeldOut = "#a0a7b0";
constexpr const char* kSuppressed = "#e0823d";
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

const char* Colour(size_t i) { return kPalette[i % std::size(kPalette)]; }

std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string Thousands(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Fixed(double v, int decimals = 1) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

// Coordinates: one decimal is finer than any screen needs.
std::string N(double v) { return Fixed(v, 1); }

std::string Percent(double fraction) { return Fixed(100 * fraction) + "%"; }

// "Jan 5" for a UTC day since the epoch; with the year when asked.
std::string DayLabel(int64_t day, bool with_year = false) {
  int64_t y;
  unsigned m, d;
  CivilFromDays(day, &y, &m, &d);
  std::string out = std::string(kMonths[m - 1]) + " " + std::to_string(d);
  if (with_year) out += ", " + std::to_string(y);
  return out;
}

// 1, 2 or 5 times a power of ten, so that about `target` steps cover `max`.
double NiceStep(double max, int target, double smallest) {
  if (max <= 0) return smallest;
  const double raw = max / target;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  return std::max(step, smallest);
}

struct Scale {
  double max = 1, step = 1;
};
Scale NiceScale(double max, int target, double smallest) {
  Scale s;
  s.step = NiceStep(max, target, smallest);
  s.max = std::max(s.step, std::ceil(max / s.step - 1e-9) * s.step);
  return s;
}

std::string TickLabel(double v, bool percent) {
  if (percent) return Fixed(v, v == std::floor(v) ? 0 : 1) + "%";
  return Thousands(static_cast<uint64_t>(std::llround(v)));
}

// Horizontal grid lines with labels on the left, for vertical charts.
void YAxis(std::string* svg, const Scale& s, double left, double right, double top, double bottom, bool percent) {
  for (double v = 0; v <= s.max + 1e-9; v += s.step) {
    const double y = bottom - (bottom - top) * v / s.max;
    *svg +=
        "<line class=\"grid\" x1=\"" + N(left) + "\" x2=\"" + N(right) + "\" y1=\"" + N(y) + "\" y2=\"" + N(y) + "\"/>";
    *svg += "<text class=\"tick\" x=\"" + N(left - 8) + "\" y=\"" + N(y + 4) + "\" text-anchor=\"end\">" +
            TickLabel(v, percent) + "</text>";
  }
}

std::string SvgOpen(const std::string& id, double height, const std::string& label) {
  return "<svg id=\"" + id + "\" viewBox=\"0 0 " + N(kWidth) + " " + N(height) +
         "\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" aria-label=\"" + Escape(label) + "\">";
}

std::string Swatch(const char* colour) {
  return "<span class=\"sw\" style=\"background:" + std::string(colour) + "\"></span>";
}

uint64_t Sum(const std::vector<uint64_t>& v) {
  uint64_t total = 0;
  for (uint64_t x : v) total += x;
  return total;
}

// --- actions per day ---------------------------------------------------------

std::string ActionsPerDay(const ReportData& d, const ReplaySummary& summary, const rules::RuleSet& rules) {
  std::string html =
      "<section class=\"card\"><h2>Actions per day</h2>"
      "<p class=\"note\">Actions delivered per campaign and day (UTC), by the time they fired; "
      "held-out firings are not counted.</p>";
  int64_t first = d.first_day, last = d.last_day;
  if (!d.firings_by_day.empty()) {
    first = std::min(first, d.firings_by_day.begin()->first);
    last = std::max(last, d.firings_by_day.rbegin()->first);
  }
  if (summary.final_clock) last = std::max(last, summary.final_clock->ms / kMsPerDay);
  if (first > last) return html + "<p class=\"empty\">No events were replayed.</p></section>";
  const size_t days = static_cast<size_t>(last - first + 1);
  const size_t campaigns = rules.campaigns.size();
  std::vector<uint64_t> totals(campaigns, 0);
  uint64_t peak = 0;
  for (const auto& [day, counts] : d.firings_by_day) {
    for (size_t ci = 0; ci < campaigns; ++ci) {
      totals[ci] += counts[ci];
      peak = std::max(peak, counts[ci]);
    }
  }
  std::vector<size_t> shown;
  for (size_t ci = 0; ci < campaigns; ++ci) {
    if (totals[ci] > 0) shown.push_back(ci);
  }
  if (shown.empty()) return html + "<p class=\"empty\">No campaign delivered an action.</p></section>";

  const double height = 340, left = 56, right = kWidth - 16, top = 16, bottom = height - 36;
  const Scale scale = NiceScale(static_cast<double>(peak), 5, 1);
  auto x = [&](size_t i) { return days == 1 ? (left + right) / 2 : left + (right - left) * i / (days - 1); };
  auto y = [&](uint64_t v) { return bottom - (bottom - top) * static_cast<double>(v) / scale.max; };
  std::string svg = SvgOpen("actions-per-day", height, "Actions per day and campaign");
  YAxis(&svg, scale, left, right, top, bottom, false);
  // Date labels: daily for short replays, else on Mondays every week or more.
  const size_t step = days <= 10 ? 1 : days <= 20 ? 2 : 7 * ((days + 62) / 63);
  for (size_t i = 0; i < days; ++i) {
    const int64_t day = first + static_cast<int64_t>(i);
    const bool monday = ((day - 4) % 7 + 7) % 7 == 0;
    const bool label = step < 7 ? i % step == 0 : monday && ((day - 4) / 7) % static_cast<int64_t>(step / 7) == 0;
    if (!label) continue;
    svg += "<line class=\"axis\" x1=\"" + N(x(i)) + "\" x2=\"" + N(x(i)) + "\" y1=\"" + N(bottom) + "\" y2=\"" +
           N(bottom + 5) + "\"/><text class=\"tick\" x=\"" + N(x(i)) + "\" y=\"" + N(bottom + 20) +
           "\" text-anchor=\"middle\">" + DayLabel(day) + "</text>";
  }
  svg += "<line class=\"axis\" x1=\"" + N(left) + "\" x2=\"" + N(right) + "\" y1=\"" + N(bottom) + "\" y2=\"" +
         N(bottom) + "\"/>";
  auto count = [&](size_t i, size_t ci) -> uint64_t {
    auto it = d.firings_by_day.find(first + static_cast<int64_t>(i));
    return it == d.firings_by_day.end() ? 0 : it->second[ci];
  };
  for (size_t k = 0; k < shown.size(); ++k) {
    const size_t ci = shown[k];
    std::string path;
    for (size_t i = 0; i < days; ++i) path += (i == 0 ? "M" : " L") + N(x(i)) + " " + N(y(count(i, ci)));
    if (days == 1) path += " l0.1 0";  // a single day still shows as a dot
    svg += "<path class=\"series\" d=\"" + path + "\" stroke=\"" + Colour(k) + "\"><title>" +
           Escape(rules.campaigns[ci].id) + ": " + Thousands(totals[ci]) + " actions</title></path>";
  }
  // One transparent column per day carries that day's numbers as hover text.
  const double column = days == 1 ? right - left : (right - left) / (days - 1);
  for (size_t i = 0; i < days; ++i) {
    std::string tip = DayLabel(first + static_cast<int64_t>(i), true);
    for (size_t ci : shown) tip += "\n" + rules.campaigns[ci].id + ": " + Thousands(count(i, ci));
    svg += "<rect class=\"hover\" x=\"" + N(std::max(left, x(i) - column / 2)) + "\" y=\"" + N(top) + "\" width=\"" +
           N(std::min(column, right - left)) + "\" height=\"" + N(bottom - top) + "\"><title>" + Escape(tip) +
           "</title></rect>";
  }
  svg += "</svg>";
  html += "<div class=\"chart\">" + svg + "</div>" + "<ul class=\"legend\">";
  for (size_t k = 0; k < shown.size(); ++k) {
    html += "<li>" + std::string(Swatch(Colour(k))) + Escape(rules.campaigns[shown[k]].id) + " <span class=\"muted\">" +
            Thousands(totals[shown[k]]) + "</span></li>";
  }
  html += "</ul>";
  std::string silent;
  for (size_t ci = 0; ci < campaigns; ++ci) {
    if (totals[ci] == 0) silent += (silent.empty() ? "" : ", ") + Escape(rules.campaigns[ci].id);
  }
  if (!silent.empty()) html += "<p class=\"note\">No actions delivered: " + silent + ".</p>";
  return html + "</section>";
}

// --- conversions -----------------------------------------------------------

std::string Conversions(const ReportData& d, const ReplaySummary& summary, const rules::RuleSet& rules) {
  std::string html =
      "<section class=\"card\"><h2>Conversions: treated vs held out</h2>"
      "<p class=\"note\">Share of firings after which the customer reached the campaign's goal "
      "within its window. Held-out customers were not contacted, so the difference is what the "
      "campaign changed: the lift.</p>";
  struct Row {
    size_t ci;
    uint64_t firings, conversions, held_firings, held_conversions;
  };
  std::vector<Row> rows;
  std::string no_goal;
  for (size_t ci = 0; ci < rules.campaigns.size(); ++ci) {
    const rules::Campaign& c = rules.campaigns[ci];
    if (!c.goal) {
      no_goal += (no_goal.empty() ? "" : ", ") + Escape(c.id);
      continue;
    }
    auto it = summary.processor.campaigns.find(c.id);
    const CampaignCounters counters = it == summary.processor.campaigns.end() ? CampaignCounters{} : it->second;
    rows.push_back({ci, counters.fired, d.conversions[ci], counters.held_out, d.conversions_held_out[ci]});
  }
  if (rows.empty()) {
    return html +
           "<p class=\"empty\">No campaign declares a <code>goal</code>, so there is nothing to measure. Add one, "
           "e.g. <code>goal: {event: purchase, within: 7d}</code>, and a <code>holdout</code> to compare "
           "against (docs/rule-language.md).</p></section>";
  }
  auto rate = [](uint64_t conversions, uint64_t firings) {
    return firings == 0 ? 0.0 : static_cast<double>(conversions) / static_cast<double>(firings);
  };
  double max_rate = 0;
  for (const Row& r : rows)
    max_rate = std::max({max_rate, rate(r.conversions, r.firings), rate(r.held_conversions, r.held_firings)});
  const Scale scale = NiceScale(100 * max_rate, 5, 1);
  const double label_width = 250, left = label_width + 10, right = kWidth - 150, top = 28, bar = 18, gap = 4,
               row_height = 2 * bar + gap + 22;
  const double height = top + row_height * static_cast<double>(rows.size()) + 4;
  auto x = [&](double fraction) { return left + (right - left) * 100 * fraction / scale.max; };
  std::string svg = SvgOpen("conversion-lift", height, "Conversion rate, treated vs held out, per campaign");
  for (double v = 0; v <= scale.max + 1e-9; v += scale.step) {
    const double gx = left + (right - left) * v / scale.max;
    svg += "<line class=\"grid\" x1=\"" + N(gx) + "\" x2=\"" + N(gx) + "\" y1=\"" + N(top - 6) + "\" y2=\"" +
           N(height - 4) + "\"/><text class=\"tick\" x=\"" + N(gx) + "\" y=\"" + N(top - 12) +
           "\" text-anchor=\"middle\">" + TickLabel(v, true) + "</text>";
  }
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    const rules::Campaign& c = rules.campaigns[r.ci];
    const double y0 = top + row_height * static_cast<double>(k) + 10;
    svg += "<text class=\"label\" x=\"" + N(label_width) + "\" y=\"" + N(y0 + bar + gap / 2 + 4) +
           "\" text-anchor=\"end\">" + Escape(c.id) + "</text>";
    auto draw = [&](double y, const char* colour, const char* group, uint64_t conversions, uint64_t firings) {
      const double fraction = rate(conversions, firings);
      const std::string text = Percent(fraction) + " (" + Thousands(conversions) + " of " + Thousands(firings) + ")";
      svg += "<rect class=\"bar\" x=\"" + N(left) + "\" y=\"" + N(y) + "\" width=\"" +
             N(std::max(1.0, x(fraction) - left)) + "\" height=\"" + N(bar) + "\" fill=\"" + colour + "\"><title>" +
             Escape(c.id) + ", " + group + ": " + text + "</title></rect>";
      svg += "<text class=\"value\" x=\"" + N(std::max(1.0, x(fraction) - left) + left + 6) + "\" y=\"" +
             N(y + bar - 5) + "\">" + group + " " + text + "</text>";
    };
    draw(y0, kTreated, "treated", r.conversions, r.firings);
    if (c.holdout_basis_points == 0) {
      svg += "<text class=\"value muted\" x=\"" + N(left + 6) + "\" y=\"" + N(y0 + bar + gap + bar - 5) +
             "\">no holdout</text>";
    } else {
      draw(y0 + bar + gap, kHeldOut, "held out", r.held_conversions, r.held_firings);
    }
  }
  svg += "<line class=\"axis\" x1=\"" + N(left) + "\" x2=\"" + N(left) + "\" y1=\"" + N(top - 6) + "\" y2=\"" +
         N(height - 4) + "\"/></svg>";
  html += "<div class=\"chart\">" + svg + "</div>" + "<ul class=\"legend\"><li>" + Swatch(kTreated) +
          "treated (contacted)</li><li>" + Swatch(kHeldOut) + "held out (control group)</li></ul>";

  html +=
      "<div class=\"scroll\"><table><thead><tr><th>campaign</th><th class=\"text\">goal</th><th>holdout</th>"
      "<th>treated: converted</th><th>held out: converted</th><th>lift</th></tr></thead><tbody>";
  auto cell = [&](uint64_t conversions, uint64_t firings) {
    if (firings == 0) return std::string("<span class=\"muted\">no firings</span>");
    return "<b>" + Percent(rate(conversions, firings)) + "</b> <span class=\"muted\">" + Thousands(conversions) +
           " of " + Thousands(firings) + "</span>";
  };
  for (const Row& r : rows) {
    const rules::Campaign& c = rules.campaigns[r.ci];
    const std::string goal = Escape(rules.event_types[c.goal->event_type]) +
                             (c.goal->condition ? " (if its condition holds)" : "") + " within " +
                             FormatDuration(c.goal->within);
    std::string lift;
    if (c.holdout_basis_points == 0) {
      lift = "<span class=\"muted\">no holdout</span>";
    } else if (r.held_firings == 0 || r.firings == 0) {
      lift = "<span class=\"muted\">not enough firings</span>";
    } else {
      const double treated = rate(r.conversions, r.firings), held = rate(r.held_conversions, r.held_firings);
      const double points = 100 * (treated - held);
      lift = "<b>" + std::string(points >= 0 ? "+" : "") + Fixed(points) + " pts</b>";
      if (held > 0) {
        lift += " <span class=\"muted\">(" + std::string(treated >= held ? "+" : "") +
                Fixed(100 * (treated / held - 1), 0) + "%)</span>";
      }
    }
    const uint32_t bp = c.holdout_basis_points;
    html +=
        "<tr><td>" + Escape(c.id) + "</td><td class=\"text\">" + goal + "</td><td>" +
        (bp == 0 ? std::string("<span class=\"muted\">no holdout</span>") : Fixed(bp / 100.0, bp % 100 ? 2 : 0) + "%") +
        "</td><td>" + cell(r.conversions, r.firings) + "</td><td>" +
        (bp == 0 ? std::string("<span class=\"muted\">no holdout</span>") : cell(r.held_conversions, r.held_firings)) +
        "</td><td>" + lift + "</td></tr>";
  }
  html += "</tbody></table></div>";
  if (!no_goal.empty()) html += "<p class=\"note\">No goal declared: " + no_goal + ".</p>";
  return html + "</section>";
}

// --- the ladder --------------------------------------------------------------

// Light to dark blue: later stages of the ladder are darker.
std::string StageColour(size_t i, size_t n) {
  const double t = n <= 1 ? 1 : static_cast<double>(i) / static_cast<double>(n - 1);
  const int from[] = {198, 219, 239}, to[] = {8, 48, 107};
  char text[8];
  std::snprintf(text, sizeof text, "#%02x%02x%02x", static_cast<int>(from[0] + (to[0] - from[0]) * t),
                static_cast<int>(from[1] + (to[1] - from[1]) * t), static_cast<int>(from[2] + (to[2] - from[2]) * t));
  return text;
}

std::string Ladder(const ReportData& d, const rules::RuleSet& rules) {
  const size_t stages = rules.ladder.size();
  std::string names;
  for (size_t s = 0; s < stages; ++s) names += (s ? " → " : "") + Escape(rules.ladder[s].name);
  std::string html =
      "<section class=\"card\"><h2>Loyalty ladder</h2><p class=\"note\">Customers at each stage at "
      "the end of each week (weeks start on Monday, UTC); only customers with an event in this "
      "replay are counted. " +
      names + ".</p>";
  if (!rules.ladder_declared) {
    html +=
        "<p class=\"note\"><b>The rules declare no ladder</b>, so this is Rapport's default one "
        "(docs/rule-language.md, “The loyalty ladder”).</p>";
  }
  if (d.stages_by_week.empty()) return html + "<p class=\"empty\">No events were replayed.</p></section>";
  const int64_t first = d.stages_by_week.begin()->first, last = d.stages_by_week.rbegin()->first;
  std::vector<std::vector<uint64_t>> weeks;
  std::vector<uint64_t> carry(stages, 0);
  for (int64_t w = first; w <= last; ++w) {
    if (auto it = d.stages_by_week.find(w); it != d.stages_by_week.end()) carry = it->second;
    weeks.push_back(carry);
  }
  uint64_t peak = 0;
  for (const auto& w : weeks) peak = std::max(peak, Sum(w));
  const double height = 340, left = 64, right = kWidth - 16, top = 16, bottom = height - 36;
  const Scale scale = NiceScale(static_cast<double>(peak), 5, 1);
  const double slot = (right - left) / static_cast<double>(weeks.size());
  const double bar = std::min(slot * 0.72, 64.0);
  std::string svg = SvgOpen("ladder-funnel", height, "Customers per ladder stage per week");
  YAxis(&svg, scale, left, right, top, bottom, false);
  const size_t label_every = (weeks.size() + 11) / 12;
  for (size_t i = 0; i < weeks.size(); ++i) {
    const int64_t monday = (first + static_cast<int64_t>(i)) * 7 + 4;
    const double cx = left + slot * (static_cast<double>(i) + 0.5);
    double y = bottom;
    for (size_t s = 0; s < stages; ++s) {
      const double h = (bottom - top) * static_cast<double>(weeks[i][s]) / scale.max;
      if (weeks[i][s] == 0) continue;
      y -= h;
      svg += "<rect class=\"bar\" x=\"" + N(cx - bar / 2) + "\" y=\"" + N(y) + "\" width=\"" + N(bar) + "\" height=\"" +
             N(h) + "\" fill=\"" + StageColour(s, stages) + "\"><title>Week of " + DayLabel(monday, true) + ": " +
             Escape(rules.ladder[s].name) + " " + Thousands(weeks[i][s]) + "</title></rect>";
    }
    if (i % label_every == 0) {
      svg += "<text class=\"tick\" x=\"" + N(cx) + "\" y=\"" + N(bottom + 20) + "\" text-anchor=\"middle\">" +
             DayLabel(monday) + "</text>";
    }
  }
  svg += "<line class=\"axis\" x1=\"" + N(left) + "\" x2=\"" + N(right) + "\" y1=\"" + N(bottom) + "\" y2=\"" +
         N(bottom) + "\"/></svg>";
  html += "<div class=\"chart\">" + svg + "</div>" + "<ul class=\"legend\">";
  for (size_t s = 0; s < stages; ++s)
    html += "<li>" + Swatch(StageColour(s, stages).c_str()) + Escape(rules.ladder[s].name) + "</li>";
  html += "</ul>";
  // The funnel now: how many reached each stage or a later one.
  const std::vector<uint64_t>& now = weeks.back();
  const uint64_t total = Sum(now);
  html += "<div class=\"scroll\"><table><thead><tr><th>stage (week of " + DayLabel(last * 7 + 4, true) +
          ")</th><th>customers</th><th>share</th><th>at this stage or later</th></tr></thead><tbody>";
  uint64_t at_or_above = total;
  for (size_t s = 0; s < stages; ++s) {
    html += "<tr><td>" + Swatch(StageColour(s, stages).c_str()) + Escape(rules.ladder[s].name) + "</td><td>" +
            Thousands(now[s]) + "</td><td>" + (total ? Percent(static_cast<double>(now[s]) / total) : "-") +
            "</td><td>" + Thousands(at_or_above) +
            (total ? " (" + Percent(static_cast<double>(at_or_above) / total) + ")" : "") + "</td></tr>";
    at_or_above -= now[s];
  }
  return html + "</tbody></table></div></section>";
}

// --- suppressions --------------------------------------------------------------

std::string_view Why(Suppression s) {
  switch (s) {
    case Suppression::kOnce: return "already sent to this customer once";
    case Suppression::kCooldown: return "sent to this customer too recently";
    case Suppression::kCap: return "too many in the time window";
    case Suppression::kGroup: return "another campaign of its group won";
    case Suppression::kRecheck: return "recheck false when the delay ended";
    case Suppression::kDelayPending: return "a delay was already pending";
  }
  return "";
}

std::string Suppressions(const ReportData& d, const rules::RuleSet& rules) {
  std::string html =
      "<section class=\"card\"><h2>Why campaigns did not send</h2><p class=\"note\">Firings a "
      "campaign's condition allowed but its limits, its group or its recheck stopped.</p>";
  std::vector<std::pair<uint64_t, size_t>> reasons;
  for (size_t k = 0; k < kSuppressionCount; ++k) {
    uint64_t total = 0;
    for (const auto& per : d.suppressed) total += per[k];
    if (total > 0) reasons.emplace_back(total, k);
  }
  if (reasons.empty()) return html + "<p class=\"empty\">Nothing was suppressed.</p></section>";
  std::sort(reasons.begin(), reasons.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  // The reason and its explanation take two lines, so long ones are not cut off.
  const double label_width = 300, left = label_width + 12, right = kWidth - 90, bar = 26, row = 40, top = 8;
  const double height = top + row * static_cast<double>(reasons.size());
  const double peak = static_cast<double>(reasons.front().first);
  std::string svg = SvgOpen("suppressions", height, "Suppressions by reason");
  for (size_t i = 0; i < reasons.size(); ++i) {
    const auto [total, k] = reasons[i];
    const Suppression s = static_cast<Suppression>(k);
    const double y = top + row * static_cast<double>(i);
    const double w = std::max(1.0, (right - left) * static_cast<double>(total) / peak);
    svg += "<text class=\"label\" x=\"" + N(label_width) + "\" y=\"" + N(y + 11) + "\" text-anchor=\"end\">" +
           std::string(SuppressionName(s)) + "<tspan class=\"muted\" x=\"" + N(label_width) + "\" dy=\"14\">" +
           std::string(Why(s)) + "</tspan></text>";
    svg += "<rect class=\"bar\" x=\"" + N(left) + "\" y=\"" + N(y) + "\" width=\"" + N(w) + "\" height=\"" + N(bar) +
           "\" fill=\"" + kSuppressed + "\"><title>" + std::string(SuppressionName(s)) + ": " + Thousands(total) +
           "</title></rect><text class=\"value\" x=\"" + N(left + w + 6) + "\" y=\"" + N(y + bar - 6) + "\">" +
           Thousands(total) + "</text>";
  }
  svg += "</svg>";
  html += "<div class=\"chart\">" + svg + "</div>" + "<div class=\"scroll\"><table><thead><tr><th>campaign</th>";
  for (const auto& [total, k] : reasons)
    html += "<th>" + std::string(SuppressionName(static_cast<Suppression>(k))) + "</th>";
  html += "</tr></thead><tbody>";
  for (size_t ci = 0; ci < rules.campaigns.size(); ++ci) {
    uint64_t any = 0;
    for (const auto& [total, k] : reasons) any += d.suppressed[ci][k];
    if (any == 0) continue;
    html += "<tr><td>" + Escape(rules.campaigns[ci].id) + "</td>";
    for (const auto& [total, k] : reasons) {
      html += "<td>" + (d.suppressed[ci][k] ? Thousands(d.suppressed[ci][k]) : std::string("-")) + "</td>";
    }
    html += "</tr>";
  }
  return html + "</tbody></table></div></section>";
}

// --- the page ------------------------------------------------------------------

constexpr const char* kStyle = R"(
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f4f6f8;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","Liberation Sans",sans-serif;-webkit-text-size-adjust:100%}
main{max-width:1080px;margin:0 auto;padding:32px 24px 48px}
h1{font-size:28px;line-height:1.2;margin:0 0 6px}
h2{font-size:19px;margin:0 0 4px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.9em;background:#eef1f4;padding:1px 4px;border-radius:4px}
.sub{color:var(--muted);margin:0;word-break:break-word}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:20px 24px;margin:20px 0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.note{color:var(--muted);font-size:14px;margin:0 0 12px}
.empty{color:var(--muted);font-style:italic}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:12px;margin-top:24px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px}
.tile .k{color:var(--muted);font-size:13px;text-transform:uppercase;letter-spacing:.04em}
.tile .v{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums;line-height:1.3}
.tile .s{color:var(--muted);font-size:13px}
.chart{overflow-x:auto}
svg{display:block;width:100%;min-width:600px;height:auto;overflow:visible}
svg text{font-family:inherit;fill:#3e4c59}
svg .tick{font-size:12px;fill:#7b8794}
svg .label{font-size:14px}
svg .value{font-size:13px;font-variant-numeric:tabular-nums}
svg .muted,.muted{fill:#7b8794;color:var(--muted)}
svg .grid{stroke:#edf0f3;stroke-width:1}
svg .axis{stroke:#9aa5b1;stroke-width:1}
svg .series{fill:none;stroke-width:2.2;stroke-linejoin:round;stroke-linecap:round}
svg .hover{fill:transparent}
svg .hover:hover{fill:rgba(31,41,51,.06)}
svg .bar:hover{opacity:.85}
.legend{list-style:none;padding:0;margin:12px 0 4px;display:flex;flex-wrap:wrap;gap:6px 20px;font-size:14px}
.sw{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.scroll{overflow-x:auto;margin-top:12px}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:7px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{color:var(--muted);font-weight:600;font-size:13px}
th:first-child,td:first-child{text-align:left}
th.text,td.text{text-align:left;white-space:normal}
footer{color:var(--muted);font-size:13px;margin-top:28px}
@media (max-width:640px){main{padding:20px 12px}.card{padding:16px}}
@media print{body{background:#fff}.card,.tile{box-shadow:none;break-inside:avoid}}
)";

std::string Tile(std::string_view key, const std::string& value, const std::string& sub = "") {
  return "<div class=\"tile\"><div class=\"k\">" + std::string(key) + "</div><div class=\"v\">" + value +
         "</div><div class=\"s\">" + sub + "</div></div>";
}

}  // namespace

std::string RenderHtmlReport(const ReportData& d, const ReplaySummary& summary, const rules::RuleSet& rules,
                             const ReportContext& context) {
  uint64_t fired = 0, held_out = 0, conversions = Sum(d.conversions), held_conversions = Sum(d.conversions_held_out);
  for (const auto& [id, counters] : summary.processor.campaigns) {
    fired += counters.fired;
    held_out += counters.held_out;
  }
  std::string period;
  if (d.first_day <= d.last_day) {
    const int64_t days = d.last_day - d.first_day + 1;
    period = " · " + DayLabel(d.first_day, true) + " – " + DayLabel(d.last_day, true) + " (" + Thousands(days) +
             (days == 1 ? " day)" : " days)");
  }
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>Rapport replay report</title><style>" +
      std::string(kStyle) + "</style></head><body><main><header><h1>Replay report</h1><p class=\"sub\">Rules " +
      Escape(context.rules) + " · events " + Escape(context.events) + period + "</p></header>";
  html += "<section class=\"tiles\" id=\"totals\">";
  html += Tile("events", Thousands(summary.accepted), Thousands(summary.lines) + " lines read");
  html += Tile("rejected", Thousands(summary.rejected),
               summary.lines ? Percent(static_cast<double>(summary.rejected) / summary.lines) + " of lines" : "");
  html += Tile("customers", Thousands(d.customers), "with an event");
  html += Tile("actions", Thousands(fired), "delivered firings");
  html += Tile("held out", Thousands(held_out), "control-group firings");
  html += Tile("conversions", Thousands(conversions + held_conversions),
               Thousands(conversions) + " treated · " + Thousands(held_conversions) + " held out");
  html += "</section>";
  html += ActionsPerDay(d, summary, rules);
  html += Conversions(d, summary, rules);
  html += Ladder(d, rules);
  html += Suppressions(d, rules);
  html +=
      "<footer>Made by <code>rapport replay --report</code>. Times are event times, in UTC. The same rules and "
      "events always give the same report.</footer></main></body></html>\n";
  return html;
}

}  // namespace rapport::connectors

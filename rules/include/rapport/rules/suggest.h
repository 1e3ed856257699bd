// "Did you mean ...?": the nearest known name to a misspelt one. Shared by
// the rule loader, the run config and campaign tests.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace rapport::rules {

// Levenshtein distance: insertions, deletions and substitutions cost 1.
inline size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The candidate closest to `name`, or "" when none is within a third of its
// length (at least 2 edits), so that hints suggest only plausible typos.
template <class Range>
std::string Closest(std::string_view name, const Range& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = EditDistance(name, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

}  // namespace rapport::rules

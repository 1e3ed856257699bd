// Lint: warnings about a rule set that compiles but probably does not do
// what its author meant. Run it on a set LoadRules() accepted; it reads the
// compiled campaigns and never changes or refuses them.
//
// What it reports (codes in diagnostic.h, severity kWarning):
//   never-true  a condition or recheck that cannot be true for any customer
//               or event: constant after folding (`1 > 2`, `false`), or an
//               `and` whose comparisons of one field with constants
//               contradict each other (`customer.orders > 5 and
//               customer.orders < 3`, `x == 1 and x == 2`, `x == null and
//               x == "a"`, a count below 0, a stage the ladder does not
//               have). Only comparisons joined by `and` at the top (or in
//               every branch of an `or`) are reasoned about; anything else
//               is assumed satisfiable.
//   unlimited   an enabled campaign on an `event` trigger with no limit
//               (once_per_customer, cooldown, at_most): a customer may get it
//               on every such event. Not reported when the condition bounds
//               the count of the trigger's type (`customer.purchases == 1`,
//               `customer.visits <= 3`), which caps the firings already.
//   overlap     two enabled campaigns with the same trigger and a channel in
//               common, not in one group: a customer can get both for one
//               trigger. Not reported when their conditions exclude each
//               other by the reasoning above (`customer.purchases == 1` and
//               `customer.purchases == 3`).
// Positions: a never-true warning points at the start of the expression;
// the others at the campaign (for overlap, the later one in file order).
#pragma once

#include "rapport/rules/diagnostic.h"
#include "rapport/rules/rule_set.h"

namespace rapport::rules {

// The warnings of `rules`, sorted by file, line and column.
Diagnostics Lint(const RuleSet& rules);

}  // namespace rapport::rules

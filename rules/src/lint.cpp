// Lint: warnings about compiled rules (see lint.h for what and why).
//
// The reasoning about conditions works on the compiled tree: a subtree that
// reads no field and no clock is folded by evaluating it; comparisons of one
// field (`customer.x`, `event.y`) with folded constants inside an `and` are
// collected per field as facts (a kind, bounds, allowed and excluded values,
// presence), and a field whose facts leave no value makes the `and` false
// for every customer and event. The semantics are the evaluator's: a
// comparison is true only for a present value of the constant's kind, `!=`
// is also true for a JSON null, `x == null` only for a missing or null one.
#include "rapport/rules/lint.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "expr_internal.h"

namespace rapport::rules {
namespace {

using expr_internal::Fn;
using expr_internal::Node;
using expr_internal::Op;

// The context constant subtrees are evaluated in: they read nothing from it.
class NoContext final : public EvalContext {
 public:
  Value EventField(std::span<const std::string>) const override { return Value::Unknown(); }
  Value CustomerField(uint32_t) const override { return Value::Unknown(); }
  EventTime Now() const override { return EventTime{0}; }
  std::string_view Coupon(std::string_view, Scratch&) const override { return {}; }
};

// Whether `n` has the same value at every evaluation.
bool IsConstant(const Node& n) {
  if (n.op == Op::kEvent || n.op == Op::kCustomer) return false;
  if (n.op == Op::kCall && (n.fn == Fn::kNow || n.fn == Fn::kDaysSince || n.fn == Fn::kCoupon)) return false;
  return std::all_of(n.kids.begin(), n.kids.end(), [](const Node& k) { return IsConstant(k); });
}

bool IsField(const Node& n) { return n.op == Op::kEvent || n.op == Op::kCustomer; }

bool IsComparison(Op op) {
  return op == Op::kEq || op == Op::kNe || op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe;
}

// `a < b` as `b > a`.
Op Mirrored(Op op) {
  switch (op) {
    case Op::kLt: return Op::kGt;
    case Op::kLe: return Op::kGe;
    case Op::kGt: return Op::kLt;
    case Op::kGe: return Op::kLe;
    default: return op;
  }
}

bool Ordered(Kind kind) { return kind == Kind::kNumber || kind == Kind::kTime || kind == Kind::kDuration; }
double Ordinal(const Value& v) { return v.kind == Kind::kNumber ? v.number : static_cast<double>(v.ms); }

std::string Quoted(std::string_view s) { return "`" + std::string(s) + "`"; }

// "`a`", "`a` and `b`", "`a`, `b` and `c`"
std::string Listed(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += Quoted(items[i]);
  }
  return out;
}

// What the conjuncts of an `and` say about one field.
struct FieldFacts {
  std::string name;                // customer.orders
  std::vector<std::string> atoms;  // the comparisons, as written
  bool must_be_present = false;
  bool must_be_absent = false;  // x == null
  bool never = false;           // compared with a constant that is always missing
  std::optional<Kind> kind;     // the kind every positive comparison needs
  bool kind_conflict = false;
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_strict = false, hi_strict = false;
  std::optional<std::vector<Value>> allowed;   // == and in: one of these
  std::vector<Value> excluded;                 // != and not in: none of these
  bool whole = false;                          // a count: 0, 1, 2, ...
  const std::vector<Stage>* stages = nullptr;  // customer.stage: one of these names
};

class Analyzer {
 public:
  explicit Analyzer(const RuleSet& rules) : rules_(rules) {}

  // Why `expr` can never be true, or nullopt when it may be.
  std::optional<std::string> NeverTrue(const Expr& expr) {
    std::string_view source;
    const Node* root = expr_internal::RootOf(expr, &source);
    if (root == nullptr) return std::nullopt;
    return Why(*root, source);
  }

  // Whether two conditions can never hold together (null: always true).
  bool Exclusive(const Expr* a, const Expr* b) {
    std::vector<Part> parts;
    for (const Expr* e : {a, b}) {
      if (e == nullptr) continue;
      std::string_view source;
      const Node* root = expr_internal::RootOf(*e, &source);
      if (root == nullptr) continue;
      std::vector<const Node*> conjuncts;
      Conjuncts(*root, &conjuncts);
      for (const Node* c : conjuncts) parts.push_back({c, source});
    }
    return Contradiction(parts).has_value();
  }

  // Whether the condition caps the count of `type` (`customer.purchases == 1`,
  // `<= 3`, `in [1, 2]`): then the campaign fires a bounded number of times.
  bool BoundsCount(const Expr* condition, uint32_t type) {
    if (condition == nullptr) return false;
    const Node* root = expr_internal::RootOf(*condition);
    if (root == nullptr) return false;
    std::vector<const Node*> conjuncts;
    Conjuncts(*root, &conjuncts);
    const uint32_t count_field = PackCustomerField(CustomerFieldKind::kCount, type);
    auto is_count = [count_field](const Node& n) { return n.op == Op::kCustomer && n.field == count_field; };
    for (const Node* c : conjuncts) {
      if (c->op == Op::kIn && is_count(c->kids[0])) return true;
      if (!IsComparison(c->op) || c->kids.size() != 2) continue;
      Op op = c->op;
      if (is_count(c->kids[1]) && IsConstant(c->kids[0]))
        op = Mirrored(op);
      else if (!(is_count(c->kids[0]) && IsConstant(c->kids[1])))
        continue;
      if (op == Op::kEq || op == Op::kLt || op == Op::kLe) return true;
    }
    return false;
  }

  std::string CustomerFieldName(uint32_t id) const {
    const uint32_t index = FieldIndex(id);
    switch (FieldKind(id)) {
      case CustomerFieldKind::kId: return "id";
      case CustomerFieldKind::kStage: return "stage";
      case CustomerFieldKind::kTotalSpent: return "total_spent";
      case CustomerFieldKind::kFirstSeen: return "first_seen";
      case CustomerFieldKind::kLastSeen: return "last_seen";
      case CustomerFieldKind::kCount:
        return index < rules_.event_types.size() ? PluralOf(rules_.event_types[index]) : "?";
      case CustomerFieldKind::kLastOf:
        return index < rules_.event_types.size() ? "last_" + rules_.event_types[index] : "?";
      case CustomerFieldKind::kAggregate: return index < rules_.aggregates.size() ? rules_.aggregates[index].name : "?";
    }
    return "?";
  }

 private:
  struct Part {
    const Node* node;
    std::string_view source;
  };

  static std::string Text(const Node& n, std::string_view source) {
    if (n.end > n.pos && n.end <= source.size()) return std::string(source.substr(n.pos, n.end - n.pos));
    return std::string(source);
  }

  // The operands of an `and` chain, however it is parenthesized.
  static void Conjuncts(const Node& n, std::vector<const Node*>* out) {
    if (n.op != Op::kAnd) {
      out->push_back(&n);
      return;
    }
    for (const Node& k : n.kids) Conjuncts(k, out);
  }
  static void Disjuncts(const Node& n, std::vector<const Node*>* out) {
    if (n.op != Op::kOr) {
      out->push_back(&n);
      return;
    }
    for (const Node& k : n.kids) Disjuncts(k, out);
  }

  Value Fold(const Node& n) { return expr_internal::Eval(n, NoContext(), scratch_); }

  std::optional<std::string> Why(const Node& n, std::string_view source) {
    if (IsConstant(n)) {
      const Value v = Fold(n);
      if (v.IsTrue()) return std::nullopt;
      return Quoted(Text(n, source)) +
             (v.kind == Kind::kBool ? " is always false" : " is never true (it computes with a missing value)");
    }
    if (n.op == Op::kOr) {
      std::vector<const Node*> branches;
      Disjuncts(n, &branches);
      std::string all;
      for (const Node* b : branches) {
        auto why = Why(*b, source);
        if (!why) return std::nullopt;
        all += (all.empty() ? "" : "; ") + *why;
      }
      return "no side of its `or` can be true: " + all;
    }
    std::vector<const Node*> conjuncts;
    Conjuncts(n, &conjuncts);
    if (conjuncts.size() > 1) {
      for (const Node* c : conjuncts) {
        if (auto why = Why(*c, source)) return why;
      }
    }
    std::vector<Part> parts;
    for (const Node* c : conjuncts) parts.push_back({c, source});
    return Contradiction(parts);
  }

  // Why the parts cannot all be true at once, from what they say about
  // single fields; nullopt when no field is over-constrained.
  std::optional<std::string> Contradiction(const std::vector<Part>& parts) {
    std::map<std::string, FieldFacts> facts;
    std::vector<std::string> order;  // fields in the order they appear
    for (const Part& p : parts) AddAtom(*p.node, p.source, &facts, &order);
    for (const std::string& key : order) {
      const FieldFacts& f = facts[key];
      if (!Impossible(f, true)) continue;
      std::string why = f.atoms.size() == 1   ? Quoted(f.atoms[0]) + " is never true"
                        : f.atoms.size() == 2 ? Listed(f.atoms) + " cannot both be true"
                                              : Listed(f.atoms) + " cannot all be true";
      if (f.never) {
        why += " (it compares with a value that is always missing)";
      } else if (!Impossible(f, false)) {
        if (f.whole) why += " (`" + f.name + "` is a whole number, 0 or more)";
        if (f.stages != nullptr) {
          std::string names;
          for (const Stage& s : *f.stages) names += (names.empty() ? "" : ", ") + s.name;
          why += " (the ladder's stages are " + names + ")";
        }
      }
      return why;
    }
    return std::nullopt;
  }

  // Adds what conjunct `c` says about a field, if it is a comparison of one
  // field with constants; other conjuncts say nothing here.
  void AddAtom(const Node& c, std::string_view source, std::map<std::string, FieldFacts>* facts,
               std::vector<std::string>* order) {
    const Node* field = nullptr;
    Op op = c.op;
    std::vector<const Node*> constants;
    if (IsComparison(c.op) && c.kids.size() == 2) {
      if (IsField(c.kids[0]) && IsConstant(c.kids[1])) {
        field = &c.kids[0];
        constants.push_back(&c.kids[1]);
      } else if (IsField(c.kids[1]) && IsConstant(c.kids[0])) {
        field = &c.kids[1];
        constants.push_back(&c.kids[0]);
        op = Mirrored(op);
      }
    } else if ((c.op == Op::kIn || c.op == Op::kNotIn) && !c.kids.empty() && IsField(c.kids[0])) {
      field = &c.kids[0];
      for (size_t i = 1; i < c.kids.size(); ++i) {
        if (!IsConstant(c.kids[i])) return;
        constants.push_back(&c.kids[i]);
      }
    } else if ((c.op == Op::kIsNull || c.op == Op::kIsNotNull) && IsField(c.kids[0])) {
      field = &c.kids[0];
    } else if (c.op == Op::kCall && c.fn == Fn::kExists && c.kids.size() == 1 && IsField(c.kids[0])) {
      field = &c.kids[0];
      op = Op::kIsNotNull;
    } else if (IsField(c)) {
      field = &c;  // a bare field as a condition: true only when it is the boolean true
      op = Op::kEq;
    } else if (c.op == Op::kNot && IsField(c.kids[0])) {
      field = &c.kids[0];
      op = Op::kEq;
    }
    if (field == nullptr) return;

    std::string key, name;
    if (field->op == Op::kCustomer) {
      key = "c" + std::to_string(field->field);
      name = "customer." + CustomerFieldName(field->field);
    } else {
      key = "e";
      name = "event";
      for (const std::string& part : field->path) {
        key += '\x1f' + part;
        name += "." + part;
      }
    }
    auto [it, inserted] = facts->try_emplace(key);
    FieldFacts& f = it->second;
    if (inserted) {
      order->push_back(key);
      f.name = name;
      if (field->op == Op::kCustomer) {
        const CustomerFieldKind kind = FieldKind(field->field);
        const uint32_t index = FieldIndex(field->field);
        f.whole = kind == CustomerFieldKind::kCount ||
                  (kind == CustomerFieldKind::kAggregate && index < rules_.aggregates.size() &&
                   rules_.aggregates[index].function == AggregateFunction::kCount);
        if (kind == CustomerFieldKind::kStage) f.stages = &rules_.ladder;
      }
    }
    f.atoms.push_back(Text(c, source));

    if (op == Op::kIsNull) {
      f.must_be_absent = true;
      return;
    }
    if (op == Op::kIsNotNull) {
      f.must_be_present = true;
      return;
    }
    std::vector<Value> values;
    if (c.op == Op::kNot && field == &c.kids[0]) {
      values.push_back(Value::Bool(false));
    } else if (field == &c) {
      values.push_back(Value::Bool(true));
    } else {
      for (const Node* k : constants) {
        Value v = Fold(*k);
        if (v.kind == Kind::kUnknown) {
          // Comparing with a missing value is never true; in a list, such an
          // item just never matches.
          if (c.op != Op::kIn && c.op != Op::kNotIn) f.never = true;
          continue;
        }
        if (v.kind == Kind::kNull) continue;
        values.push_back(v);
      }
      if (f.never) return;
    }
    auto require = [&f](Kind kind) {
      if (f.kind && *f.kind != kind) f.kind_conflict = true;
      f.kind = kind;
    };
    auto intersect = [&f](const std::vector<Value>& with) {
      if (!f.allowed) {
        f.allowed = with;
        return;
      }
      std::vector<Value> kept;
      for (const Value& a : *f.allowed) {
        if (std::any_of(with.begin(), with.end(), [&a](const Value& b) { return Equals(a, b).IsTrue(); })) {
          kept.push_back(a);
        }
      }
      f.allowed = std::move(kept);
    };
    switch (op) {
      case Op::kNe:
        if (!values.empty()) f.excluded.push_back(values[0]);
        return;
      case Op::kNotIn:
        f.must_be_present = true;
        f.excluded.insert(f.excluded.end(), values.begin(), values.end());
        return;
      case Op::kIn: {
        f.must_be_present = true;
        const bool one_kind = !values.empty() && std::all_of(values.begin(), values.end(), [&values](const Value& v) {
          return v.kind == values[0].kind;
        });
        if (one_kind) require(values[0].kind);
        intersect(values);
        return;
      }
      case Op::kEq:
        f.must_be_present = true;
        if (values.empty()) return;
        require(values[0].kind);
        intersect(values);
        return;
      default: {  // < <= > >=
        f.must_be_present = true;
        if (values.empty()) return;
        const Value& v = values[0];
        require(v.kind);
        if (!Ordered(v.kind)) return;
        const double x = Ordinal(v);
        const bool strict = op == Op::kLt || op == Op::kGt;
        if (op == Op::kGt || op == Op::kGe) {
          if (x > f.lo || (x == f.lo && strict)) {
            f.lo = x;
            f.lo_strict = strict;
          }
        } else if (x < f.hi || (x == f.hi && strict)) {
          f.hi = x;
          f.hi_strict = strict;
        }
        return;
      }
    }
  }

  // Whether no value satisfies the facts; `domain` also applies what the
  // field can hold (whole counts, the ladder's stage names).
  static bool Impossible(const FieldFacts& f, bool domain) {
    if (f.never || f.kind_conflict || (f.must_be_absent && f.must_be_present)) return true;
    const bool whole = domain && f.whole;
    const bool ordered = f.kind && Ordered(*f.kind);
    auto excluded = [&f](const Value& v) {
      return std::any_of(f.excluded.begin(), f.excluded.end(), [&v](const Value& e) { return Equals(v, e).IsTrue(); });
    };
    if (f.allowed) {
      for (const Value& v : *f.allowed) {
        if (f.kind && v.kind != *f.kind) continue;
        if (excluded(v)) continue;
        if (Ordered(v.kind)) {
          const double x = Ordinal(v);
          if (x < f.lo || (x == f.lo && f.lo_strict) || x > f.hi || (x == f.hi && f.hi_strict)) continue;
        }
        if (whole && (v.kind != Kind::kNumber || v.number < 0 || v.number != std::floor(v.number))) continue;
        if (domain && f.stages != nullptr) {
          if (v.kind != Kind::kString) continue;
          if (std::none_of(f.stages->begin(), f.stages->end(), [&v](const Stage& s) { return s.name == v.string; })) {
            continue;
          }
        }
        return false;  // a value that satisfies everything
      }
      return true;
    }
    if (!ordered) return false;
    double lo = f.lo, hi = f.hi;
    bool lo_strict = f.lo_strict, hi_strict = f.hi_strict;
    if (whole) {
      lo = std::max(lo_strict ? std::floor(lo) + 1 : std::ceil(lo), 0.0);
      hi = hi_strict ? std::ceil(hi) - 1 : std::floor(hi);
      lo_strict = hi_strict = false;
    }
    if (lo > hi) return true;
    if (lo == hi) {
      if (lo_strict || hi_strict) return true;
      Value point = Value::Of(*f.kind);
      if (*f.kind == Kind::kNumber) {
        point.number = lo;
      } else {
        point.ms = static_cast<int64_t>(lo);
      }
      return excluded(point);
    }
    return false;
  }

  const RuleSet& rules_;
  Scratch scratch_;  // strings of folded constants; kept while the facts point into it
};

std::string TriggerText(const RuleSet& rules, const Trigger& t) {
  switch (t.kind) {
    case TriggerKind::kEvent: return "every `" + rules.event_types[t.event_type] + "` event";
    case TriggerKind::kInactivity:
      return FormatDuration(t.inactivity) + " without a `" + rules.event_types[t.event_type] + "` event";
    case TriggerKind::kStage: return "entering stage `" + rules.ladder[t.stage].name + "`";
  }
  return "?";
}

bool SameTrigger(const Trigger& a, const Trigger& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case TriggerKind::kEvent: return a.event_type == b.event_type;
    case TriggerKind::kInactivity: return a.event_type == b.event_type && a.inactivity == b.inactivity;
    case TriggerKind::kStage: return a.stage == b.stage;
  }
  return false;
}

// A channel both campaigns send on, or "".
std::string SharedChannel(const Campaign& a, const Campaign& b) {
  for (const Action& x : a.actions) {
    for (const Action& y : b.actions) {
      if (x.channel == y.channel) return x.channel;
    }
  }
  return "";
}

bool Before(const SourceLocation& a, const SourceLocation& b) {
  return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
}

}  // namespace

Diagnostics Lint(const RuleSet& rules) {
  Analyzer analyzer(rules);
  Diagnostics out;
  auto warn = [&out](Code code, const SourceLocation& at, std::string message, std::string hint) {
    Diagnostic d;
    d.severity = Severity::kWarning;
    d.code = code;
    d.file = at.file;
    d.line = at.line;
    d.column = at.column;
    d.message = std::move(message);
    d.hint = std::move(hint);
    out.push_back(std::move(d));
  };

  std::vector<bool> never_fires(rules.campaigns.size(), false);
  for (size_t i = 0; i < rules.campaigns.size(); ++i) {
    const Campaign& c = rules.campaigns[i];
    if (c.condition) {
      if (auto why = analyzer.NeverTrue(*c.condition)) {
        never_fires[i] = true;
        warn(Code::kNeverTrue, c.condition_location.line > 0 ? c.condition_location : c.location,
             "the condition of campaign `" + c.id + "` can never be true: " + *why, "the campaign never fires");
      }
    }
    if (c.recheck) {
      if (auto why = analyzer.NeverTrue(*c.recheck)) {
        never_fires[i] = true;
        warn(Code::kNeverTrue, c.recheck_location.line > 0 ? c.recheck_location : c.location,
             "the recheck of campaign `" + c.id + "` can never be true: " + *why,
             "the campaign never sends: every delay ends as recheck_failed");
      }
    }
    if (!c.enabled || never_fires[i] || c.trigger.kind != TriggerKind::kEvent || c.limits.any()) continue;
    if (analyzer.BoundsCount(c.condition.get(), c.trigger.event_type)) continue;
    const std::string& type = rules.event_types[c.trigger.event_type];
    warn(Code::kUnlimited, c.location,
         "campaign `" + c.id + "` has no limit: a customer may get it on every `" + type + "` event",
         "add `limits:` (once_per_customer, cooldown or at_most), or a condition that caps it such as `customer." +
             PluralOf(type) + " == 1`");
  }

  for (size_t i = 0; i < rules.campaigns.size(); ++i) {
    const Campaign& a = rules.campaigns[i];
    if (!a.enabled || never_fires[i]) continue;
    for (size_t j = i + 1; j < rules.campaigns.size(); ++j) {
      const Campaign& b = rules.campaigns[j];
      if (!b.enabled || never_fires[j] || !SameTrigger(a.trigger, b.trigger)) continue;
      if (!a.group.empty() && a.group == b.group) continue;
      const std::string channel = SharedChannel(a, b);
      if (channel.empty()) continue;
      if (analyzer.Exclusive(a.condition.get(), b.condition.get())) continue;
      const bool a_first = Before(a.location, b.location);
      const Campaign& first = a_first ? a : b;
      const Campaign& second = a_first ? b : a;
      warn(Code::kOverlap, second.location,
           "campaigns `" + first.id + "` and `" + second.id + "` both send on `" + channel + "` on " +
               TriggerText(rules, a.trigger) + " and are not in one group: a customer can get both at once",
           "put them in one `group` so that only the higher `priority` sends, or give them conditions that "
           "exclude each other");
    }
  }

  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& x, const Diagnostic& y) {
    return std::tie(x.file, x.line, x.column) < std::tie(y.file, y.line, y.column);
  });
  return out;
}

}  // namespace rapport::rules

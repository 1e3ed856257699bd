// LoadRules: YAML rule files -> RuleSet.
//
// Three passes, so that every file sees every name whatever the file order:
// 1. parse each file and collect the names it declares (event types,
//    aggregates, the ladder's stages);
// 2. build the table of `customer.*` fields from those names;
// 3. compile the aggregates, then the ladder's stages (which may read the
//    aggregates), then the campaigns, collecting every error with its
//    file:line:col.
// yaml-cpp throws on malformed YAML; those exceptions stop here.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "rapport/rules/rule_set.h"
#include "rapport/rules/json_number.h"
#include "rapport/rules/suggest.h"

namespace rapport::rules {
namespace {

constexpr const char* kBuiltinEventTypes[] = {"purchase", "referral", "visit"};

struct DefaultStage {
  const char* name;
  const char* condition;
};
constexpr DefaultStage kDefaultLadder[] = {
    {"prospect", nullptr},
    {"customer", "customer.purchases >= 1"},
    {"client", "customer.purchases >= 2"},
    {"supporter", "customer.purchases >= 3"},
    {"advocate", "customer.referrals >= 1"},
    {"partner", "customer.referrals >= 3 and customer.purchases >= 5"},
};

// One parsed file: its text (to map expression offsets to columns) and root.
struct File {
  std::string path;
  std::string text;
  std::vector<size_t> line_starts;
  YAML::Node root;
  bool ok = false;
};

class Loader {
 public:
  LoadResult Load(std::vector<File> files);

 private:
  // --- diagnostics ---
  void Error(const File& f, const YAML::Mark& mark, Code code, std::string message, std::string hint = "") {
    Report(Severity::kError, f, mark.line + 1, mark.column + 1, code, std::move(message), std::move(hint));
  }
  void Report(Severity severity, const File& f, int line, int column, Code code, std::string message,
              std::string hint) {
    Diagnostic d;
    d.severity = severity;
    d.code = code;
    d.file = f.path;
    d.line = line;
    d.column = column;
    d.message = std::move(message);
    d.hint = std::move(hint);
    out_.diagnostics.push_back(std::move(d));
  }

  // --- YAML helpers ---
  bool ExpectMap(const File& f, const YAML::Node& n, std::string_view what);
  bool ExpectScalar(const File& f, const YAML::Node& n, std::string_view what);
  bool ExpectList(const File& f, const YAML::Node& n, std::string_view what);
  // Reports keys of map `n` that are not in `allowed`, and duplicate keys.
  void CheckKeys(const File& f, const YAML::Node& n, std::initializer_list<std::string_view> allowed,
                 std::string_view where);
  std::optional<std::string> String(const File& f, const YAML::Node& n, std::string_view what);
  std::optional<bool> Bool(const File& f, const YAML::Node& n, std::string_view what);
  std::optional<int64_t> Integer(const File& f, const YAML::Node& n, std::string_view what);
  std::optional<Duration> DurationOf(const File& f, const YAML::Node& n, std::string_view what);
  std::optional<uint32_t> EventTypeOf(const File& f, const YAML::Node& n);

  // --- expressions ---
  // Maps offset `offset` (0-based) inside scalar node `n` to a line and column.
  void Locate(const File& f, const YAML::Node& n, size_t offset, int* line, int* column) const;
  std::unique_ptr<Expr> CompileIn(const File& f, const YAML::Node& n, std::string_view text, size_t text_offset,
                                  const Scope& scope, Type expected);
  bool CompilePayload(const File& f, const YAML::Node& n, const Scope& scope, PayloadNode* out);

  // --- passes ---
  void Declare(File& f);
  void BuildFieldTable();
  void CompileLadder();
  void CompileAggregates();
  void CompileCampaign(const File& f, const YAML::Node& n);
  void CompileGoal(const File& f, const YAML::Node& n, Campaign* c);

  friend class FieldScope;
  LoadResult out_;
  RuleSet* rules_ = nullptr;
  std::vector<File> files_;
  std::set<std::string> event_types_;
  // Where each declared event type was first written, for errors.
  std::map<std::string, std::pair<const File*, YAML::Mark>> event_type_marks_;
  struct PendingAggregate {
    const File* file;
    std::string name;
    YAML::Node node;
  };
  std::vector<PendingAggregate> pending_aggregates_;
  const File* ladder_file_ = nullptr;
  YAML::Node ladder_node_;
  std::map<std::string, CustomerFieldRef, std::less<>> fields_;
  std::map<std::string, SourceLocation> campaign_locations_;
};

class FieldScope : public Scope {
 public:
  FieldScope(const Loader& loader, bool event_available, std::string event_why, bool coupon, bool stage)
      : loader_(loader), event_available_(event_available), event_why_(std::move(event_why)),
        coupon_(coupon), stage_(stage) {}

  std::optional<CustomerFieldRef> ResolveCustomer(std::string_view name, std::string* hint) const override {
    auto it = loader_.fields_.find(name);
    if (it != loader_.fields_.end()) {
      if (!stage_ && FieldKind(it->second.id) == CustomerFieldKind::kStage) {
        *hint = "a ladder stage cannot depend on the stage itself";
        return std::nullopt;
      }
      return it->second;
    }
    std::vector<std::string> names;
    for (const auto& [n, ref] : loader_.fields_) names.push_back(n);
    std::string best = Closest(name, names);
    if (!best.empty()) {
      *hint = "did you mean `customer." + best + "`?";
    } else if (name.size() > 5 && name.substr(0, 5) == "last_") {
      *hint = "event type `" + std::string(name.substr(5)) + "` is not declared; list it under `event_types:`";
    } else if (name.size() > 1 && name.back() == 's') {
      *hint = "if `" + std::string(name) + "` counts an event type, declare that type under `event_types:`";
    }
    return std::nullopt;
  }
  bool EventAvailable(std::string* why) const override {
    if (!event_available_) *why = event_why_;
    return event_available_;
  }
  bool CouponAvailable() const override { return coupon_; }

 private:
  const Loader& loader_;
  bool event_available_;
  std::string event_why_;
  bool coupon_;
  bool stage_;
};

bool Loader::ExpectMap(const File& f, const YAML::Node& n, std::string_view what) {
  if (n.IsMap()) return true;
  Error(f, n.Mark(), Code::kWrongShape, std::string(what) + " must be a map of keys to values");
  return false;
}

bool Loader::ExpectScalar(const File& f, const YAML::Node& n, std::string_view what) {
  if (n.IsScalar()) return true;
  Error(f, n.Mark(), Code::kWrongShape, std::string(what) + " must be a single value, not a " +
                                            (n.IsMap() ? "map" : n.IsSequence() ? "list" : "null"));
  return false;
}

bool Loader::ExpectList(const File& f, const YAML::Node& n, std::string_view what) {
  if (n.IsSequence()) return true;
  Error(f, n.Mark(), Code::kWrongShape, std::string(what) + " must be a list");
  return false;
}

void Loader::CheckKeys(const File& f, const YAML::Node& n, std::initializer_list<std::string_view> allowed,
                       std::string_view where) {
  std::set<std::string> seen;
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) {
      Error(f, kv.first.Mark(), Code::kWrongShape, "keys must be plain names");
      continue;
    }
    std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      Error(f, kv.first.Mark(), Code::kDuplicate, "key `" + key + "` appears twice in " + std::string(where));
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string best = Closest(key, allowed);
      std::string hint = best.empty() ? "" : "did you mean `" + best + "`?";
      if (hint.empty()) {
        hint = "allowed keys:";
        for (auto a : allowed) hint += " " + std::string(a);
      }
      Error(f, kv.first.Mark(), Code::kUnknownKey, "unknown key `" + key + "` in " + std::string(where), hint);
    }
  }
}

std::optional<std::string> Loader::String(const File& f, const YAML::Node& n, std::string_view what) {
  if (!ExpectScalar(f, n, what)) return std::nullopt;
  return n.Scalar();
}

std::optional<bool> Loader::Bool(const File& f, const YAML::Node& n, std::string_view what) {
  if (!ExpectScalar(f, n, what)) return std::nullopt;
  const std::string& s = n.Scalar();
  if (s == "true") return true;
  if (s == "false") return false;
  Error(f, n.Mark(), Code::kWrongShape, std::string(what) + " must be true or false, not `" + s + "`");
  return std::nullopt;
}

std::optional<int64_t> Loader::Integer(const File& f, const YAML::Node& n, std::string_view what) {
  if (!ExpectScalar(f, n, what)) return std::nullopt;
  const std::string& s = n.Scalar();
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0) {
    Error(f, n.Mark(), Code::kWrongShape, std::string(what) + " must be a whole number, not `" + s + "`");
    return std::nullopt;
  }
  return v;
}

std::optional<Duration> Loader::DurationOf(const File& f, const YAML::Node& n, std::string_view what) {
  if (!ExpectScalar(f, n, what)) return std::nullopt;
  const std::string& s = n.Scalar();
  auto d = ParseDuration(s);
  if (!d) {
    bool digits = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    Error(f, n.Mark(), Code::kBadDuration, std::string(what) + " `" + s + "` is not a duration",
          digits ? "a duration needs a unit: " + s + "d, " + s + "h, " + s + "m" : "durations look like 30d, 12h, 90m, 500ms");
    return std::nullopt;
  }
  if (d->ms <= 0) {
    Error(f, n.Mark(), Code::kBadValue, std::string(what) + " must be longer than zero");
    return std::nullopt;
  }
  return d;
}

std::optional<uint32_t> Loader::EventTypeOf(const File& f, const YAML::Node& n) {
  auto s = String(f, n, "an event type");
  if (!s) return std::nullopt;
  auto idx = rules_->FindEventType(*s);
  if (idx) return idx;
  std::string best = Closest(*s, rules_->event_types);
  Error(f, n.Mark(), Code::kUnknownEventType, "unknown event type `" + *s + "`",
        best.empty() ? "declare it under `event_types:`"
                     : "did you mean `" + best + "`? New types are declared under `event_types:`");
  return std::nullopt;
}

// Finds where the character at `offset` of a scalar's value was written,
// walking the value and the source text from `start` side by side. YAML only
// adds or removes blanks between the source and the value: it strips
// indentation, and turns line breaks into spaces (plain and folded `>`
// scalars), drops them (a folded break before an empty line) or keeps them
// (literal `|`). So every other character of the value is the next such
// character of the source; blanks are matched when they line up and skipped
// otherwise. Returns false when the two disagree (an escape in a quoted
// scalar), and the caller falls back to arithmetic on the scalar's start.
// An offset past the end points just after the value's last character.
bool FindInSource(const std::string& text, size_t start, const std::string& value, size_t offset, size_t* pos) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  size_t p = start;
  size_t after_last = start;  // just after the last non-blank character matched
  for (size_t k = 0; k < value.size() && k <= offset; ++k) {
    const char c = value[k];
    size_t at = p;
    if (blank(c)) {
      if (p < text.size() && text[p] == c) {
        ++p;
      } else {
        // A line break the value shows as a space, or one it adds or drops:
        // move past the rest of the source line if it is blank.
        size_t q = p;
        while (q < text.size() && blank(text[q]) && text[q] != '\n') ++q;
        if (q < text.size() && text[q] == '\n') p = q + 1;
      }
    } else {
      while (p < text.size() && text[p] != c) {
        if (!blank(text[p])) return false;
        ++p;
      }
      if (p >= text.size()) return false;
      at = p++;
      after_last = p;
    }
    if (k == offset) {
      *pos = at;
      return true;
    }
  }
  *pos = after_last;
  return true;
}

void Loader::Locate(const File& f, const YAML::Node& n, size_t offset, int* line, int* column) const {
  const YAML::Mark mark = n.Mark();
  *line = mark.line + 1;
  *column = mark.column + 1;
  if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= f.text.size()) return;
  const size_t at = static_cast<size_t>(mark.pos);
  const char style = f.text[at];
  size_t start = at;
  if (style == '"' || style == '\'') {
    start = at + 1;
  } else if (style == '|' || style == '>') {
    // A block scalar's content starts on the line after its header.
    start = f.text.find('\n', at);
    start = start == std::string::npos ? f.text.size() : start + 1;
  }
  size_t pos = 0;
  if (FindInSource(f.text, start, n.Scalar(), offset, &pos)) {
    const auto next_line = std::upper_bound(f.line_starts.begin(), f.line_starts.end(), pos);
    const size_t l = static_cast<size_t>(next_line - f.line_starts.begin()) - 1;
    *line = static_cast<int>(l) + 1;
    *column = static_cast<int>(pos - f.line_starts[l]) + 1;
    return;
  }
  if (style == '|' || style == '>') return;  // the header, at least
  *column += static_cast<int>(offset) + (start > at ? 1 : 0);
}

std::unique_ptr<Expr> Loader::CompileIn(const File& f, const YAML::Node& n, std::string_view text,
                                        size_t text_offset, const Scope& scope, Type expected) {
  CompileOutput compiled = Compile(text, scope, expected);
  for (Diagnostic& d : compiled.diagnostics) {
    int line, column;
    Locate(f, n, text_offset + static_cast<size_t>(std::max(d.column, 1) - 1), &line, &column);
    d.file = f.path;
    d.line = line;
    d.column = column;
    out_.diagnostics.push_back(std::move(d));
  }
  return std::move(compiled.expr);
}

bool Loader::CompilePayload(const File& f, const YAML::Node& n, const Scope& scope, PayloadNode* out) {
  if (n.IsMap()) {
    out->kind = PayloadNode::Kind::kObject;
    std::set<std::string> seen;
    for (const auto& kv : n) {
      std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) {
        Error(f, kv.first.Mark(), Code::kDuplicate, "payload key `" + key + "` appears twice");
      }
      PayloadNode child;
      CompilePayload(f, kv.second, scope, &child);
      out->members.emplace_back(std::move(key), std::move(child));
    }
    return true;
  }
  if (n.IsSequence()) {
    out->kind = PayloadNode::Kind::kArray;
    for (const auto& item : n) {
      PayloadNode child;
      CompilePayload(f, item, scope, &child);
      out->items.push_back(std::move(child));
    }
    return true;
  }
  if (n.IsNull()) {
    out->kind = PayloadNode::Kind::kLiteral;
    out->literal_json = "null";
    return true;
  }
  const std::string& s = n.Scalar();
  // yaml-cpp tags plain scalars "?", quoted and block ones "!": only a plain
  // scalar can be a boolean or a number.
  const bool plain = n.Tag() == "?";
  if (plain && (s == "true" || s == "false")) {
    out->kind = PayloadNode::Kind::kLiteral;
    out->literal_json = s;
    return true;
  }
  if (plain && IsJsonNumber(s)) {
    out->kind = PayloadNode::Kind::kLiteral;
    out->literal_json = s;
    return true;
  }
  out->kind = PayloadNode::Kind::kTemplate;
  size_t pos = 0;
  std::string text;
  while (true) {
    size_t open = s.find("{{", pos);
    if (open == std::string::npos) {
      text.append(s, pos);
      break;
    }
    size_t close = s.find("}}", open + 2);
    if (close == std::string::npos) {
      int line, column;
      Locate(f, n, open, &line, &column);
      Report(Severity::kError, f, line, column, Code::kSyntax, "`{{` is never closed with `}}`", "");
      return false;
    }
    text.append(s, pos, open - pos);
    out->text.push_back(std::move(text));
    text.clear();
    std::string_view inner(s.data() + open + 2, close - open - 2);
    auto expr = CompileIn(f, n, inner, open + 2, scope, Type::kAny);
    out->exprs.push_back(std::move(expr));
    pos = close + 2;
  }
  out->text.push_back(std::move(text));
  out->single_expression = out->exprs.size() == 1 && out->text[0].empty() && out->text[1].empty();
  if (out->exprs.empty()) {
    out->kind = PayloadNode::Kind::kLiteral;
    out->literal_json.clear();
    std::string escaped;
    escaped.push_back('"');
    for (char c : out->text[0]) {
      if (c == '"' || c == '\\') {
        escaped.push_back('\\');
        escaped.push_back(c);
      } else if (static_cast<unsigned char>(c) < 0x20) {
        static constexpr char kHex[] = "0123456789abcdef";
        escaped += "\\u00";
        escaped.push_back(kHex[(c >> 4) & 0xF]);
        escaped.push_back(kHex[c & 0xF]);
      } else {
        escaped.push_back(c);
      }
    }
    escaped.push_back('"');
    out->literal_json = std::move(escaped);
    out->text.clear();
  }
  return true;
}

void Loader::Declare(File& f) {
  const YAML::Node& root = f.root;
  if (root.IsNull()) return;  // an empty file declares nothing
  if (!ExpectMap(f, root, "a rule file")) return;
  CheckKeys(f, root, {"version", "event_types", "aggregates", "ladder", "campaigns"}, "a rule file");
  if (const YAML::Node v = root["version"]) {
    if (auto n = Integer(f, v, "version"); n && *n != 1) {
      Error(f, v.Mark(), Code::kBadValue, "this Rapport reads rule files of version 1, not " + std::to_string(*n));
    }
  }
  if (const YAML::Node types = root["event_types"]) {
    if (ExpectList(f, types, "event_types")) {
      for (const auto& t : types) {
        if (auto s = String(f, t, "an event type")) {
          if (s->empty()) {
            Error(f, t.Mark(), Code::kBadValue, "an event type cannot be empty");
          } else {
            event_types_.insert(*s);
            event_type_marks_.emplace(*s, std::make_pair(&f, t.Mark()));
          }
        }
      }
    }
  }
  if (const YAML::Node aggs = root["aggregates"]) {
    if (ExpectMap(f, aggs, "aggregates")) {
      for (const auto& kv : aggs) {
        pending_aggregates_.push_back({&f, kv.first.Scalar(), kv.second});
      }
    }
  }
  if (const YAML::Node ladder = root["ladder"]) {
    if (ladder_file_ != nullptr) {
      Error(f, ladder.Mark(), Code::kDuplicate, "the ladder is already defined in " + ladder_file_->path,
            "define the ladder in one file only");
    } else {
      ladder_file_ = &f;
      ladder_node_ = ladder;
    }
  }
}

void Loader::BuildFieldTable() {
  rules_->event_types.assign(event_types_.begin(), event_types_.end());
  // A type whose fields would clash with another field (`seen` and the
  // built-in `last_seen`) is an error: otherwise one of the two silently
  // reads the other's value. `owners` says which type defined each field
  // (none for the built-in ones).
  std::map<std::string, std::optional<uint32_t>> owners;
  auto declared_at = [this](uint32_t type) { return event_type_marks_.find(rules_->event_types[type]); };
  auto add = [&](const std::string& name, CustomerFieldKind kind, std::optional<uint32_t> type, Type value_type) {
    if (fields_.emplace(name, CustomerFieldRef{PackCustomerField(kind, type.value_or(0)), value_type}).second) {
      owners.emplace(name, type);
      return;
    }
    const std::optional<uint32_t> other = owners[name];
    const std::string field = "`customer." + name + "`";
    if (!other) {
      auto at = declared_at(*type);
      if (at == event_type_marks_.end()) return;  // built-in types do not clash with built-in fields
      Error(*at->second.first, at->second.second, Code::kDuplicate,
            "event type `" + rules_->event_types[*type] + "` would define " + field +
                ", which is a built-in customer field",
            "give the event type another name");
      return;
    }
    // Two types: report at the declared one (both cannot be built in).
    auto at = declared_at(*type);
    if (at == event_type_marks_.end()) at = declared_at(*other);
    if (at == event_type_marks_.end()) return;
    Error(*at->second.first, at->second.second, Code::kDuplicate,
          "event types `" + rules_->event_types[*other] + "` and `" + rules_->event_types[*type] +
              "` would both define " + field,
          "give one of the event types another name");
  };
  add("id", CustomerFieldKind::kId, std::nullopt, Type::kString);
  add("stage", CustomerFieldKind::kStage, std::nullopt, Type::kString);
  add("total_spent", CustomerFieldKind::kTotalSpent, std::nullopt, Type::kNumber);
  add("first_seen", CustomerFieldKind::kFirstSeen, std::nullopt, Type::kTime);
  add("last_seen", CustomerFieldKind::kLastSeen, std::nullopt, Type::kTime);
  for (uint32_t i = 0; i < rules_->event_types.size(); ++i) {
    add(PluralOf(rules_->event_types[i]), CustomerFieldKind::kCount, i, Type::kNumber);
    add("last_" + rules_->event_types[i], CustomerFieldKind::kLastOf, i, Type::kTime);
  }
}

void Loader::CompileAggregates() {
  for (const PendingAggregate& p : pending_aggregates_) {
    const File& f = *p.file;
    const YAML::Node& n = p.node;
    Aggregate agg;
    agg.name = p.name;
    agg.location = {f.path, n.Mark().line + 1, n.Mark().column + 1};
    bool valid_name = !p.name.empty() && std::all_of(p.name.begin(), p.name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    }) && !std::isdigit(static_cast<unsigned char>(p.name[0]));
    if (!valid_name) {
      Error(f, n.Mark(), Code::kBadValue, "aggregate name `" + p.name + "` must be letters, digits and _");
      continue;
    }
    if (fields_.count(p.name) != 0) {
      Error(f, n.Mark(), Code::kDuplicate, "aggregate `" + p.name + "` has the name of a field that already exists",
            "pick another name");
      continue;
    }
    if (!ExpectMap(f, n, "an aggregate")) continue;
    CheckKeys(f, n, {"function", "event", "field", "window"}, "aggregate `" + p.name + "`");
    bool ok = true;
    if (const YAML::Node fn = n["function"]) {
      auto s = String(f, fn, "function");
      static const std::pair<const char*, AggregateFunction> kFunctions[] = {
          {"count", AggregateFunction::kCount}, {"sum", AggregateFunction::kSum}, {"min", AggregateFunction::kMin},
          {"max", AggregateFunction::kMax}, {"last", AggregateFunction::kLast}};
      bool found = false;
      for (auto [name, value] : kFunctions) {
        if (s && *s == name) {
          agg.function = value;
          found = true;
        }
      }
      if (s && !found) {
        Error(f, fn.Mark(), Code::kBadValue, "unknown aggregate function `" + *s + "`",
              "use count, sum, min, max or last");
        ok = false;
      }
    } else {
      Error(f, n.Mark(), Code::kMissingKey, "aggregate `" + p.name + "` needs a `function`");
      ok = false;
    }
    if (const YAML::Node ev = n["event"]) {
      auto t = EventTypeOf(f, ev);
      if (t) agg.event_type = *t; else ok = false;
    } else {
      Error(f, n.Mark(), Code::kMissingKey, "aggregate `" + p.name + "` needs an `event` type");
      ok = false;
    }
    if (const YAML::Node field = n["field"]) {
      if (auto s = String(f, field, "field")) {
        std::stringstream ss(*s);
        std::string part;
        while (std::getline(ss, part, '.')) {
          if (part.empty()) {
            Error(f, field.Mark(), Code::kBadValue, "field `" + *s + "` has an empty part");
            ok = false;
          }
          agg.field.push_back(part);
        }
      } else {
        ok = false;
      }
    } else if (agg.function != AggregateFunction::kCount) {
      Error(f, n.Mark(), Code::kMissingKey,
            "aggregate `" + p.name + "` needs a `field` for " + std::string(AggregateFunctionName(agg.function)));
      ok = false;
    }
    if (const YAML::Node w = n["window"]) {
      agg.window = DurationOf(f, w, "window");
      if (!agg.window) ok = false;
      if (agg.function == AggregateFunction::kLast && agg.window) {
        Error(f, w.Mark(), Code::kBadValue, "`last` keeps one value and takes no window");
        ok = false;
      }
    }
    if (!ok) continue;
    uint32_t index = static_cast<uint32_t>(rules_->aggregates.size());
    Type type = agg.function == AggregateFunction::kLast ? Type::kAny : Type::kNumber;
    fields_.emplace(agg.name, CustomerFieldRef{PackCustomerField(CustomerFieldKind::kAggregate, index), type});
    rules_->aggregates.push_back(std::move(agg));
  }
}

void Loader::CompileLadder() {
  FieldScope scope(*this, false, "ladder stages depend on the customer only", false, false);
  if (ladder_file_ == nullptr || !ladder_node_.IsSequence()) {
    if (ladder_file_ != nullptr) ExpectList(*ladder_file_, ladder_node_, "ladder");
    for (const DefaultStage& d : kDefaultLadder) {
      Stage stage;
      stage.name = d.name;
      if (d.condition != nullptr) stage.condition = Compile(d.condition, scope, Type::kBool).expr;
      rules_->ladder.push_back(std::move(stage));
    }
    return;
  }
  const File& f = *ladder_file_;
  rules_->ladder_declared = true;
  std::set<std::string> names;
  for (const auto& item : ladder_node_) {
    if (!ExpectMap(f, item, "a ladder stage")) continue;
    CheckKeys(f, item, {"stage", "when"}, "a ladder stage");
    Stage stage;
    if (const YAML::Node name = item["stage"]) {
      if (auto s = String(f, name, "stage")) stage.name = *s;
    } else {
      Error(f, item.Mark(), Code::kMissingKey, "a ladder stage needs a `stage` name");
    }
    if (!stage.name.empty() && !names.insert(stage.name).second) {
      Error(f, item.Mark(), Code::kDuplicate, "stage `" + stage.name + "` appears twice in the ladder");
    }
    const YAML::Node when = item["when"];
    if (rules_->ladder.empty()) {
      if (when) Error(f, when.Mark(), Code::kBadValue, "the first stage holds for everyone and takes no `when`");
    } else if (!when) {
      Error(f, item.Mark(), Code::kMissingKey, "stage `" + stage.name + "` needs a `when` condition");
    } else if (ExpectScalar(f, when, "when")) {
      stage.condition = CompileIn(f, when, when.Scalar(), 0, scope, Type::kBool);
    }
    rules_->ladder.push_back(std::move(stage));
  }
  if (rules_->ladder.empty()) {
    Error(f, ladder_node_.Mark(), Code::kBadValue, "the ladder needs at least one stage");
  }
}

void Loader::CompileCampaign(const File& f, const YAML::Node& n) {
  if (!ExpectMap(f, n, "a campaign")) return;
  Campaign c;
  c.location = {f.path, n.Mark().line + 1, n.Mark().column + 1};
  if (const YAML::Node id = n["id"]) {
    if (auto s = String(f, id, "id")) {
      c.id = *s;
      bool valid = !s->empty() && std::all_of(s->begin(), s->end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
      });
      if (!valid) {
        Error(f, id.Mark(), Code::kBadValue, "campaign id `" + *s + "` may only hold letters, digits, `-`, `_`, `.`");
      }
      auto [it, inserted] = campaign_locations_.emplace(c.id, c.location);
      if (!inserted) {
        Error(f, id.Mark(), Code::kDuplicate, "campaign `" + c.id + "` is already defined at " + it->second.file +
                                                   ":" + std::to_string(it->second.line));
      }
    }
  } else {
    Error(f, n.Mark(), Code::kMissingKey, "a campaign needs an `id`");
  }
  const std::string where = c.id.empty() ? "a campaign" : "campaign `" + c.id + "`";
  CheckKeys(f, n,
            {"id", "description", "enabled", "trigger", "condition", "delay", "limits", "holdout", "group",
             "priority", "actions", "goal"},
            where);
  if (const YAML::Node d = n["description"]) {
    if (auto s = String(f, d, "description")) c.description = *s;
  }
  if (const YAML::Node e = n["enabled"]) {
    if (auto b = Bool(f, e, "enabled")) c.enabled = *b;
  }

  // Trigger.
  bool trigger_ok = false;
  if (const YAML::Node t = n["trigger"]; t && ExpectMap(f, t, "trigger")) {
    CheckKeys(f, t, {"event", "inactivity", "stage"}, "trigger");
    int kinds = (t["event"] ? 1 : 0) + (t["inactivity"] ? 1 : 0) + (t["stage"] ? 1 : 0);
    if (kinds != 1) {
      Error(f, t.Mark(), kinds == 0 ? Code::kMissingKey : Code::kWrongShape,
            "a trigger has exactly one of `event`, `inactivity` or `stage`");
    } else if (const YAML::Node ev = t["event"]) {
      c.trigger.kind = TriggerKind::kEvent;
      if (auto idx = EventTypeOf(f, ev)) {
        c.trigger.event_type = *idx;
        trigger_ok = true;
      }
    } else if (const YAML::Node in = t["inactivity"]) {
      c.trigger.kind = TriggerKind::kInactivity;
      if (ExpectMap(f, in, "inactivity")) {
        CheckKeys(f, in, {"event", "for"}, "inactivity");
        std::optional<uint32_t> idx;
        std::optional<Duration> d;
        if (const YAML::Node ev2 = in["event"]) idx = EventTypeOf(f, ev2);
        else Error(f, in.Mark(), Code::kMissingKey, "inactivity needs the `event` type to watch");
        if (const YAML::Node fr = in["for"]) d = DurationOf(f, fr, "for");
        else Error(f, in.Mark(), Code::kMissingKey, "inactivity needs `for`: how long without the event, e.g. 30d");
        if (idx && d) {
          c.trigger.event_type = *idx;
          c.trigger.inactivity = *d;
          trigger_ok = true;
        }
      }
    } else if (const YAML::Node st = t["stage"]) {
      c.trigger.kind = TriggerKind::kStage;
      if (auto s = String(f, st, "stage")) {
        if (auto idx = rules_->FindStage(*s)) {
          c.trigger.stage = *idx;
          trigger_ok = true;
        } else {
          std::vector<std::string> names;
          for (const auto& stage : rules_->ladder) names.push_back(stage.name);
          std::string best = Closest(*s, names);
          std::string all;
          for (const auto& name : names) all += (all.empty() ? "" : ", ") + name;
          Error(f, st.Mark(), Code::kUnknownStage, "unknown ladder stage `" + *s + "`",
                best.empty() ? "the stages are " + all : "did you mean `" + best + "`?");
        }
      }
    }
  } else if (!n["trigger"]) {
    Error(f, n.Mark(), Code::kMissingKey, where + " needs a `trigger`");
  }

  const bool on_timer = trigger_ok && c.trigger.kind == TriggerKind::kInactivity;
  FieldScope condition_scope(*this, !on_timer,
                             "an inactivity trigger fires with no event in hand; use `customer.*`", false, true);
  if (const YAML::Node cond = n["condition"]; cond && ExpectScalar(f, cond, "condition")) {
    c.condition = CompileIn(f, cond, cond.Scalar(), 0, condition_scope, Type::kBool);
    c.condition_location.file = f.path;
    Locate(f, cond, 0, &c.condition_location.line, &c.condition_location.column);
  }

  // Delay.
  if (const YAML::Node d = n["delay"]; d && ExpectMap(f, d, "delay")) {
    CheckKeys(f, d, {"for", "recheck"}, "delay");
    if (on_timer) {
      Error(f, d.Mark(), Code::kBadValue, "an inactivity trigger is already a timer and takes no delay",
            "make `inactivity.for` longer instead");
    }
    if (const YAML::Node fr = d["for"]) {
      c.delay = DurationOf(f, fr, "delay");
    } else {
      Error(f, d.Mark(), Code::kMissingKey, "a delay needs `for`, e.g. 2d");
    }
    if (const YAML::Node re = d["recheck"]; re && ExpectScalar(f, re, "recheck")) {
      FieldScope scope(*this, false, "when a delay ends the event is gone; re-check `customer.*` instead", false,
                       true);
      c.recheck = CompileIn(f, re, re.Scalar(), 0, scope, Type::kBool);
      c.recheck_location.file = f.path;
      Locate(f, re, 0, &c.recheck_location.line, &c.recheck_location.column);
    }
  }

  // Limits.
  if (const YAML::Node l = n["limits"]; l && ExpectMap(f, l, "limits")) {
    CheckKeys(f, l, {"once_per_customer", "cooldown", "at_most"}, "limits");
    if (const YAML::Node once = l["once_per_customer"]) {
      if (auto b = Bool(f, once, "once_per_customer")) c.limits.once_per_customer = *b;
    }
    if (const YAML::Node cd = l["cooldown"]) c.limits.cooldown = DurationOf(f, cd, "cooldown");
    if (const YAML::Node am = l["at_most"]; am && ExpectMap(f, am, "at_most")) {
      CheckKeys(f, am, {"count", "per"}, "at_most");
      const YAML::Node count = am["count"];
      const YAML::Node per = am["per"];
      if (!count || !per) {
        Error(f, am.Mark(), Code::kMissingKey, "at_most needs `count` and `per`, e.g. {count: 2, per: 30d}");
      } else {
        auto n2 = Integer(f, count, "count");
        auto d = DurationOf(f, per, "per");
        if (n2 && (*n2 < 1 || *n2 > 1000)) {
          Error(f, count.Mark(), Code::kBadValue, "count must be between 1 and 1000");
        } else if (n2 && d) {
          c.limits.at_most_count = static_cast<uint32_t>(*n2);
          c.limits.at_most_per = *d;
        }
      }
    }
  }

  // Holdout.
  if (const YAML::Node h = n["holdout"]; h && ExpectScalar(f, h, "holdout")) {
    std::string s = h.Scalar();
    if (!s.empty() && s.back() == '%') s.pop_back();
    char* end = nullptr;
    double pct = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !(pct >= 0 && pct <= 100)) {
      Error(f, h.Mark(), Code::kBadValue, "holdout `" + h.Scalar() + "` must be a percentage from 0 to 100",
            "for example `holdout: 10%`");
    } else {
      c.holdout_basis_points = static_cast<uint32_t>(pct * 100 + 0.5);
    }
  }
  if (const YAML::Node g = n["group"]) {
    if (auto s = String(f, g, "group")) c.group = *s;
  }
  if (const YAML::Node p = n["priority"]) {
    if (auto v = Integer(f, p, "priority")) c.priority = *v;
    if (!n["group"]) {
      Error(f, p.Mark(), Code::kBadValue, "priority only matters inside a `group`", "add `group: <name>`");
    }
  }

  if (const YAML::Node g = n["goal"]; g && ExpectMap(f, g, "goal")) CompileGoal(f, g, &c);

  // Actions.
  const bool event_in_hand = trigger_ok && !on_timer && !c.delay;
  FieldScope payload_scope(*this, event_in_hand,
                           on_timer ? "an inactivity trigger fires with no event in hand; use `customer.*`"
                                    : "the action is sent when the delay ends and the event is gone; use `customer.*`",
                           true, true);
  if (const YAML::Node actions = n["actions"]; actions && ExpectList(f, actions, "actions")) {
    if (actions.size() == 0) Error(f, actions.Mark(), Code::kMissingKey, where + " has no actions");
    for (const auto& a : actions) {
      if (!ExpectMap(f, a, "an action")) continue;
      CheckKeys(f, a, {"channel", "template", "payload"}, "an action");
      Action action;
      action.payload.kind = PayloadNode::Kind::kObject;
      if (const YAML::Node ch = a["channel"]) {
        if (auto s = String(f, ch, "channel")) action.channel = *s;
      } else {
        Error(f, a.Mark(), Code::kMissingKey, "an action needs a `channel` (email, sms, push, ...)");
      }
      if (const YAML::Node tp = a["template"]) {
        if (auto s = String(f, tp, "template")) action.template_name = *s;
      } else {
        Error(f, a.Mark(), Code::kMissingKey, "an action needs a `template`");
      }
      if (const YAML::Node pl = a["payload"]; pl && ExpectMap(f, pl, "payload")) {
        CompilePayload(f, pl, payload_scope, &action.payload);
      }
      c.actions.push_back(std::move(action));
    }
  } else if (!n["actions"]) {
    Error(f, n.Mark(), Code::kMissingKey, where + " needs `actions`");
  }
  rules_->campaigns.push_back(std::move(c));
}

// A goal is checked when an event of its type arrives, after the customer is
// updated, so its condition reads that event and the updated customer.
void Loader::CompileGoal(const File& f, const YAML::Node& n, Campaign* c) {
  CheckKeys(f, n, {"event", "condition", "within"}, "goal");
  Goal goal;
  bool ok = true;
  if (const YAML::Node ev = n["event"]) {
    if (auto idx = EventTypeOf(f, ev)) {
      goal.event_type = *idx;
    } else {
      ok = false;
    }
  } else {
    Error(f, n.Mark(), Code::kMissingKey, "a goal needs the `event` that counts as a conversion",
          "for example `event: purchase`");
    ok = false;
  }
  if (const YAML::Node w = n["within"]) {
    if (auto d = DurationOf(f, w, "within")) {
      goal.within = *d;
    } else {
      ok = false;
    }
  } else {
    Error(f, n.Mark(), Code::kMissingKey, "a goal needs `within`: how long after the action a conversion counts",
          "for example `within: 7d`");
    ok = false;
  }
  if (const YAML::Node cond = n["condition"]; cond && ExpectScalar(f, cond, "goal condition")) {
    FieldScope scope(*this, true, "", false, true);
    goal.condition = CompileIn(f, cond, cond.Scalar(), 0, scope, Type::kBool);
    if (!goal.condition) ok = false;
  }
  if (ok) c->goal = std::move(goal);
}

LoadResult Loader::Load(std::vector<File> files) {
  auto rules = std::make_shared<RuleSet>();
  rules_ = rules.get();
  files_ = std::move(files);
  for (const char* t : kBuiltinEventTypes) event_types_.insert(t);
  for (File& f : files_) {
    rules_->files.push_back(f.path);
    if (f.ok) Declare(f);
  }
  BuildFieldTable();
  // Aggregates first, so that ladder stages can read them. An aggregate is
  // computed from its event's fields only (it has no expression), so it can
  // never depend on the stage.
  CompileAggregates();
  CompileLadder();
  for (const File& f : files_) {
    if (!f.ok || !f.root.IsMap()) continue;
    if (const YAML::Node cs = f.root["campaigns"]; cs && ExpectList(f, cs, "campaigns")) {
      for (const auto& c : cs) CompileCampaign(f, c);
    }
  }
  std::sort(rules_->campaigns.begin(), rules_->campaigns.end(),
            [](const Campaign& a, const Campaign& b) { return a.id < b.id; });
  std::stable_sort(out_.diagnostics.begin(), out_.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
  });
  if (!HasErrors(out_.diagnostics)) {
    rules_->BuildIndexes();
    out_.rules = std::move(rules);
  }
  return std::move(out_);
}

File ParseFile(std::string path, std::string text, Diagnostics* diagnostics) {
  File f;
  f.path = std::move(path);
  f.text = std::move(text);
  f.line_starts.push_back(0);
  for (size_t i = 0; i < f.text.size(); ++i) {
    if (f.text[i] == '\n') f.line_starts.push_back(i + 1);
  }
  try {
    f.root = YAML::Load(f.text);
    f.ok = true;
  } catch (const YAML::Exception& e) {
    Diagnostic d;
    d.code = Code::kYamlSyntax;
    d.file = f.path;
    d.line = e.mark.line + 1;
    d.column = e.mark.column + 1;
    d.message = e.msg;
    diagnostics->push_back(std::move(d));
  }
  return f;
}

}  // namespace

LoadResult LoadRulesFromStrings(const std::vector<std::pair<std::string, std::string>>& sources) {
  // Sort the sources, not the parsed files: assigning to a YAML::Node
  // writes through to every copy of it, so swapping Files left several of
  // them holding the same document.
  std::vector<const std::pair<std::string, std::string>*> sorted;
  for (const auto& source : sources) sorted.push_back(&source);
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  Diagnostics parse_errors;
  std::vector<File> files;
  files.reserve(sorted.size());
  for (const auto* source : sorted) files.push_back(ParseFile(source->first, source->second, &parse_errors));
  Loader loader;
  LoadResult result = loader.Load(std::move(files));
  if (!parse_errors.empty()) {
    result.rules.reset();
    result.diagnostics.insert(result.diagnostics.begin(), parse_errors.begin(), parse_errors.end());
  }
  return result;
}

LoadResult LoadRules(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> sources;
  Diagnostics io_errors;
  auto io_error = [&io_errors](const std::string& path, const std::string& message) {
    Diagnostic d;
    d.code = Code::kIo;
    d.file = path;
    d.message = message;
    io_errors.push_back(std::move(d));
  };
  auto is_rule_file = [](const fs::path& p) {
    std::string name = p.filename().string();
    auto ends = [&name](std::string_view s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
    return (ends(".yaml") || ends(".yml")) && !ends(".test.yaml") && !ends(".test.yml");
  };
  std::vector<std::string> found;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file() && is_rule_file(it->path())) found.push_back(it->path().string());
      }
      if (ec) io_error(path, "cannot read directory: " + ec.message());
    } else if (fs::exists(path, ec)) {
      found.push_back(path);
    } else {
      io_error(path, "no such file or directory");
    }
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  for (const std::string& path : found) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      io_error(path, "cannot open file");
      continue;
    }
    std::ostringstream text;
    text << in.rdbuf();
    sources.emplace_back(path, text.str());
  }
  if (found.empty() && io_errors.empty()) {
    std::string all;
    for (const auto& p : paths) all += (all.empty() ? "" : " ") + p;
    io_error(all, "no rule files (*.yaml, *.yml) found");
  }
  LoadResult result = LoadRulesFromStrings(sources);
  if (!io_errors.empty()) {
    result.rules.reset();
    result.diagnostics.insert(result.diagnostics.begin(), io_errors.begin(), io_errors.end());
  }
  return result;
}

bool IsJsonNumber(const std::string& s) {
  auto digit = [&s](size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; };
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == s.size() && std::isfinite(std::strtod(s.c_str(), nullptr));
}

}  // namespace rapport::rules

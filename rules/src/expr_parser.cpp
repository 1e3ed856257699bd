// The parser and type checker of the expression language, and Compile().
//
// One recursive-descent pass parses and type-checks at once, building the node
// tree that Eval() walks. Syntax errors stop the pass (the first one is
// reported); every other error is recorded and the pass goes on with the
// offending subtree typed `any`, so that one mistake does not cause a cascade
// of follow-up errors while independent mistakes are all reported.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "expr_internal.h"
#include "rapport/rules/suggest.h"

namespace rapport::rules {
namespace expr_internal {
namespace {

// Nesting of parentheses, `not`, unary minus and calls.
constexpr int kMaxNesting = 100;
// Height of the node tree (long `a or b or c ...` chains grow it too).
constexpr int kMaxHeight = 256;

struct SyntaxAbort {};

constexpr size_t kVariadic = SIZE_MAX;

struct FunctionInfo {
  std::string_view name;
  Fn fn;
  size_t min_args;
  size_t max_args;
};

constexpr std::array<FunctionInfo, 26> kFunctions = {{
    {"lower", Fn::kLower, 1, 1},
    {"upper", Fn::kUpper, 1, 1},
    {"trim", Fn::kTrim, 1, 1},
    {"len", Fn::kLen, 1, 1},
    {"contains", Fn::kContains, 2, 2},
    {"starts_with", Fn::kStartsWith, 2, 2},
    {"ends_with", Fn::kEndsWith, 2, 2},
    {"abs", Fn::kAbs, 1, 1},
    {"round", Fn::kRound, 1, 2},
    {"floor", Fn::kFloor, 1, 1},
    {"ceil", Fn::kCeil, 1, 1},
    {"min", Fn::kMin, 2, kVariadic},
    {"max", Fn::kMax, 2, kVariadic},
    {"exists", Fn::kExists, 1, 1},
    {"coalesce", Fn::kCoalesce, 2, kVariadic},
    {"string", Fn::kString, 1, 1},
    {"time", Fn::kTime, 1, 1},
    {"now", Fn::kNow, 0, 0},
    {"days", Fn::kDays, 1, 1},
    {"hours", Fn::kHours, 1, 1},
    {"minutes", Fn::kMinutes, 1, 1},
    {"days_since", Fn::kDaysSince, 1, 1},
    {"hour_of_day", Fn::kHourOfDay, 1, 1},
    {"day_of_week", Fn::kDayOfWeek, 1, 1},
    {"date", Fn::kDate, 1, 1},
    {"coupon", Fn::kCoupon, 1, 1},
}};

const FunctionInfo* FindFunction(std::string_view name) {
  for (const FunctionInfo& f : kFunctions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}


// The function whose name is closest to `name`, or empty when none is close.
std::string_view ClosestFunction(std::string_view name) {
  std::string_view best;
  size_t best_distance = std::max<size_t>(1, name.size() / 3) + 1;
  for (const FunctionInfo& f : kFunctions) {
    size_t d = EditDistance(name, f.name);
    if (d < best_distance && d < name.size()) {
      best_distance = d;
      best = f.name;
    }
  }
  return best;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "and" for "AND", "True", ...: a keyword spelled in the wrong case.
std::optional<std::string> MiscasedKeyword(std::string_view word) {
  std::string lower = Lower(word);
  for (std::string_view k : {"and", "or", "not", "in", "true", "false", "null"}) {
    if (lower == k && word != k) return lower;
  }
  return std::nullopt;
}

std::string Quoted(std::string_view s) { return "`" + std::string(s) + "`"; }

std::string A(Type t) {
  switch (t) {
    case Type::kNull: return "null";
    case Type::kAny: return "a value of any type";
    default: return "a " + std::string(TypeName(t));
  }
}

std::string Describe(const Token& t) {
  if (t.kind == Tok::kEnd) return "the end of the expression";
  return Quoted(t.text);
}

bool IsNullLiteral(const Node& n) { return n.op == Op::kLiteral && n.type == Type::kNull; }

bool Comparable(Type a, Type b) {
  return a == b || a == Type::kAny || b == Type::kAny || a == Type::kNull || b == Type::kNull;
}

bool Orderable(Type t) {
  return t == Type::kNumber || t == Type::kString || t == Type::kTime || t == Type::kDuration;
}

std::string_view OpSymbol(Op op) {
  switch (op) {
    case Op::kAdd: return "+";
    case Op::kSub: return "-";
    case Op::kMul: return "*";
    case Op::kDiv: return "/";
    case Op::kMod: return "%";
    case Op::kEq: return "==";
    case Op::kNe: return "!=";
    case Op::kLt: return "<";
    case Op::kLe: return "<=";
    case Op::kGt: return ">";
    case Op::kGe: return ">=";
    default: return "?";
  }
}

// The arithmetic table for known types; mirrors Arithmetic() in expr_eval.cpp.
std::optional<Type> ArithConcrete(Op op, Type l, Type r) {
  using T = Type;
  switch (op) {
    case Op::kAdd:
      if (l == T::kNumber && r == T::kNumber) return T::kNumber;
      if (l == T::kString && r == T::kString) return T::kString;
      if (l == T::kTime && r == T::kDuration) return T::kTime;
      if (l == T::kDuration && r == T::kTime) return T::kTime;
      if (l == T::kDuration && r == T::kDuration) return T::kDuration;
      return std::nullopt;
    case Op::kSub:
      if (l == T::kNumber && r == T::kNumber) return T::kNumber;
      if (l == T::kTime && r == T::kDuration) return T::kTime;
      if (l == T::kTime && r == T::kTime) return T::kDuration;
      if (l == T::kDuration && r == T::kDuration) return T::kDuration;
      return std::nullopt;
    case Op::kMul:
      if (l == T::kNumber && r == T::kNumber) return T::kNumber;
      if (l == T::kDuration && r == T::kNumber) return T::kDuration;
      if (l == T::kNumber && r == T::kDuration) return T::kDuration;
      return std::nullopt;
    case Op::kDiv:
      if (l == T::kNumber && r == T::kNumber) return T::kNumber;
      if (l == T::kDuration && r == T::kNumber) return T::kDuration;
      if (l == T::kDuration && r == T::kDuration) return T::kNumber;
      return std::nullopt;
    case Op::kMod:
      if (l == T::kNumber && r == T::kNumber) return T::kNumber;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

// The result type of an arithmetic operator; an `any` operand stands for
// every type it could turn out to be. nullopt when no combination works,
// kAny when several results are possible.
std::optional<Type> ArithType(Op op, Type l, Type r) {
  static constexpr std::array<Type, 5> kConcrete = {Type::kBool, Type::kNumber, Type::kString, Type::kTime,
                                                    Type::kDuration};
  std::span<const Type> ls = l == Type::kAny ? std::span<const Type>(kConcrete) : std::span<const Type>(&l, 1);
  std::span<const Type> rs = r == Type::kAny ? std::span<const Type>(kConcrete) : std::span<const Type>(&r, 1);
  std::optional<Type> result;
  bool ambiguous = false;
  for (Type a : ls) {
    for (Type b : rs) {
      std::optional<Type> t = ArithConcrete(op, a, b);
      if (!t) continue;
      if (!result) {
        result = t;
      } else if (*result != *t) {
        ambiguous = true;
      }
    }
  }
  if (!result) return std::nullopt;
  return ambiguous ? Type::kAny : *result;
}

std::string ArithHint(Op op, Type l, Type r) {
  if ((l == Type::kTime && r == Type::kNumber) || (l == Type::kNumber && r == Type::kTime)) {
    return "add or subtract a duration, like 30d";
  }
  if ((l == Type::kDuration && r == Type::kNumber && (op == Op::kAdd || op == Op::kSub)) ||
      (l == Type::kNumber && r == Type::kDuration && (op == Op::kAdd || op == Op::kSub))) {
    return std::string(kDurationHint);
  }
  if (op == Op::kAdd && (l == Type::kString || r == Type::kString)) {
    return "turn the other side into text with string(...)";
  }
  return {};
}

std::string CompareHint(Type l, Type r) {
  auto either = [&](Type a, Type b) { return (l == a && r == b) || (l == b && r == a); };
  if (either(Type::kTime, Type::kString)) return "turn the text into a time with time(\"2026-01-05T10:00:00Z\")";
  if (either(Type::kTime, Type::kNumber)) return "compare with a time, like now() - 30d";
  if (either(Type::kDuration, Type::kNumber)) return std::string(kDurationHint);
  if (either(Type::kNumber, Type::kString)) return "numbers are written without quotes";
  return {};
}

struct UnitWord {
  std::string_view word;
  std::string_view unit;
};
constexpr std::array<UnitWord, 25> kUnitWords = {{
    {"ms", "ms"},     {"millis", "ms"},  {"s", "s"},         {"sec", "s"},        {"secs", "s"},
    {"second", "s"},  {"seconds", "s"},  {"m", "m"},         {"min", "m"},        {"mins", "m"},
    {"minute", "m"},  {"minutes", "m"},  {"h", "h"},         {"hr", "h"},         {"hrs", "h"},
    {"hour", "h"},    {"hours", "h"},    {"d", "d"},         {"day", "d"},        {"days", "d"},
    {"w", "w"},       {"wk", "w"},       {"week", "w"},      {"weeks", "w"},      {"milliseconds", "ms"},
}};

std::optional<std::string_view> UnitOf(std::string_view word) {
  for (const UnitWord& u : kUnitWords) {
    if (u.word == word) return u.unit;
  }
  return std::nullopt;
}

class Parser {
 public:
  Parser(std::string_view text, const std::vector<Token>& tokens, const Scope& scope, Diagnostics* diagnostics)
      : text_(text), tokens_(tokens), scope_(scope), diagnostics_(diagnostics) {}

  Node ParseAll() {
    Node root = Ended(ParseExpr());
    if (Peek().kind != Tok::kEnd) Unexpected(Peek());
    return root;
  }

  std::vector<uint32_t> TakeFields() { return std::move(fields_); }
  bool reads_event() const { return reads_event_; }

 private:
  // ------------------------------------------------------------ plumbing ---
  class Nest {
   public:
    explicit Nest(Parser* p) : p_(p) {
      if (++p_->nesting_ > kMaxNesting) p_->Syntax(p_->Peek().pos, "the expression is nested too deeply");
    }
    ~Nest() { --p_->nesting_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Parser* p_;
  };

  const Token& Peek(size_t ahead = 0) const {
    size_t i = std::min(next_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  const Token& Next() {
    const Token& t = tokens_[next_];
    if (next_ + 1 < tokens_.size()) ++next_;
    return t;
  }

  void Error(Code code, size_t pos, std::string message, std::string hint = {}) {
    diagnostics_->push_back(MakeDiagnostic(code, pos, std::move(message), std::move(hint)));
  }

  [[noreturn]] void Syntax(size_t pos, std::string message, std::string hint = {}) {
    Error(Code::kSyntax, pos, std::move(message), std::move(hint));
    throw SyntaxAbort{};
  }

  // A token that cannot follow a complete expression.
  [[noreturn]] void Unexpected(const Token& t) {
    std::string hint;
    if (auto k = MiscasedKeyword(t.text); k && t.kind == Tok::kIdent) {
      hint = "use " + Quoted(*k);
    } else if (t.kind == Tok::kRParen) {
      hint = "there is no `(` to close";
    } else if (t.kind == Tok::kRBracket) {
      hint = "there is no `[` to close";
    } else if (t.kind == Tok::kNot) {
      hint = "`not` goes before a condition; after a value write `not in [...]`";
    } else {
      hint = "an operator such as `and`, `==` or `+` is missing before it";
    }
    Syntax(t.pos, "unexpected " + Describe(t), std::move(hint));
  }

  void Expect(Tok kind, std::string message, std::string hint = {}) {
    if (Peek().kind != kind) Syntax(Peek().pos, std::move(message) + ", found " + Describe(Peek()), std::move(hint));
    Next();
  }

  // `n`, ending where the last token consumed ends: the parse of n just
  // finished, so that token is its last.
  Node Ended(Node n) const {
    const Token& last = tokens_[next_ == 0 ? 0 : next_ - 1];
    n.end = last.pos + last.text.size();
    return n;
  }

  static Node Leaf(Op op, Type type, size_t pos) {
    Node n;
    n.op = op;
    n.type = type;
    n.pos = pos;
    return n;
  }

  // A node standing for a subtree that had an error.
  // Its type is `any`, and operators do not infer a type from it, so that the
  // error does not cause follow-up errors.
  static Node Invalid(size_t pos) {
    Node n = Leaf(Op::kLiteral, Type::kAny, pos);
    n.invalid = true;
    return n;
  }

  Node Make(Op op, Type type, size_t pos, std::vector<Node> kids) {
    Node n = Leaf(op, type, pos);
    int height = 0;
    for (const Node& k : kids) height = std::max(height, k.depth);
    n.depth = height + 1;
    if (n.depth > kMaxHeight) Syntax(pos, "the expression is too long or nested too deeply");
    n.kids = std::move(kids);
    return n;
  }

  // --------------------------------------------------------------- logic ---
  Node ParseExpr() {
    Nest nest(this);
    return ParseOr();
  }

  void CheckLogic(const Node& n, std::string_view op) {
    if (n.type == Type::kBool || n.type == Type::kAny) return;
    Error(Code::kTypeMismatch, n.pos, Quoted(op) + " needs booleans, this is " + A(n.type));
  }

  Node ParseOr() {
    Node left = Ended(ParseAnd());
    while (Peek().kind == Tok::kOr) {
      Next();
      Node right = Ended(ParseAnd());
      CheckLogic(left, "or");
      CheckLogic(right, "or");
      size_t pos = left.pos;
      std::vector<Node> kids;
      kids.push_back(std::move(left));
      kids.push_back(std::move(right));
      const size_t end = kids.back().end;
      left = Make(Op::kOr, Type::kBool, pos, std::move(kids));
      left.end = end;
    }
    return left;
  }

  Node ParseAnd() {
    Node left = Ended(ParseNot());
    while (Peek().kind == Tok::kAnd) {
      Next();
      Node right = Ended(ParseNot());
      CheckLogic(left, "and");
      CheckLogic(right, "and");
      size_t pos = left.pos;
      std::vector<Node> kids;
      kids.push_back(std::move(left));
      kids.push_back(std::move(right));
      const size_t end = kids.back().end;
      left = Make(Op::kAnd, Type::kBool, pos, std::move(kids));
      left.end = end;
    }
    return left;
  }

  Node ParseNot() {
    if (Peek().kind != Tok::kNot) return ParseComparison();
    const size_t pos = Next().pos;
    Nest nest(this);
    Node operand = Ended(ParseNot());
    CheckLogic(operand, "not");
    std::vector<Node> kids;
    kids.push_back(std::move(operand));
    return Make(Op::kNot, Type::kBool, pos, std::move(kids));
  }

  // ---------------------------------------------------------- comparison ---
  static std::optional<Op> ComparisonOp(Tok kind) {
    switch (kind) {
      case Tok::kEq: return Op::kEq;
      case Tok::kNe: return Op::kNe;
      case Tok::kLt: return Op::kLt;
      case Tok::kLe: return Op::kLe;
      case Tok::kGt: return Op::kGt;
      case Tok::kGe: return Op::kGe;
      default: return std::nullopt;
    }
  }

  Node ParseComparison() {
    Node left = ParseAdditive();
    const Token& t = Peek();
    Node result;
    if (std::optional<Op> op = ComparisonOp(t.kind)) {
      const size_t op_pos = Next().pos;
      Node right = ParseAdditive();
      result = MakeComparison(*op, op_pos, std::move(left), std::move(right));
    } else if (t.kind == Tok::kIn || (t.kind == Tok::kNot && Peek(1).kind == Tok::kIn)) {
      const bool negate = t.kind == Tok::kNot;
      if (negate) Next();
      Next();
      result = ParseInList(std::move(left), negate);
    } else {
      return left;
    }
    if (ComparisonOp(Peek().kind) || Peek().kind == Tok::kIn) {
      Syntax(Peek().pos, "comparisons do not chain, " + Describe(Peek()) + " cannot follow a comparison",
             "combine them with `and`, like `a < b and b < c`");
    }
    return result;
  }

  Node MakeComparison(Op op, size_t op_pos, Node left, Node right) {
    const size_t pos = left.pos;
    const bool equality = op == Op::kEq || op == Op::kNe;
    if (equality && (IsNullLiteral(left) || IsNullLiteral(right))) {
      // A presence test: true or false, never unknown.
      std::vector<Node> kids;
      kids.push_back(IsNullLiteral(left) ? std::move(right) : std::move(left));
      return Make(op == Op::kEq ? Op::kIsNull : Op::kIsNotNull, Type::kBool, pos, std::move(kids));
    }
    const Type l = left.type;
    const Type r = right.type;
    if (equality) {
      if (!Comparable(l, r)) {
        Error(Code::kTypeMismatch, op_pos,
              "cannot compare " + std::string(TypeName(l)) + " with " + std::string(TypeName(r)), CompareHint(l, r));
      }
    } else if (l == Type::kNull || r == Type::kNull) {
      Error(Code::kTypeMismatch, op_pos,
            "cannot compare " + std::string(TypeName(l)) + " with " + std::string(TypeName(r)) + " using " +
                Quoted(OpSymbol(op)),
            "test for null with `== null` or `!= null`");
    } else if (!Comparable(l, r)) {
      Error(Code::kTypeMismatch, op_pos,
            "cannot compare " + std::string(TypeName(l)) + " with " + std::string(TypeName(r)), CompareHint(l, r));
    } else {
      Type t = l == Type::kAny ? r : l;
      if (t != Type::kAny && !Orderable(t)) {
        Error(Code::kTypeMismatch, op_pos,
              "cannot compare " + std::string(TypeName(l)) + " with " + std::string(TypeName(r)) + " using " +
                  Quoted(OpSymbol(op)),
              "only numbers, strings, times and durations are ordered");
      }
    }
    std::vector<Node> kids;
    kids.push_back(std::move(left));
    kids.push_back(std::move(right));
    return Make(op, Type::kBool, pos, std::move(kids));
  }

  // After `in` / `not in`: the list, with `subject` as kids[0].
  Node ParseInList(Node subject, bool negate) {
    if (Peek().kind != Tok::kLBracket) {
      Syntax(Peek().pos, "expected a list after `in`, found " + Describe(Peek()), "write it like [\"DE\", \"AT\"]");
    }
    Next();
    const size_t pos = subject.pos;
    const Type subject_type = subject.type;
    std::vector<Node> kids;
    kids.push_back(std::move(subject));
    if (Peek().kind != Tok::kRBracket) {
      while (true) {
        Node item = ParseExpr();
        if (!Comparable(subject_type, item.type)) {
          Error(Code::kTypeMismatch, item.pos,
                "cannot compare " + std::string(TypeName(subject_type)) + " with " + std::string(TypeName(item.type)),
                CompareHint(subject_type, item.type));
        }
        kids.push_back(std::move(item));
        if (Peek().kind != Tok::kComma) break;
        Next();
      }
    }
    Expect(Tok::kRBracket, "expected `,` or `]` in the list");
    return Make(negate ? Op::kNotIn : Op::kIn, Type::kBool, pos, std::move(kids));
  }

  // ---------------------------------------------------------- arithmetic ---
  Node MakeArithmetic(Op op, size_t op_pos, Node left, Node right) {
    const size_t pos = left.pos;
    const bool invalid = left.invalid || right.invalid;
    std::optional<Type> type = invalid ? Type::kAny : ArithType(op, left.type, right.type);
    if (!type) {
      Error(Code::kTypeMismatch, op_pos,
            "cannot apply " + Quoted(OpSymbol(op)) + " to " + std::string(TypeName(left.type)) + " and " +
                std::string(TypeName(right.type)),
            ArithHint(op, left.type, right.type));
    }
    std::vector<Node> kids;
    kids.push_back(std::move(left));
    kids.push_back(std::move(right));
    Node n = Make(op, type.value_or(Type::kAny), pos, std::move(kids));
    n.invalid = invalid || !type;
    return n;
  }

  Node ParseAdditive() {
    Node left = ParseTerm();
    while (Peek().kind == Tok::kPlus || Peek().kind == Tok::kMinus) {
      const Token& t = Next();
      Op op = t.kind == Tok::kPlus ? Op::kAdd : Op::kSub;
      Node right = ParseTerm();
      left = MakeArithmetic(op, t.pos, std::move(left), std::move(right));
    }
    return left;
  }

  Node ParseTerm() {
    Node left = ParseUnary();
    while (Peek().kind == Tok::kStar || Peek().kind == Tok::kSlash || Peek().kind == Tok::kPercent) {
      const Token& t = Next();
      Op op = t.kind == Tok::kStar ? Op::kMul : t.kind == Tok::kSlash ? Op::kDiv : Op::kMod;
      Node right = ParseUnary();
      left = MakeArithmetic(op, t.pos, std::move(left), std::move(right));
    }
    return left;
  }

  Node ParseUnary() {
    if (Peek().kind != Tok::kMinus) return ParsePrimary();
    const size_t pos = Next().pos;
    Nest nest(this);
    Node operand = ParseUnary();
    if (operand.op == Op::kLiteral && operand.literal.kind == Kind::kNumber) {
      operand.literal.number = -operand.literal.number;
      operand.pos = pos;
      return operand;
    }
    if (operand.op == Op::kLiteral && operand.literal.kind == Kind::kDuration) {
      operand.literal.ms = -operand.literal.ms;
      operand.pos = pos;
      return operand;
    }
    Type type = operand.type;
    bool invalid = operand.invalid;
    if (type != Type::kNumber && type != Type::kDuration && type != Type::kAny) {
      Error(Code::kTypeMismatch, pos, "cannot negate " + A(type), "only numbers and durations have a sign");
      type = Type::kAny;
      invalid = true;
    }
    std::vector<Node> kids;
    kids.push_back(std::move(operand));
    Node n = Make(Op::kNeg, type, pos, std::move(kids));
    n.invalid = invalid;
    return n;
  }

  // ------------------------------------------------------------- primary ---
  Node ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kNumber: {
        Next();
        if (Peek().kind == Tok::kIdent) {
          if (std::optional<std::string_view> unit = UnitOf(Peek().text)) {
            // `30 days`: a number and a unit word apart.
            const Token& word = Next();
            std::string message =
                Quoted(text_.substr(t.pos, word.pos + word.text.size() - t.pos)) + " is not a duration";
            if (t.number == static_cast<double>(static_cast<int64_t>(t.number)) && t.number >= 0) {
              message += "; write " + Quoted(std::string(t.text) + std::string(*unit));
            }
            Error(Code::kBadDuration, t.pos, std::move(message), std::string(kDurationHint));
            return Invalid(t.pos);
          }
        }
        Node n = Leaf(Op::kLiteral, Type::kNumber, t.pos);
        n.literal = Value::Number(t.number);
        return n;
      }
      case Tok::kDuration: {
        Next();
        if (t.bad) return Invalid(t.pos);
        Node n = Leaf(Op::kLiteral, Type::kDuration, t.pos);
        n.literal = Value::Dur(Duration{t.ms});
        return n;
      }
      case Tok::kString: {
        Next();
        Node n = Leaf(Op::kString, Type::kString, t.pos);
        n.text = t.str;
        return n;
      }
      case Tok::kTrue:
      case Tok::kFalse: {
        Next();
        Node n = Leaf(Op::kLiteral, Type::kBool, t.pos);
        n.literal = Value::Bool(t.kind == Tok::kTrue);
        return n;
      }
      case Tok::kNull: {
        Next();
        Node n = Leaf(Op::kLiteral, Type::kNull, t.pos);
        n.literal = Value::Null();
        return n;
      }
      case Tok::kLParen: {
        const size_t pos = Next().pos;
        Node inner = ParseExpr();
        Expect(Tok::kRParen, "expected `)`", "to close the `(` at column " + std::to_string(pos + 1));
        inner.pos = pos;
        inner.parenthesized = true;
        return inner;
      }
      case Tok::kLBracket: {
        // Parse the list so that the error is precise, then reject it.
        const size_t pos = Next().pos;
        if (Peek().kind != Tok::kRBracket) {
          while (true) {
            ParseExpr();
            if (Peek().kind != Tok::kComma) break;
            Next();
          }
        }
        Expect(Tok::kRBracket, "expected `,` or `]` in the list");
        Error(Code::kTypeMismatch, pos, "a list can only follow `in`", "like `event.country in [\"DE\", \"AT\"]`");
        return Invalid(pos);
      }
      case Tok::kIdent:
        if (Peek(1).kind == Tok::kLParen) return ParseCall();
        if (t.text == "event" || t.text == "customer") return ParsePath();
        return BareIdentifier();
      default:
        Syntax(t.pos, "expected a value, found " + Describe(t));
    }
  }

  Node BareIdentifier() {
    const Token& t = Next();
    std::string hint;
    std::string ignored;
    if (std::optional<std::string> k = MiscasedKeyword(t.text)) {
      hint = "use " + Quoted(*k);
    } else if (scope_.ResolveCustomer(t.text, &ignored)) {
      hint = "did you mean `customer." + std::string(t.text) + "`?";
    } else if (std::string_view f = ClosestFunction(t.text); !f.empty()) {
      hint = "did you mean `" + std::string(f) + "()`?";
    } else {
      hint = "fields start with `event.` or `customer.`";
    }
    Error(Code::kUnknownField, t.pos, "unknown field " + Quoted(t.text), std::move(hint));
    return Invalid(t.pos);
  }

  Node ParsePath() {
    const Token& head = Next();
    std::vector<std::string> segments;
    size_t end = head.pos + head.text.size();
    while (true) {
      if (Peek().kind == Tok::kDot) {
        Next();
        const Token& s = Peek();
        if (!IsWord(s.kind)) {
          Syntax(s.pos, "expected a field name after `.`, found " + Describe(s),
                 "quote unusual names, like event[\"utm-source\"]");
        }
        Next();
        segments.emplace_back(s.text);
        end = s.pos + s.text.size();
      } else if (Peek().kind == Tok::kLBracket) {
        Next();
        const Token& s = Peek();
        if (s.kind != Tok::kString) {
          Syntax(s.pos, "expected a quoted field name in `[...]`, found " + Describe(s),
                 "like event[\"utm-source\"]; list elements cannot be read");
        }
        Next();
        segments.push_back(s.str);
        const Token& close = Peek();
        Expect(Tok::kRBracket, "expected `]`");
        end = close.pos + 1;
      } else {
        break;
      }
    }
    const std::string shown(text_.substr(head.pos, end - head.pos));
    if (head.text == "event") {
      if (segments.empty()) {
        Error(Code::kUnknownField, head.pos, "`event` needs a field name",
              "like `event.amount` or `event[\"utm-source\"]`");
        return Invalid(head.pos);
      }
      std::string why;
      if (!scope_.EventAvailable(&why)) {
        std::string message = Quoted(shown) + " cannot be used here";
        if (!why.empty()) message += ": " + why;
        Error(Code::kUnavailable, head.pos, std::move(message));
        return Invalid(head.pos);
      }
      reads_event_ = true;
      Node n = Leaf(Op::kEvent, Type::kAny, head.pos);
      n.path = std::move(segments);
      return n;
    }
    // customer
    if (segments.empty()) {
      Error(Code::kUnknownField, head.pos, "`customer` needs a field name", "like `customer.visits`");
      return Invalid(head.pos);
    }
    if (segments.size() > 1) {
      Error(Code::kUnknownField, head.pos, "unknown field " + Quoted(shown), "customer fields have no sub-fields");
      return Invalid(head.pos);
    }
    std::string hint;
    std::optional<CustomerFieldRef> ref = scope_.ResolveCustomer(segments[0], &hint);
    if (!ref) {
      Error(Code::kUnknownField, head.pos, "unknown field `customer." + segments[0] + "`", std::move(hint));
      return Invalid(head.pos);
    }
    if (std::find(fields_.begin(), fields_.end(), ref->id) == fields_.end()) fields_.push_back(ref->id);
    Node n = Leaf(Op::kCustomer, ref->type, head.pos);
    n.field = ref->id;
    return n;
  }

  // ---------------------------------------------------------------- calls ---
  Node ParseCall() {
    const Token& name = Next();
    Next();  // (
    Nest nest(this);
    std::vector<Node> args;
    if (Peek().kind != Tok::kRParen) {
      while (true) {
        args.push_back(ParseExpr());
        if (Peek().kind != Tok::kComma) break;
        Next();
      }
    }
    Expect(Tok::kRParen, "expected `,` or `)` in the call of " + std::string(name.text) + "()");

    const FunctionInfo* f = FindFunction(name.text);
    if (f == nullptr) {
      std::string hint;
      if (std::string_view best = ClosestFunction(name.text); !best.empty()) {
        hint = "did you mean `" + std::string(best) + "()`?";
      }
      Error(Code::kUnknownFunction, name.pos, "unknown function `" + std::string(name.text) + "()`",
            std::move(hint));
      return Invalid(name.pos);
    }
    if (args.size() < f->min_args || args.size() > f->max_args) {
      std::string takes;
      if (f->max_args == kVariadic) {
        takes = "at least " + std::to_string(f->min_args) + " arguments";
      } else if (f->max_args == 0) {
        takes = "no arguments";
      } else if (f->min_args == f->max_args) {
        takes = std::to_string(f->min_args) + (f->min_args == 1 ? " argument" : " arguments");
      } else {
        takes = std::to_string(f->min_args) + " or " + std::to_string(f->max_args) + " arguments";
      }
      Error(Code::kArity, name.pos,
            std::string(f->name) + "() takes " + takes + ", not " + std::to_string(args.size()));
      return Invalid(name.pos);
    }
    Type type = CheckCall(*f, args, name.pos);
    Node n = Make(Op::kCall, type, name.pos, std::move(args));
    n.fn = f->fn;
    return n;
  }

  // Whether `arg` can be a `want`; reports a mismatch when it cannot.
  bool Want(const FunctionInfo& f, const Node& arg, Type want, std::string hint = {}) {
    if (arg.type == want || arg.type == Type::kAny) return true;
    Error(Code::kTypeMismatch, arg.pos, std::string(f.name) + "() needs " + A(want) + ", not " + A(arg.type),
          std::move(hint));
    return false;
  }

  bool WantTime(const FunctionInfo& f, const Node& arg) {
    std::string hint;
    if (arg.type == Type::kString) hint = "turn text into a time with time(...)";
    return Want(f, arg, Type::kTime, std::move(hint));
  }

  Type CheckCall(const FunctionInfo& f, const std::vector<Node>& args, size_t pos) {
    switch (f.fn) {
      case Fn::kLower:
      case Fn::kUpper:
      case Fn::kTrim:
        Want(f, args[0], Type::kString);
        return Type::kString;
      case Fn::kLen:
        Want(f, args[0], Type::kString);
        return Type::kNumber;
      case Fn::kContains:
      case Fn::kStartsWith:
      case Fn::kEndsWith:
        Want(f, args[0], Type::kString);
        Want(f, args[1], Type::kString);
        return Type::kBool;
      case Fn::kAbs:
      case Fn::kRound:
      case Fn::kFloor:
      case Fn::kCeil:
        for (const Node& a : args) Want(f, a, Type::kNumber);
        return Type::kNumber;
      case Fn::kMin:
      case Fn::kMax: {
        Type common = Type::kAny;
        for (const Node& a : args) {
          if (a.type == Type::kAny) continue;
          if (a.type != Type::kNumber && a.type != Type::kDuration && a.type != Type::kTime) {
            Error(Code::kTypeMismatch, a.pos,
                  std::string(f.name) + "() works on numbers, durations or times, not " + A(a.type));
            continue;
          }
          if (common == Type::kAny) {
            common = a.type;
          } else if (a.type != common) {
            Error(Code::kTypeMismatch, a.pos,
                  std::string(f.name) + "() needs arguments of one type, got " + std::string(TypeName(common)) +
                      " and " + std::string(TypeName(a.type)));
          }
        }
        return common;
      }
      case Fn::kExists:
        return Type::kBool;
      case Fn::kCoalesce: {
        // The common type of the arguments that are not null literals, or any.
        std::optional<Type> common;
        for (const Node& a : args) {
          if (a.type == Type::kNull) continue;
          if (!common) {
            common = a.type;
          } else if (*common != a.type) {
            common = Type::kAny;
          }
        }
        return common.value_or(Type::kNull);
      }
      case Fn::kString:
        return Type::kString;
      case Fn::kTime: {
        const Type t = args[0].type;
        if (t != Type::kAny && t != Type::kString && t != Type::kNumber && t != Type::kTime) {
          Error(Code::kTypeMismatch, args[0].pos,
                "time() needs a string (RFC 3339) or a number (epoch milliseconds), not " + A(t));
        }
        return Type::kTime;
      }
      case Fn::kNow:
        return Type::kTime;
      case Fn::kDays:
      case Fn::kHours:
      case Fn::kMinutes:
        Want(f, args[0], Type::kDuration,
             args[0].type == Type::kTime ? "subtract two times to get a duration, like now() - customer.last_visit"
                                         : "");
        return Type::kNumber;
      case Fn::kDaysSince:
      case Fn::kHourOfDay:
      case Fn::kDayOfWeek:
        WantTime(f, args[0]);
        return Type::kNumber;
      case Fn::kDate:
        WantTime(f, args[0]);
        return Type::kString;
      case Fn::kCoupon:
        if (!scope_.CouponAvailable()) {
          Error(Code::kUnavailable, pos, "coupon() cannot be used here",
                "coupon codes can only be made in action payloads");
        }
        Want(f, args[0], Type::kString);
        return Type::kString;
    }
    return Type::kAny;
  }

  std::string_view text_;
  const std::vector<Token>& tokens_;
  const Scope& scope_;
  Diagnostics* diagnostics_;
  size_t next_ = 0;
  int nesting_ = 0;
  std::vector<uint32_t> fields_;
  bool reads_event_ = false;
};

// One node of a compiled tree as an Expr of its own, for Explain().
class PartExpr final : public Expr {
 public:
  explicit PartExpr(const Node& node) : node_(node) { Collect(node); }

  Type type() const override { return node_.type; }
  Value Eval(const EvalContext& ctx, Scratch& scratch) const override {
    return expr_internal::Eval(node_, ctx, scratch);
  }
  const std::vector<uint32_t>& customer_fields() const override { return fields_; }
  bool reads_event() const override { return reads_event_; }

 private:
  void Collect(const Node& n) {
    if (n.op == Op::kEvent) reads_event_ = true;
    if (n.op == Op::kCustomer && std::find(fields_.begin(), fields_.end(), n.field) == fields_.end()) {
      fields_.push_back(n.field);
    }
    for (const Node& k : n.kids) Collect(k);
  }

  const Node& node_;
  std::vector<uint32_t> fields_;
  bool reads_event_ = false;
};

class CompiledExpr final : public Expr {
 public:
  CompiledExpr(std::string_view source, Node root, std::vector<uint32_t> fields, bool reads_event)
      : source_(source), root_(std::move(root)), fields_(std::move(fields)), reads_event_(reads_event) {
    AddPart(root_, 0, this);
  }

  Type type() const override { return root_.type; }
  Value Eval(const EvalContext& ctx, Scratch& scratch) const override {
    return expr_internal::Eval(root_, ctx, scratch);
  }
  const std::vector<uint32_t>& customer_fields() const override { return fields_; }
  bool reads_event() const override { return reads_event_; }
  const std::vector<SubExpression>& subexpressions() const { return subexpressions_; }
  const Node& root() const { return root_; }
  std::string_view source() const { return source_; }

 private:
  static bool IsLogic(const Node& n) { return n.op == Op::kAnd || n.op == Op::kOr || n.op == Op::kNot; }

  // The operands of `n`, with an unparenthesized chain of the same operator
  // (`a and b and c` parses as `(a and b) and c`) read as one.
  void Operands(const Node& n, std::vector<const Node*>* out) const {
    for (const Node& k : n.kids) {
      if (n.op != Op::kNot && k.op == n.op && !k.parenthesized) {
        Operands(k, out);
      } else {
        out->push_back(&k);
      }
    }
  }

  void AddPart(const Node& n, int depth, const Expr* expr) {
    const size_t end = std::min(std::max(n.end, n.pos), source_.size());
    subexpressions_.push_back(SubExpression{std::string_view(source_).substr(n.pos, end - n.pos), depth, expr});
    if (!IsLogic(n)) return;
    std::vector<const Node*> operands;
    Operands(n, &operands);
    for (const Node* k : operands) {
      parts_.push_back(std::make_unique<PartExpr>(*k));
      AddPart(*k, depth + 1, parts_.back().get());
    }
  }

  // Declared before the parts that point into them.
  const std::string source_;
  const Node root_;
  std::vector<uint32_t> fields_;
  bool reads_event_;
  std::vector<std::unique_ptr<PartExpr>> parts_;
  std::vector<SubExpression> subexpressions_;
};

}  // namespace
}  // namespace expr_internal

CompileOutput Compile(std::string_view text, const Scope& scope, Type expected) {
  using namespace expr_internal;
  CompileOutput out;
  if (text.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos) {
    out.diagnostics.push_back(MakeDiagnostic(Code::kSyntax, 0, "empty expression"));
    return out;
  }
  std::vector<Token> tokens;
  if (!Lex(text, &tokens, &out.diagnostics)) return out;

  Parser parser(text, tokens, scope, &out.diagnostics);
  std::optional<Node> root;
  try {
    root = parser.ParseAll();
  } catch (const SyntaxAbort&) {
    root.reset();
  }
  if (root && expected != Type::kAny && root->type != expected && root->type != Type::kAny) {
    std::string message = expected == Type::kBool
                              ? "a condition must be a boolean, this is " + A(root->type)
                              : "the expression must be " + A(expected) + ", this is " + A(root->type);
    std::string hint;
    if (expected == Type::kBool && root->type != Type::kNull) hint = "compare it, like `... > 0` or `... == \"x\"`";
    out.diagnostics.push_back(MakeDiagnostic(Code::kTypeMismatch, root->pos, std::move(message), std::move(hint)));
  }
  std::stable_sort(out.diagnostics.begin(), out.diagnostics.end(),
                   [](const Diagnostic& a, const Diagnostic& b) { return a.column < b.column; });
  if (!root || HasErrors(out.diagnostics)) return out;
  out.expr = std::make_unique<CompiledExpr>(text, std::move(*root), parser.TakeFields(), parser.reads_event());
  return out;
}

std::vector<SubExpression> Explain(const Expr& expr) {
  if (const auto* compiled = dynamic_cast<const expr_internal::CompiledExpr*>(&expr)) {
    return compiled->subexpressions();
  }
  return {SubExpression{{}, 0, &expr}};
}

const expr_internal::Node* expr_internal::RootOf(const Expr& expr, std::string_view* source) {
  const auto* compiled = dynamic_cast<const CompiledExpr*>(&expr);
  if (compiled == nullptr) return nullptr;
  if (source != nullptr) *source = compiled->source();
  return &compiled->root();
}

}  // namespace rapport::rules

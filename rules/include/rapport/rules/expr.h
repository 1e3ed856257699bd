// The expression language of campaign conditions and payload templates.
//
// Grammar (EBNF; keywords are lower case, whitespace is free):
//
//   expr       = or ;
//   or         = and , { "or" , and } ;
//   and        = not , { "and" , not } ;
//   not        = "not" , not | comparison ;
//   comparison = additive , [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) , additive
//                            | [ "not" ] , "in" , list ] ;
//   additive   = term , { ( "+" | "-" ) , term } ;
//   term       = unary , { ( "*" | "/" | "%" ) , unary } ;
//   unary      = "-" , unary | primary ;
//   primary    = number | duration | string | "true" | "false" | "null"
//              | path | call | list | "(" , expr , ")" ;
//   list       = "[" , [ expr , { "," , expr } ] , "]" ;
//   path       = ( "event" | "customer" ) , { "." , ident | "[" , string , "]" } ;
//   call       = ident , "(" , [ expr , { "," , expr } ] , ")" ;
//   number     = digits , [ "." , digits ] , [ ( "e" | "E" ) , [ "+" | "-" ] , digits ] ;
//   duration   = digits , unit , { digits , unit } ;       (* 30d, 1d12h, 500ms *)
//   unit       = "ms" | "s" | "m" | "h" | "d" | "w" ;
//   string     = "'" , { char } , "'" | '"' , { char } , '"' ;   (* \\ \' \" \n \t *)
//   ident      = letter , { letter | digit | "_" } ;
//
// Types: number, string, bool, time, duration, null, and `any` for values
// whose type is only known at run time (event fields). The compiler checks
// every operator and call against the static types and rejects mismatches
// (`customer.visits == "x"`), so at run time only `any` values can disagree.
//
// Three-valued logic: a missing value (an absent event field, a customer time
// that was never set) is *unknown*. Comparisons and arithmetic with unknown
// give unknown; `not unknown` is unknown; `and`/`or` follow Kleene logic
// (false and unknown = false, true or unknown = true). A value of the wrong
// kind at run time (an `any` that turns out to be a string where a number is
// needed) is unknown too, as is division by zero. A condition counts as true
// only when it evaluates to the boolean true, so `not (event.coupon == "X")`
// is *not* true for an event without a coupon.
// `x == null` and `x != null` are presence tests and never unknown: a missing
// value and a JSON null are both "null" to them. `exists(x)` is the same as
// `x != null`.
//
// Functions: lower, upper, trim, len, contains, starts_with, ends_with,
// abs, round, floor, ceil, min, max, exists, coalesce, string, time, now,
// days, hours, minutes, days_since, hour_of_day, day_of_week, date, coupon.
// (docs/rule-language.md describes each.)
//
// Thread-safety: a compiled Expr is immutable; many threads may evaluate it
// at once, each with its own Scratch.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/engine/time.h"
#include "rapport/rules/diagnostic.h"

namespace rapport::rules {

// Static types, known at compile time.
enum class Type : uint8_t { kAny, kNull, kBool, kNumber, kString, kTime, kDuration };
std::string_view TypeName(Type type);  // "number", "any", ...

// Run-time values. kUnknown is a missing value, kNull a present null.
enum class Kind : uint8_t { kUnknown, kNull, kBool, kNumber, kString, kTime, kDuration };

// A small value. `string` points into the event, the compiled expression, the
// customer profile or a Scratch, and is valid as long as they are.
struct Value {
  Kind kind = Kind::kUnknown;
  bool boolean = false;
  double number = 0;
  int64_t ms = 0;  // kTime: ms since the epoch; kDuration: ms
  std::string_view string;

  static Value Unknown() { return Value{}; }
  static Value Null() { return Of(Kind::kNull); }
  static Value Bool(bool b) { Value v = Of(Kind::kBool); v.boolean = b; return v; }
  static Value Number(double n) { Value v = Of(Kind::kNumber); v.number = n; return v; }
  static Value String(std::string_view s) { Value v = Of(Kind::kString); v.string = s; return v; }
  static Value Time(EventTime t) { Value v = Of(Kind::kTime); v.ms = t.ms; return v; }
  static Value Dur(Duration d) { Value v = Of(Kind::kDuration); v.ms = d.ms; return v; }
  static Value Of(Kind k) { Value v; v.kind = k; return v; }

  bool IsTrue() const { return kind == Kind::kBool && boolean; }
  bool IsPresent() const { return kind != Kind::kUnknown && kind != Kind::kNull; }
};

// Strings made while evaluating (lower(), concatenation, coupon codes) live
// here. Reuse one Scratch per thread and Clear() it between evaluations so
// the hot path does not allocate once its buffers have grown.
class Scratch {
 public:
  // Returns a string owned by this scratch, valid until Clear().
  std::string* NewString();
  void Clear() { used_ = 0; }

 private:
  std::deque<std::string> strings_;
  size_t used_ = 0;
};

// What a customer field resolves to at compile time.
struct CustomerFieldRef {
  uint32_t id = 0;  // opaque to the compiler; handed back to EvalContext
  Type type = Type::kAny;
};

// Names that an expression may use, supplied by the rule loader.
class Scope {
 public:
  virtual ~Scope() = default;
  // `customer.<name>`: the field, or nullopt with *hint set to a suggestion
  // ("did you mean `customer.visits`?") or an explanation, or left empty.
  virtual std::optional<CustomerFieldRef> ResolveCustomer(std::string_view name, std::string* hint) const = 0;
  // Whether `event.*` may be read here. False where no event is in hand (a
  // condition re-checked when a delay ends, an inactivity timer); `why`
  // explains it in the error.
  virtual bool EventAvailable(std::string* why) const = 0;
  // Whether coupon() may be called here (only in action payloads).
  virtual bool CouponAvailable() const = 0;
};

// Run-time values for one evaluation, supplied by the engine.
class EvalContext {
 public:
  virtual ~EvalContext() = default;
  // The event field at `path` (the keys after `event.`): unknown when absent;
  // JSON objects and arrays are unknown too (they are not values here).
  virtual Value EventField(std::span<const std::string> path) const = 0;
  virtual Value CustomerField(uint32_t id) const = 0;
  // The time at which the campaign is being evaluated: the event's time, or
  // the due time of the timer being fired.
  virtual EventTime Now() const = 0;
  // A unique, deterministic coupon code for the action being rendered.
  virtual std::string_view Coupon(std::string_view prefix, Scratch& scratch) const = 0;
};

// A compiled expression.
class Expr {
 public:
  virtual ~Expr() = default;
  virtual Type type() const = 0;
  virtual Value Eval(const EvalContext& ctx, Scratch& scratch) const = 0;
  // The customer fields this expression reads (by id, each once), so callers
  // can tell what a campaign depends on.
  virtual const std::vector<uint32_t>& customer_fields() const = 0;
  // True when the expression reads `event.*`.
  virtual bool reads_event() const = 0;
};

struct CompileOutput {
  std::unique_ptr<Expr> expr;  // null when `diagnostics` has an error
  Diagnostics diagnostics;     // column = 1-based offset in `text`, line = 1; file empty
};

// Compiles `text`. When `expected` is not kAny the result must have that
// type (or kAny); conditions pass kBool. Every error found is reported.
CompileOutput Compile(std::string_view text, const Scope& scope, Type expected);

// One part of an expression's `and`/`or`/`not` tree, for explaining a
// decision (`rapport explain`) part by part.
struct SubExpression {
  std::string_view text;       // as written, e.g. `customer.purchases == 3`
  int depth = 0;               // 0: the whole expression; an operand is one deeper than its operator
  const Expr* expr = nullptr;  // evaluates this part on its own
};

// The whole expression (depth 0) and then, depth first, every operand of its
// `and`, `or` and `not`, recursively: `a and (b or not c)` gives the whole,
// `a`, `b or not c`, `b`, `not c`, `c`. A chain `a and b and c` gives its three
// operands at one depth (a parenthesized operand is not merged into the
// chain). Views and pointers live as long as `expr`. An Expr that Compile()
// did not make gives only itself, with empty text.
std::vector<SubExpression> Explain(const Expr& expr);

// Renders a value as template text: numbers in their shortest form (integers
// without ".0"), times as RFC 3339, durations as "30d", booleans as
// true/false, null and unknown as "".
void AppendAsText(const Value& value, std::string* out);

// Whether two values are equal by the rules of `==` (unknown when either is
// unknown): exposed for `in` lists and for tests.
Value Equals(const Value& a, const Value& b);

}  // namespace rapport::rules

// Private parts of the expression language: tokens, the compiled node tree,
// and the evaluator. Only rules/src/expr_*.cpp (and lint.cpp, which reads
// the tree) include this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/rules/diagnostic.h"
#include "rapport/rules/expr.h"

namespace rapport::rules::expr_internal {

// ---------------------------------------------------------------- tokens ---

enum class Tok : uint8_t {
  kEnd,
  kNumber,
  kDuration,
  kString,
  kIdent,
  // keywords
  kAnd,
  kOr,
  kNot,
  kIn,
  kTrue,
  kFalse,
  kNull,
  // punctuation
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
};

struct Token {
  Tok kind = Tok::kEnd;
  size_t pos = 0;         // byte offset in the text
  std::string_view text;  // the raw source of the token
  double number = 0;      // kNumber
  int64_t ms = 0;         // kDuration
  bool bad = false;       // kDuration: malformed, already reported
  std::string str;        // kString: the decoded value
};

// True for the keyword tokens, which may also name a path segment (`event.in`).
bool IsWord(Tok kind);

// Splits `text` into tokens, ending with a kEnd token. A syntax error adds one
// diagnostic and returns false. A malformed duration ("30dd") is reported as
// kBadDuration but lexing goes on (the token is marked `bad`), so later
// errors are found too.
bool Lex(std::string_view text, std::vector<Token>* out, Diagnostics* diagnostics);

// A diagnostic at byte offset `pos` of the expression.
Diagnostic MakeDiagnostic(Code code, size_t pos, std::string message, std::string hint = {});

// The durations hint, shared by the lexer and the parser.
inline constexpr std::string_view kDurationHint = "durations look like 30d, 12h, 90m, 500ms";

// ------------------------------------------------------------------ nodes ---

enum class Op : uint8_t {
  kLiteral,  // `literal` (numbers, durations, booleans, null)
  kString,   // a string literal: `text`
  kEvent,    // `path`
  kCustomer, // `field`
  kAnd,
  kOr,
  kNot,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIsNull,     // `x == null`: kids[0]
  kIsNotNull,  // `x != null`: kids[0]
  kIn,         // kids[0] in kids[1..]
  kNotIn,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kNeg,
  kCall,  // `fn` applied to kids
};

enum class Fn : uint8_t {
  kLower,
  kUpper,
  kTrim,
  kLen,
  kContains,
  kStartsWith,
  kEndsWith,
  kAbs,
  kRound,
  kFloor,
  kCeil,
  kMin,
  kMax,
  kExists,
  kCoalesce,
  kString,
  kTime,
  kNow,
  kDays,
  kHours,
  kMinutes,
  kDaysSince,
  kHourOfDay,
  kDayOfWeek,
  kDate,
  kCoupon,
};

struct Node {
  Op op = Op::kLiteral;
  Fn fn = Fn::kLower;
  Type type = Type::kAny;
  size_t pos = 0;   // start of the node in the text, for diagnostics
  size_t end = 0;   // just after its last character; set for the whole
                    // expression and the operands of and/or/not (Explain)
  Value literal;    // kLiteral
  std::string text; // kString; the view is made at evaluation time so that
                    // moving the node cannot leave it dangling
  std::vector<std::string> path;  // kEvent
  uint32_t field = 0;             // kCustomer
  int depth = 1;                  // height of the subtree
  bool invalid = false;           // compile time only: the subtree had an error
  bool parenthesized = false;     // written in ( ), so not part of an enclosing chain
  std::vector<Node> kids;
};

// Evaluates a node. Recursion is bounded by the depth limit of the parser.
Value Eval(const Node& node, const EvalContext& ctx, Scratch& scratch);

// The tree of an expression Compile() made, and its text in *source; null
// for any other Expr. For analyses of compiled rules (rules/src/lint.cpp).
const Node* RootOf(const Expr& expr, std::string_view* source = nullptr);

}  // namespace rapport::rules::expr_internal

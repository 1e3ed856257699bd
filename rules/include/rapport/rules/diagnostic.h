// Diagnostics of the rule loader and the expression compiler.
//
// Every problem found while loading rules is a Diagnostic: a severity, a
// stable code, a position and a message, plus an optional hint ("did you mean
// `customer.visits`?"). Loading collects all of them instead of stopping at
// the first. Errors refuse a rule set; warnings (codes 30 and up, from the
// lint pass in lint.h) never do. The codes are defined once, in
// RAPPORT_DIAGNOSTIC_CODES, so that names, numbers and descriptions cannot
// drift apart; the numbers are part of the `validate --format json` contract
// and are never reused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rapport::rules {

// X(enumerator, number, name, summary)
#define RAPPORT_DIAGNOSTIC_CODES(X)                                                      \
  X(kSyntax, 1, "syntax", "the expression or template does not parse")                   \
  X(kUnknownField, 2, "unknown-field", "a name that is not a known field")               \
  X(kTypeMismatch, 3, "type-mismatch", "an operator or function got the wrong type")     \
  X(kUnknownFunction, 4, "unknown-function", "a call to a function that does not exist") \
  X(kArity, 5, "arity", "a function called with the wrong number of arguments")          \
  X(kBadDuration, 6, "bad-duration", "a duration that is not like 30d, 12h, 90m")        \
  X(kUnavailable, 7, "unavailable", "a name that cannot be used in this place")          \
  X(kYamlSyntax, 10, "yaml-syntax", "the file is not valid YAML")                        \
  X(kUnknownKey, 11, "unknown-key", "a key the campaign format does not define")         \
  X(kMissingKey, 12, "missing-key", "a required key is missing")                         \
  X(kWrongShape, 13, "wrong-shape", "a value of the wrong YAML kind or of a bad form")   \
  X(kDuplicate, 14, "duplicate", "a campaign or aggregate id defined twice")             \
  X(kUnknownEventType, 15, "unknown-event-type", "an event type no rule declares")       \
  X(kUnknownStage, 16, "unknown-stage", "a loyalty-ladder stage that is not defined")    \
  X(kBadValue, 17, "bad-value", "a value out of its allowed range")                      \
  X(kIo, 18, "io", "the file could not be read")                                         \
  X(kNeverTrue, 30, "never-true", "a condition that can never be true")                  \
  X(kUnlimited, 31, "unlimited", "a campaign with no limit on a frequent trigger")       \
  X(kOverlap, 32, "overlap", "two campaigns on one trigger and channel that are not in one group")

enum class Code : uint16_t {
#define RAPPORT_X(e, n, name, summary) e = n,
  RAPPORT_DIAGNOSTIC_CODES(RAPPORT_X)
#undef RAPPORT_X
};

// "unknown-field", or "?" for a value outside the table.
std::string_view CodeName(Code code);
std::string_view CodeSummary(Code code);

enum class Severity : uint8_t { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  Code code = Code::kSyntax;
  std::string file;  // empty for an expression compiled on its own
  int line = 0;      // 1-based; 0 when unknown
  int column = 0;    // 1-based; for an expression alone, the column in its text
  std::string message;
  std::string hint;  // empty when there is none

  // "file:line:col: error[unknown-field]: message (hint)"
  std::string ToString() const;
};

using Diagnostics = std::vector<Diagnostic>;

bool HasErrors(const Diagnostics& diagnostics);

}  // namespace rapport::rules

#include "rapport/rules/diagnostic.h"

namespace rapport::rules {

std::string_view CodeName(Code code) {
  switch (code) {
#define RAPPORT_X(e, n, name, summary) \
  case Code::e:                        \
    return name;
    RAPPORT_DIAGNOSTIC_CODES(RAPPORT_X)
#undef RAPPORT_X
  }
  return "?";
}

std::string_view CodeSummary(Code code) {
  switch (code) {
#define RAPPORT_X(e, n, name, summary) \
  case Code::e:                        \
    return summary;
    RAPPORT_DIAGNOSTIC_CODES(RAPPORT_X)
#undef RAPPORT_X
  }
  return "?";
}

std::string Diagnostic::ToString() const {
  std::string s;
  if (!file.empty()) {
    s += file;
    s += ':';
  }
  if (line > 0) {
    s += std::to_string(line);
    s += ':';
  }
  if (column > 0) {
    s += std::to_string(column);
    s += ':';
  }
  if (!s.empty()) s += ' ';
  s += severity == Severity::kError ? "error[" : "warning[";
  s += CodeName(code);
  s += "]: ";
  s += message;
  if (!hint.empty()) {
    s += " (";
    s += hint;
    s += ')';
  }
  return s;
}

bool HasErrors(const Diagnostics& diagnostics) {
  for (const auto& d : diagnostics) {
    if (d.severity == Severity::kError) return true;
  }
  return false;
}

}  // namespace rapport::rules

// The lexer of the expression language.
#include <charconv>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "expr_internal.h"
#include "rapport/engine/time.h"

namespace rapport::rules::expr_internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsIdentStart(char c) { return IsLetter(c) || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

Tok KeywordOrIdent(std::string_view word) {
  if (word == "and") return Tok::kAnd;
  if (word == "or") return Tok::kOr;
  if (word == "not") return Tok::kNot;
  if (word == "in") return Tok::kIn;
  if (word == "true") return Tok::kTrue;
  if (word == "false") return Tok::kFalse;
  if (word == "null") return Tok::kNull;
  return Tok::kIdent;
}

class Lexer {
 public:
  Lexer(std::string_view text, std::vector<Token>* out, Diagnostics* diagnostics)
      : text_(text), out_(out), diagnostics_(diagnostics) {}

  bool Run() {
    size_t i = 0;
    const size_t n = text_.size();
    while (true) {
      while (i < n && IsSpace(text_[i])) ++i;
      if (i >= n) {
        Push(Tok::kEnd, n, 0);
        return true;
      }
      const char c = text_[i];
      if (IsIdentStart(c)) {
        size_t j = i + 1;
        while (j < n && IsIdentChar(text_[j])) ++j;
        Push(KeywordOrIdent(text_.substr(i, j - i)), i, j - i);
        i = j;
      } else if (IsDigit(c)) {
        if (!LexNumber(&i)) return false;
      } else if (c == '\'' || c == '"') {
        if (!LexString(&i)) return false;
      } else {
        if (!LexPunctuation(&i)) return false;
      }
    }
  }

 private:
  Token& Push(Tok kind, size_t pos, size_t len) {
    Token& t = out_->emplace_back();
    t.kind = kind;
    t.pos = pos;
    t.text = text_.substr(pos, len);
    return t;
  }

  bool Fail(size_t pos, std::string message, std::string hint = {}) {
    diagnostics_->push_back(MakeDiagnostic(Code::kSyntax, pos, std::move(message), std::move(hint)));
    return false;
  }

  // number = digits [ "." digits ] [ ("e"|"E") ["+"|"-"] digits ];
  // duration = digits unit { digits unit }.
  bool LexNumber(size_t* io) {
    const size_t start = *io;
    const size_t n = text_.size();
    size_t j = start;
    while (j < n && IsDigit(text_[j])) ++j;
    bool decimal = false;
    if (j + 1 < n && text_[j] == '.' && IsDigit(text_[j + 1])) {
      decimal = true;
      j += 1;
      while (j < n && IsDigit(text_[j])) ++j;
    }
    if (j < n && (text_[j] == 'e' || text_[j] == 'E')) {
      size_t k = j + 1;
      if (k < n && (text_[k] == '+' || text_[k] == '-')) ++k;
      if (k < n && IsDigit(text_[k])) {
        decimal = true;
        j = k;
        while (j < n && IsDigit(text_[j])) ++j;
      }
    }
    if (j < n && IsIdentChar(text_[j])) {
      // Letters glued to a number: a duration, or a malformed one.
      size_t end = j;
      while (end < n && IsIdentChar(text_[end])) ++end;
      std::string_view word = text_.substr(start, end - start);
      Token& t = Push(Tok::kDuration, start, end - start);
      std::optional<Duration> d = decimal ? std::nullopt : ParseDuration(word);
      if (d) {
        t.ms = d->ms;
      } else {
        t.bad = true;
        std::string message = "`" + std::string(word) + "` is not a valid duration";
        std::string hint(kDurationHint);
        if (decimal) hint += "; use whole numbers (36h rather than 1.5d)";
        diagnostics_->push_back(MakeDiagnostic(Code::kBadDuration, start, std::move(message), std::move(hint)));
      }
      *io = end;
      return true;
    }
    std::string_view digits = text_.substr(start, j - start);
    double value = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || ptr != digits.data() + digits.size()) {
      return Fail(start, "number `" + std::string(digits) + "` is out of range");
    }
    Token& t = Push(Tok::kNumber, start, j - start);
    t.number = value;
    *io = j;
    return true;
  }

  bool LexString(size_t* io) {
    const size_t start = *io;
    const size_t n = text_.size();
    const char quote = text_[start];
    std::string value;
    size_t j = start + 1;
    while (true) {
      if (j >= n) return Fail(start, "unterminated string", std::string("close it with ") + quote);
      const char c = text_[j];
      if (c == quote) {
        ++j;
        break;
      }
      if (c == '\\') {
        if (j + 1 >= n) return Fail(start, "unterminated string", std::string("close it with ") + quote);
        const char e = text_[j + 1];
        switch (e) {
          case '\\': value += '\\'; break;
          case '\'': value += '\''; break;
          case '"': value += '"'; break;
          case 'n': value += '\n'; break;
          case 't': value += '\t'; break;
          default:
            return Fail(j, "unknown escape `\\" + std::string(1, e) + "` in a string",
                        "the escapes are \\\\ \\' \\\" \\n \\t");
        }
        j += 2;
        continue;
      }
      value += c;
      ++j;
    }
    Token& t = Push(Tok::kString, start, j - start);
    t.str = std::move(value);
    *io = j;
    return true;
  }

  bool LexPunctuation(size_t* io) {
    const size_t i = *io;
    const size_t n = text_.size();
    const char c = text_[i];
    const char next = i + 1 < n ? text_[i + 1] : '\0';
    Tok kind;
    size_t len = 1;
    switch (c) {
      case '(': kind = Tok::kLParen; break;
      case ')': kind = Tok::kRParen; break;
      case '[': kind = Tok::kLBracket; break;
      case ']': kind = Tok::kRBracket; break;
      case ',': kind = Tok::kComma; break;
      case '.': kind = Tok::kDot; break;
      case '+': kind = Tok::kPlus; break;
      case '-': kind = Tok::kMinus; break;
      case '*': kind = Tok::kStar; break;
      case '/': kind = Tok::kSlash; break;
      case '%': kind = Tok::kPercent; break;
      case '=':
        if (next != '=') return Fail(i, "unexpected `=`", "use `==` to compare");
        kind = Tok::kEq;
        len = 2;
        break;
      case '!':
        if (next != '=') return Fail(i, "unexpected `!`", "use `not`");
        kind = Tok::kNe;
        len = 2;
        break;
      case '<':
        if (next == '>') return Fail(i, "unexpected `<>`", "use `!=`");
        kind = next == '=' ? Tok::kLe : Tok::kLt;
        len = next == '=' ? 2 : 1;
        break;
      case '>':
        kind = next == '=' ? Tok::kGe : Tok::kGt;
        len = next == '=' ? 2 : 1;
        break;
      case '&':
        return Fail(i, next == '&' ? "unexpected `&&`" : "unexpected `&`", "use `and`");
      case '|':
        return Fail(i, next == '|' ? "unexpected `||`" : "unexpected `|`", "use `or`");
      default: {
        const auto u = static_cast<unsigned char>(c);
        // Typographic quotes, as pasted from a word processor: U+2018/2019/201C/201D.
        if (u == 0xE2 && i + 2 < n && static_cast<unsigned char>(text_[i + 1]) == 0x80) {
          const auto u3 = static_cast<unsigned char>(text_[i + 2]);
          if (u3 == 0x98 || u3 == 0x99 || u3 == 0x9C || u3 == 0x9D) {
            return Fail(i, "unexpected `" + std::string(text_.substr(i, 3)) + "`",
                        "use straight quotes, ' or \"");
          }
        }
        if (u >= 0x21 && u < 0x7F) return Fail(i, "unexpected character `" + std::string(1, c) + "`");
        // A whole UTF-8 sequence when there is one, else the byte in hex.
        size_t len8 = u >= 0xF0 ? 4 : u >= 0xE0 ? 3 : u >= 0xC0 ? 2 : 0;
        if (len8 != 0 && i + len8 <= n) {
          return Fail(i, "unexpected character `" + std::string(text_.substr(i, len8)) + "`");
        }
        static constexpr char kHex[] = "0123456789abcdef";
        std::string hex = "0x";
        hex += kHex[u >> 4];
        hex += kHex[u & 15];
        return Fail(i, "unexpected byte " + hex);
      }
    }
    Push(kind, i, len);
    *io = i + len;
    return true;
  }

  std::string_view text_;
  std::vector<Token>* out_;
  Diagnostics* diagnostics_;
};

}  // namespace

bool IsWord(Tok kind) {
  switch (kind) {
    case Tok::kIdent:
    case Tok::kAnd:
    case Tok::kOr:
    case Tok::kNot:
    case Tok::kIn:
    case Tok::kTrue:
    case Tok::kFalse:
    case Tok::kNull:
      return true;
    default:
      return false;
  }
}

Diagnostic MakeDiagnostic(Code code, size_t pos, std::string message, std::string hint) {
  Diagnostic d;
  d.severity = Severity::kError;
  d.code = code;
  d.line = 1;
  d.column = static_cast<int>(pos) + 1;
  d.message = std::move(message);
  d.hint = std::move(hint);
  return d;
}

bool Lex(std::string_view text, std::vector<Token>* out, Diagnostics* diagnostics) {
  return Lexer(text, out, diagnostics).Run();
}

}  // namespace rapport::rules::expr_internal

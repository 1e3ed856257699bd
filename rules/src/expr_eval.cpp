// Evaluation of compiled expressions, and the value helpers of expr.h.
//
// Nothing here allocates except Scratch::NewString() (and only until the
// scratch's buffers have grown): literals live in the node tree, event and
// customer strings are views, and strings made at run time go to the Scratch.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "expr_internal.h"
#include "rapport/engine/time.h"

namespace rapport::rules {

std::string* Scratch::NewString() {
  if (used_ == strings_.size()) strings_.emplace_back();  // deque: earlier strings stay put
  std::string* s = &strings_[used_++];
  s->clear();  // keeps the capacity
  return s;
}

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kAny: return "any";
    case Type::kNull: return "null";
    case Type::kBool: return "bool";
    case Type::kNumber: return "number";
    case Type::kString: return "string";
    case Type::kTime: return "time";
    case Type::kDuration: return "duration";
  }
  return "?";
}

// Equality by the rules of `==`:
//  - unknown when either side is unknown;
//  - when either side is null, true exactly when both are (a plain `==` with a
//    non-literal null; `x == null` written out is a presence test instead);
//  - values of different kinds are unknown, not false: the compiler rejects
//    every mismatch it can see, so a kind mismatch at run time means an `any`
//    (an event field) turned out to be of the wrong kind, which the language
//    treats as unknown everywhere (a string "5" vs the number 5 is unknown);
//  - otherwise the values are compared: numbers numerically, strings bytewise,
//    times and durations by milliseconds.
Value Equals(const Value& a, const Value& b) {
  if (a.kind == Kind::kUnknown || b.kind == Kind::kUnknown) return Value::Unknown();
  if (a.kind == Kind::kNull || b.kind == Kind::kNull) return Value::Bool(a.kind == b.kind);
  if (a.kind != b.kind) return Value::Unknown();
  switch (a.kind) {
    case Kind::kBool: return Value::Bool(a.boolean == b.boolean);
    case Kind::kNumber: return Value::Bool(a.number == b.number);
    case Kind::kString: return Value::Bool(a.string == b.string);
    case Kind::kTime:
    case Kind::kDuration: return Value::Bool(a.ms == b.ms);
    default: return Value::Unknown();
  }
}

void AppendAsText(const Value& value, std::string* out) {
  switch (value.kind) {
    case Kind::kUnknown:
    case Kind::kNull:
      return;
    case Kind::kBool:
      out->append(value.boolean ? "true" : "false");
      return;
    case Kind::kNumber: {
      const double n = value.number;
      if (!std::isfinite(n)) return;
      char buf[512];
      std::to_chars_result r;
      if (n == std::trunc(n) && std::fabs(n) < 1e18) {
        // Integers without ".0" or an exponent (1000000, not 1e+06).
        r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(n));
      } else if (std::fabs(n) >= 1e-6 && std::fabs(n) < 1e21) {
        r = std::to_chars(buf, buf + sizeof buf, n, std::chars_format::fixed);
      } else {
        r = std::to_chars(buf, buf + sizeof buf, n);
      }
      if (r.ec == std::errc()) out->append(buf, r.ptr);
      return;
    }
    case Kind::kString:
      out->append(value.string);
      return;
    case Kind::kTime: {
      char buf[kRfc3339Length];
      FormatRfc3339(EventTime{value.ms}, buf);
      out->append(buf, kRfc3339Length);
      return;
    }
    case Kind::kDuration:
      out->append(FormatDuration(Duration{value.ms}));
      return;
  }
}

namespace expr_internal {
namespace {

// A number result: non-finite values (overflow) are unknown.
Value Num(double n) { return std::isfinite(n) ? Value::Number(n) : Value::Unknown(); }

// A duration from a computed number of milliseconds; unknown when out of range.
Value DurFromDouble(double ms) {
  if (!std::isfinite(ms) || std::fabs(ms) >= 9.2e18) return Value::Unknown();
  return Value::Dur(Duration{std::llround(ms)});
}

// The result of an ordering comparison; nullopt when it is unknown.
std::optional<int> Compare(const Value& a, const Value& b) {
  if (a.kind != b.kind) return std::nullopt;
  switch (a.kind) {
    case Kind::kNumber:
      if (a.number < b.number) return -1;
      if (a.number > b.number) return 1;
      if (a.number == b.number) return 0;
      return std::nullopt;  // NaN
    case Kind::kString: {
      int c = a.string.compare(b.string);  // bytewise, as unsigned char
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    case Kind::kTime:
    case Kind::kDuration:
      return a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : 0;
    default:
      return std::nullopt;
  }
}

// Mirrors ArithConcrete() in expr_parser.cpp.
Value Arithmetic(Op op, const Value& a, const Value& b, Scratch& scratch) {
  if (!a.IsPresent() || !b.IsPresent()) return Value::Unknown();
  const Kind ka = a.kind;
  const Kind kb = b.kind;
  int64_t ms = 0;
  if (ka == Kind::kNumber && kb == Kind::kNumber) {
    switch (op) {
      case Op::kAdd: return Num(a.number + b.number);
      case Op::kSub: return Num(a.number - b.number);
      case Op::kMul: return Num(a.number * b.number);
      case Op::kDiv: return b.number == 0 ? Value::Unknown() : Num(a.number / b.number);
      case Op::kMod: return b.number == 0 ? Value::Unknown() : Num(std::fmod(a.number, b.number));
      default: return Value::Unknown();
    }
  }
  switch (op) {
    case Op::kAdd:
      if (ka == Kind::kString && kb == Kind::kString) {
        std::string* s = scratch.NewString();
        s->reserve(a.string.size() + b.string.size());
        s->append(a.string);
        s->append(b.string);
        return Value::String(*s);
      }
      if ((ka == Kind::kTime && kb == Kind::kDuration) || (ka == Kind::kDuration && kb == Kind::kTime)) {
        if (__builtin_add_overflow(a.ms, b.ms, &ms)) return Value::Unknown();
        return Value::Time(EventTime{ms});
      }
      if (ka == Kind::kDuration && kb == Kind::kDuration) {
        if (__builtin_add_overflow(a.ms, b.ms, &ms)) return Value::Unknown();
        return Value::Dur(Duration{ms});
      }
      return Value::Unknown();
    case Op::kSub:
      if (ka == Kind::kTime && kb == Kind::kDuration) {
        if (__builtin_sub_overflow(a.ms, b.ms, &ms)) return Value::Unknown();
        return Value::Time(EventTime{ms});
      }
      if ((ka == Kind::kTime && kb == Kind::kTime) || (ka == Kind::kDuration && kb == Kind::kDuration)) {
        if (__builtin_sub_overflow(a.ms, b.ms, &ms)) return Value::Unknown();
        return Value::Dur(Duration{ms});
      }
      return Value::Unknown();
    case Op::kMul:
      if (ka == Kind::kDuration && kb == Kind::kNumber) return DurFromDouble(static_cast<double>(a.ms) * b.number);
      if (ka == Kind::kNumber && kb == Kind::kDuration) return DurFromDouble(a.number * static_cast<double>(b.ms));
      return Value::Unknown();
    case Op::kDiv:
      if (ka == Kind::kDuration && kb == Kind::kNumber) {
        return b.number == 0 ? Value::Unknown() : DurFromDouble(static_cast<double>(a.ms) / b.number);
      }
      if (ka == Kind::kDuration && kb == Kind::kDuration) {
        return b.ms == 0 ? Value::Unknown() : Num(static_cast<double>(a.ms) / static_cast<double>(b.ms));
      }
      return Value::Unknown();
    default:
      return Value::Unknown();
  }
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

bool IsAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// lower()/upper() on ASCII letters; the input itself when nothing changes.
Value ChangeCase(const Value& v, bool upper, Scratch& scratch) {
  if (v.kind != Kind::kString) return Value::Unknown();
  const char from = upper ? 'a' : 'A';
  const char to = upper ? 'A' : 'a';
  auto needs = [&](char c) { return c >= from && c <= from + 25; };
  size_t i = 0;
  while (i < v.string.size() && !needs(v.string[i])) ++i;
  if (i == v.string.size()) return v;
  std::string* s = scratch.NewString();
  s->assign(v.string);
  for (char& c : *s) {
    if (needs(c)) c = static_cast<char>(c - from + to);
  }
  return Value::String(*s);
}

Value Call(const Node& n, const EvalContext& ctx, Scratch& scratch) {
  auto arg = [&](size_t i) { return Eval(n.kids[i], ctx, scratch); };
  switch (n.fn) {
    case Fn::kLower:
      return ChangeCase(arg(0), false, scratch);
    case Fn::kUpper:
      return ChangeCase(arg(0), true, scratch);
    case Fn::kTrim: {
      Value v = arg(0);
      if (v.kind != Kind::kString) return Value::Unknown();
      std::string_view s = v.string;
      while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
      while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
      return Value::String(s);
    }
    case Fn::kLen: {
      Value v = arg(0);
      if (v.kind != Kind::kString) return Value::Unknown();
      size_t count = 0;  // UTF-8 code points: every byte that is not a continuation byte
      for (char c : v.string) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      return Value::Number(static_cast<double>(count));
    }
    case Fn::kContains:
    case Fn::kStartsWith:
    case Fn::kEndsWith: {
      Value s = arg(0);
      Value p = arg(1);
      if (s.kind != Kind::kString || p.kind != Kind::kString) return Value::Unknown();
      if (n.fn == Fn::kContains) return Value::Bool(s.string.find(p.string) != std::string_view::npos);
      if (n.fn == Fn::kStartsWith) return Value::Bool(s.string.starts_with(p.string));
      return Value::Bool(s.string.ends_with(p.string));
    }
    case Fn::kAbs:
    case Fn::kFloor:
    case Fn::kCeil: {
      Value v = arg(0);
      if (v.kind != Kind::kNumber) return Value::Unknown();
      if (n.fn == Fn::kAbs) return Value::Number(std::fabs(v.number));
      if (n.fn == Fn::kFloor) return Value::Number(std::floor(v.number));
      return Value::Number(std::ceil(v.number));
    }
    case Fn::kRound: {
      Value v = arg(0);
      if (v.kind != Kind::kNumber) return Value::Unknown();
      if (n.kids.size() == 1) return Value::Number(std::round(v.number));  // half away from zero
      Value d = arg(1);
      if (d.kind != Kind::kNumber || d.number != std::trunc(d.number) || std::fabs(d.number) > 15) {
        return Value::Unknown();
      }
      const double scale = std::pow(10.0, d.number);
      const double scaled = v.number * scale;
      if (!std::isfinite(scaled)) return v;  // too large to have those digits
      return Num(std::round(scaled) / scale);
    }
    case Fn::kMin:
    case Fn::kMax: {
      Value best = arg(0);
      if (best.kind != Kind::kNumber && best.kind != Kind::kDuration && best.kind != Kind::kTime) {
        return Value::Unknown();
      }
      for (size_t i = 1; i < n.kids.size(); ++i) {
        Value v = arg(i);
        std::optional<int> c = Compare(v, best);
        if (!c) return Value::Unknown();
        if (n.fn == Fn::kMin ? *c < 0 : *c > 0) best = v;
      }
      return best;
    }
    case Fn::kExists:
      return Value::Bool(arg(0).IsPresent());
    case Fn::kCoalesce:
      for (size_t i = 0; i < n.kids.size(); ++i) {
        Value v = arg(i);
        if (v.IsPresent()) return v;
      }
      return Value::Unknown();
    case Fn::kString: {
      Value v = arg(0);
      if (!v.IsPresent()) return Value::Unknown();
      if (v.kind == Kind::kString) return v;
      std::string* s = scratch.NewString();
      AppendAsText(v, s);
      return Value::String(*s);
    }
    case Fn::kTime: {
      Value v = arg(0);
      switch (v.kind) {
        case Kind::kTime:
          return v;
        case Kind::kString: {
          std::optional<EventTime> t = ParseRfc3339(v.string);
          return t ? Value::Time(*t) : Value::Unknown();
        }
        case Kind::kNumber:
          if (!std::isfinite(v.number) || std::fabs(v.number) >= 9.2e18) return Value::Unknown();
          return Value::Time(EventTime{static_cast<int64_t>(v.number)});  // truncates sub-ms
        default:
          return Value::Unknown();
      }
    }
    case Fn::kNow:
      return Value::Time(ctx.Now());
    case Fn::kDays:
    case Fn::kHours:
    case Fn::kMinutes: {
      Value v = arg(0);
      if (v.kind != Kind::kDuration) return Value::Unknown();
      const int64_t unit = n.fn == Fn::kDays ? kMsPerDay : n.fn == Fn::kHours ? kMsPerHour : kMsPerMinute;
      return Value::Number(static_cast<double>(v.ms) / static_cast<double>(unit));
    }
    case Fn::kDaysSince: {
      Value v = arg(0);
      if (v.kind != Kind::kTime) return Value::Unknown();
      const double diff = static_cast<double>(ctx.Now().ms) - static_cast<double>(v.ms);
      return Value::Number(diff / static_cast<double>(kMsPerDay));
    }
    case Fn::kHourOfDay: {
      Value v = arg(0);
      if (v.kind != Kind::kTime) return Value::Unknown();
      const int64_t in_day = v.ms - FloorDiv(v.ms, kMsPerDay) * kMsPerDay;
      return Value::Number(static_cast<double>(in_day / kMsPerHour));
    }
    case Fn::kDayOfWeek: {
      Value v = arg(0);
      if (v.kind != Kind::kTime) return Value::Unknown();
      const int64_t days = FloorDiv(v.ms, kMsPerDay);  // 1970-01-01 was a Thursday (ISO 4)
      return Value::Number(static_cast<double>(((days % 7) + 7 + 3) % 7 + 1));
    }
    case Fn::kDate: {
      Value v = arg(0);
      if (v.kind != Kind::kTime) return Value::Unknown();
      char buf[kRfc3339Length];
      FormatRfc3339(EventTime{v.ms}, buf);  // clamps to years 0001-9999
      std::string* s = scratch.NewString();
      s->assign(buf, 10);
      return Value::String(*s);
    }
    case Fn::kCoupon: {
      Value prefix = arg(0);
      if (prefix.kind != Kind::kString) return Value::Unknown();
      return Value::String(ctx.Coupon(prefix.string, scratch));
    }
  }
  return Value::Unknown();
}

}  // namespace

Value Eval(const Node& n, const EvalContext& ctx, Scratch& scratch) {
  switch (n.op) {
    case Op::kLiteral:
      return n.literal;
    case Op::kString:
      return Value::String(n.text);
    case Op::kEvent:
      return ctx.EventField(n.path);
    case Op::kCustomer:
      return ctx.CustomerField(n.field);
    case Op::kAnd: {
      // Kleene: false wins, then unknown; non-booleans count as unknown.
      Value a = Eval(n.kids[0], ctx, scratch);
      if (a.kind == Kind::kBool && !a.boolean) return Value::Bool(false);
      Value b = Eval(n.kids[1], ctx, scratch);
      if (b.kind == Kind::kBool && !b.boolean) return Value::Bool(false);
      if (a.IsTrue() && b.IsTrue()) return Value::Bool(true);
      return Value::Unknown();
    }
    case Op::kOr: {
      Value a = Eval(n.kids[0], ctx, scratch);
      if (a.IsTrue()) return Value::Bool(true);
      Value b = Eval(n.kids[1], ctx, scratch);
      if (b.IsTrue()) return Value::Bool(true);
      if (a.kind == Kind::kBool && b.kind == Kind::kBool) return Value::Bool(false);
      return Value::Unknown();
    }
    case Op::kNot: {
      Value a = Eval(n.kids[0], ctx, scratch);
      return a.kind == Kind::kBool ? Value::Bool(!a.boolean) : Value::Unknown();
    }
    case Op::kEq:
      return Equals(Eval(n.kids[0], ctx, scratch), Eval(n.kids[1], ctx, scratch));
    case Op::kNe: {
      Value e = Equals(Eval(n.kids[0], ctx, scratch), Eval(n.kids[1], ctx, scratch));
      return e.kind == Kind::kBool ? Value::Bool(!e.boolean) : e;
    }
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      Value a = Eval(n.kids[0], ctx, scratch);
      Value b = Eval(n.kids[1], ctx, scratch);
      if (!a.IsPresent() || !b.IsPresent()) return Value::Unknown();
      std::optional<int> c = Compare(a, b);
      if (!c) return Value::Unknown();
      switch (n.op) {
        case Op::kLt: return Value::Bool(*c < 0);
        case Op::kLe: return Value::Bool(*c <= 0);
        case Op::kGt: return Value::Bool(*c > 0);
        default: return Value::Bool(*c >= 0);
      }
    }
    case Op::kIsNull:
      return Value::Bool(!Eval(n.kids[0], ctx, scratch).IsPresent());
    case Op::kIsNotNull:
      return Value::Bool(Eval(n.kids[0], ctx, scratch).IsPresent());
    case Op::kIn:
    case Op::kNotIn: {
      Value x = Eval(n.kids[0], ctx, scratch);
      if (!x.IsPresent()) return Value::Unknown();
      bool saw_unknown = false;
      for (size_t i = 1; i < n.kids.size(); ++i) {
        Value e = Equals(x, Eval(n.kids[i], ctx, scratch));
        if (e.IsTrue()) return Value::Bool(n.op == Op::kIn);
        if (e.kind != Kind::kBool) saw_unknown = true;
      }
      if (saw_unknown) return Value::Unknown();
      return Value::Bool(n.op == Op::kNotIn);
    }
    case Op::kAdd:
    case Op::kSub:
    case Op::kMul:
    case Op::kDiv:
    case Op::kMod: {
      Value a = Eval(n.kids[0], ctx, scratch);
      Value b = Eval(n.kids[1], ctx, scratch);
      return Arithmetic(n.op, a, b, scratch);
    }
    case Op::kNeg: {
      Value a = Eval(n.kids[0], ctx, scratch);
      if (a.kind == Kind::kNumber) return Value::Number(-a.number);
      if (a.kind == Kind::kDuration && a.ms != INT64_MIN) return Value::Dur(Duration{-a.ms});
      return Value::Unknown();
    }
    case Op::kCall:
      return Call(n, ctx, scratch);
  }
  return Value::Unknown();
}

}  // namespace expr_internal
}  // namespace rapport::rules

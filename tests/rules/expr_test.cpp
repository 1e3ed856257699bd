// Tests of the expression language: parsing, static typing, evaluation with
// three-valued logic, functions, and diagnostics.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/engine/time.h"
#include "rapport/rules/diagnostic.h"
#include "rapport/rules/expr.h"
#include "rapport/rules/suggest.h"

namespace rapport::rules {
namespace {

EventTime T(std::string_view rfc3339) {
  std::optional<EventTime> t = ParseRfc3339(rfc3339);
  REQUIRE(t.has_value());
  return *t;
}

constexpr uint32_t kVisits = 1;
constexpr uint32_t kTotalSpent = 2;
constexpr uint32_t kLastVisit = 3;
constexpr uint32_t kStage = 4;
constexpr uint32_t kEmail = 5;

class TestScope : public Scope {
 public:
  std::optional<CustomerFieldRef> ResolveCustomer(std::string_view name, std::string* hint) const override {
    auto it = fields_.find(std::string(name));
    if (it != fields_.end()) return it->second;
    for (const auto& [n, ref] : fields_) {
      if (EditDistance(name, n) <= 2) {
        *hint = "did you mean `customer." + n + "`?";
        break;
      }
    }
    return std::nullopt;
  }
  bool EventAvailable(std::string* why) const override {
    if (!event_available) *why = "no event is in hand when a delay ends";
    return event_available;
  }
  bool CouponAvailable() const override { return coupon_available; }

  bool event_available = true;
  bool coupon_available = true;

 private:
  std::map<std::string, CustomerFieldRef> fields_ = {
      {"visits", {kVisits, Type::kNumber}},       {"total_spent", {kTotalSpent, Type::kNumber}},
      {"last_visit", {kLastVisit, Type::kTime}},  {"stage", {kStage, Type::kString}},
      {"email", {kEmail, Type::kString}},
  };
};

class TestContext : public EvalContext {
 public:
  Value EventField(std::span<const std::string> path) const override {
    std::string key;
    for (const std::string& p : path) {
      if (!key.empty()) key += '.';
      key += p;
    }
    auto it = event.find(key);
    return it == event.end() ? Value::Unknown() : it->second;
  }
  Value CustomerField(uint32_t id) const override {
    auto it = customer.find(id);
    return it == customer.end() ? Value::Unknown() : it->second;
  }
  EventTime Now() const override { return now; }
  std::string_view Coupon(std::string_view prefix, Scratch& scratch) const override {
    std::string* s = scratch.NewString();
    *s = "C-";
    s->append(prefix);
    return *s;
  }

  std::map<std::string, Value> event;
  std::map<uint32_t, Value> customer;
  EventTime now;
};

// Compiles and evaluates; keeps compiled expressions alive for string results.
struct Harness {
  Harness() {
    ctx.now = T("2026-01-05T10:30:00Z");  // a Monday
    ctx.customer[kVisits] = Value::Number(3);
    ctx.customer[kTotalSpent] = Value::Number(120.5);
    ctx.customer[kLastVisit] = Value::Time(T("2026-01-01T00:00:00Z"));  // a Thursday
    ctx.customer[kStage] = Value::String("Regular");
    ctx.customer[kEmail] = Value::String("  Ann@Example.COM ");
    ctx.event["amount"] = Value::Number(42);
    ctx.event["country"] = Value::String("DE");
    ctx.event["utm-source"] = Value::String("newsletter");
    ctx.event["item.sku"] = Value::String("SKU-1");
    ctx.event["note"] = Value::Null();
    ctx.event["text_number"] = Value::String("5");
  }

  Value Eval(std::string_view text, Type expected = Type::kAny) {
    CompileOutput out = Compile(text, scope, expected);
    INFO("expression: " << text);
    for (const Diagnostic& d : out.diagnostics) FAIL_CHECK("unexpected diagnostic: " << d.ToString());
    REQUIRE(out.expr != nullptr);
    Value v = out.expr->Eval(ctx, scratch);
    exprs.push_back(std::move(out.expr));
    return v;
  }

  Type TypeOf(std::string_view text) {
    CompileOutput out = Compile(text, scope, Type::kAny);
    INFO("expression: " << text);
    REQUIRE(out.expr != nullptr);
    return out.expr->type();
  }

  Diagnostics Errors(std::string_view text, Type expected = Type::kAny) {
    CompileOutput out = Compile(text, scope, expected);
    INFO("expression: " << text);
    CHECK(out.expr == nullptr);
    CHECK(HasErrors(out.diagnostics));
    for (const Diagnostic& d : out.diagnostics) {
      CHECK(d.line == 1);
      CHECK(d.file.empty());
    }
    return out.diagnostics;
  }

  // The one error of `text`.
  Diagnostic Error(std::string_view text, Type expected = Type::kAny) {
    Diagnostics ds = Errors(text, expected);
    std::string all;
    for (const Diagnostic& d : ds) all += d.ToString() + "\n";
    INFO("expression: " << text << "\ndiagnostics:\n" << all);
    REQUIRE(ds.size() == 1);
    return ds[0];
  }

  bool True(std::string_view text) { return Eval(text).IsTrue(); }
  bool False(std::string_view text) {
    Value v = Eval(text);
    return v.kind == Kind::kBool && !v.boolean;
  }
  bool Unknown(std::string_view text) { return Eval(text).kind == Kind::kUnknown; }
  double Number(std::string_view text) {
    Value v = Eval(text);
    INFO("expression: " << text);
    REQUIRE(v.kind == Kind::kNumber);
    return v.number;
  }
  std::string String(std::string_view text) {
    Value v = Eval(text);
    INFO("expression: " << text);
    REQUIRE(v.kind == Kind::kString);
    return std::string(v.string);
  }
  int64_t Ms(std::string_view text, Kind kind) {
    Value v = Eval(text);
    INFO("expression: " << text);
    REQUIRE(v.kind == kind);
    return v.ms;
  }
  int64_t DurationMs(std::string_view text) { return Ms(text, Kind::kDuration); }
  int64_t TimeMs(std::string_view text) { return Ms(text, Kind::kTime); }

  TestScope scope;
  TestContext ctx;
  Scratch scratch;
  std::vector<std::unique_ptr<Expr>> exprs;
};

// ---------------------------------------------------------------- parsing ---

TEST_CASE("literals", "[expr]") {
  Harness h;
  CHECK(h.Number("12") == 12);
  CHECK(h.Number("12.5") == 12.5);
  CHECK(h.Number("1e3") == 1000);
  CHECK(h.Number("2.5E-1") == 0.25);
  CHECK(h.DurationMs("30d") == 30 * kMsPerDay);
  CHECK(h.DurationMs("1d12h") == 36 * kMsPerHour);
  CHECK(h.DurationMs("500ms") == 500);
  CHECK(h.DurationMs("2w") == 14 * kMsPerDay);
  CHECK(h.DurationMs("90m") == 90 * kMsPerMinute);
  CHECK(h.DurationMs("-30s") == -30 * kMsPerSecond);
  CHECK(h.String("'it\\'s'") == "it's");
  CHECK(h.String(R"("say \"hi\"\n\tand \\ bye")") == "say \"hi\"\n\tand \\ bye");
  CHECK(h.String("\"single ' inside\"") == "single ' inside");
  CHECK(h.True("true"));
  CHECK(h.False("false"));
  CHECK(h.Eval("null").kind == Kind::kNull);
  CHECK(h.TypeOf("null") == Type::kNull);
}

TEST_CASE("precedence and associativity", "[expr]") {
  Harness h;
  CHECK(h.Number("1 + 2 * 3") == 7);
  CHECK(h.Number("(1 + 2) * 3") == 9);
  CHECK(h.Number("10 - 4 - 3") == 3);
  CHECK(h.Number("24 / 4 / 2") == 3);
  CHECK(h.Number("2 * 7 % 4") == 2);
  CHECK(h.Number("-2 * 3") == -6);
  CHECK(h.Number("- (2 + 3) * 2") == -10);
  CHECK(h.Number("--4") == 4);
  CHECK(h.Number("1 - -1") == 2);
  // Comparisons bind tighter than `not`, which binds tighter than `and`, then `or`.
  CHECK(h.True("1 + 2 == 3 and 2 < 3 or false"));
  CHECK(h.True("not 1 == 2"));
  CHECK(h.True("true or false and false"));
  CHECK(h.False("(true or false) and false"));
  CHECK(h.True("not false and true"));
  CHECK(h.False("not (false or true)"));
  CHECK(h.True("not not true"));
  CHECK(h.True("customer.visits * 2 + 1 > 6"));
  CHECK(h.True("  customer.visits\n>\t2  "));
}

TEST_CASE("paths", "[expr]") {
  Harness h;
  CHECK(h.Number("event.amount") == 42);
  CHECK(h.String("event[\"utm-source\"]") == "newsletter");
  CHECK(h.String("event['utm-source']") == "newsletter");
  CHECK(h.String("event.item.sku") == "SKU-1");
  CHECK(h.String("event.item[\"sku\"]") == "SKU-1");
  CHECK(h.String("customer[\"stage\"]") == "Regular");
  CHECK(h.Unknown("event.missing"));
  CHECK(h.Unknown("event.in"));  // keywords may name a segment
  CHECK(h.TypeOf("event.amount") == Type::kAny);
  CHECK(h.TypeOf("customer.visits") == Type::kNumber);
  CHECK(h.TypeOf("customer.last_visit") == Type::kTime);
}

// -------------------------------------------------------------- operators ---

TEST_CASE("comparisons", "[expr]") {
  Harness h;
  CHECK(h.True("customer.visits == 3"));
  CHECK(h.False("customer.visits != 3"));
  CHECK(h.True("customer.visits < 4"));
  CHECK(h.True("customer.visits <= 3"));
  CHECK(h.False("customer.visits > 3"));
  CHECK(h.True("customer.visits >= 3"));
  CHECK(h.True("customer.stage == 'Regular'"));
  CHECK(h.True("'B' < 'a'"));        // bytewise
  CHECK(h.True("'z' < '\xC3\xA9'"));  // "é" sorts after ASCII
  CHECK(h.True("'abc' < 'abd'"));
  CHECK(h.True("'ab' < 'abc'"));
  CHECK(h.True("true == true"));
  CHECK(h.True("true != false"));
  CHECK(h.True("customer.last_visit < now()"));
  CHECK(h.True("customer.last_visit == time('2026-01-01T00:00:00Z')"));
  CHECK(h.True("1d == 24h"));
  CHECK(h.True("1d12h == 36h"));
  CHECK(h.True("90m > 1h"));
  CHECK(h.True("500ms < 1s"));
  CHECK(h.True("event.amount >= 42"));
  CHECK(h.True("event.country == 'DE'"));
  CHECK(h.TypeOf("1 < 2") == Type::kBool);
}

TEST_CASE("arithmetic on numbers and strings", "[expr]") {
  Harness h;
  CHECK(h.Number("7 % 3") == 1);
  CHECK(h.Number("-7 % 3") == -1);
  CHECK(h.Number("7 / 2") == 3.5);
  CHECK(h.Number("customer.total_spent - 0.5") == 120);
  CHECK(h.Unknown("1 / 0"));
  CHECK(h.Unknown("1 % 0"));
  CHECK(h.Unknown("customer.visits / (customer.visits - 3)"));
  CHECK(h.Unknown("1e308 * 10"));  // overflow
  CHECK(h.String("'a' + customer.stage + \"!\"") == "aRegular!");
  CHECK(h.Number("event.amount + 1") == 43);
  CHECK(h.Unknown("event.missing + 1"));
  CHECK(h.Unknown("event.note + 1"));         // null operand
  CHECK(h.Unknown("event.country * 2"));      // wrong kind at run time
  CHECK(h.TypeOf("event.amount + 'x'") == Type::kString);  // any + string can only be a concatenation
  CHECK(h.Unknown("event.amount + 'x'"));                  // ... and 42 is not a string
}

TEST_CASE("time and duration arithmetic", "[expr]") {
  Harness h;
  const int64_t now = h.ctx.now.ms;
  const int64_t last = T("2026-01-01T00:00:00Z").ms;
  CHECK(h.TimeMs("customer.last_visit + 1d") == last + kMsPerDay);
  CHECK(h.TimeMs("1d + customer.last_visit") == last + kMsPerDay);
  CHECK(h.TimeMs("now() - 30d") == now - 30 * kMsPerDay);
  CHECK(h.DurationMs("now() - customer.last_visit") == now - last);
  CHECK(h.DurationMs("1d + 12h") == 36 * kMsPerHour);
  CHECK(h.DurationMs("1d - 1h") == 23 * kMsPerHour);
  CHECK(h.DurationMs("1h * 3") == 3 * kMsPerHour);
  CHECK(h.DurationMs("1.5 * 1h") == 90 * kMsPerMinute);
  CHECK(h.DurationMs("1d / 4") == 6 * kMsPerHour);
  CHECK(h.Number("1d / 12h") == 2);
  CHECK(h.DurationMs("-(1h)") == -kMsPerHour);
  CHECK(h.DurationMs("-(2h - 3h)") == kMsPerHour);
  CHECK(h.Unknown("1d / 0"));
  CHECK(h.Unknown("1d / (1h - 1h)"));
  CHECK(h.True("customer.last_visit > now() - 7d"));
  CHECK(h.True("now() - customer.last_visit > 4d"));
  CHECK(h.True("now() - customer.last_visit < 5d"));

  CHECK(h.TypeOf("now() - customer.last_visit") == Type::kDuration);
  CHECK(h.TypeOf("now() + 1d") == Type::kTime);
  CHECK(h.TypeOf("1d / 1h") == Type::kNumber);
  CHECK(h.TypeOf("2 * 1h") == Type::kDuration);
  // `any` operands: inferred when only one result is possible.
  CHECK(h.TypeOf("event.amount + 1") == Type::kNumber);
  CHECK(h.TypeOf("event.x - now()") == Type::kDuration);
  CHECK(h.TypeOf("event.x + 1d") == Type::kAny);  // a time or a duration
  CHECK(h.TypeOf("event.x * 2") == Type::kAny);   // a number or a duration
  CHECK(h.TypeOf("event.x % 2") == Type::kNumber);
  CHECK(h.TypeOf("-event.x") == Type::kAny);
  CHECK(h.TypeOf("-customer.visits") == Type::kNumber);

  h.ctx.customer.erase(kLastVisit);  // never set: unknown
  CHECK(h.Unknown("customer.last_visit + 1d"));
  CHECK(h.Unknown("now() - customer.last_visit > 4d"));
}

TEST_CASE("three-valued logic", "[expr]") {
  Harness h;
  // An event without a coupon.
  CHECK(h.Unknown("event.coupon == 'X'"));
  CHECK(h.Unknown("not (event.coupon == 'X')"));
  CHECK_FALSE(h.Eval("not (event.coupon == 'X')").IsTrue());
  CHECK(h.Unknown("event.coupon != 'X'"));
  CHECK(h.True("event.coupon == null"));
  CHECK(h.True("null == event.coupon"));
  CHECK(h.False("event.coupon != null"));
  CHECK(h.True("event.coupon == 'X' or true"));
  CHECK(h.True("true or event.coupon == 'X'"));
  CHECK(h.Unknown("event.coupon == 'X' or false"));
  CHECK(h.False("event.coupon == 'X' and false"));
  CHECK(h.False("false and event.coupon == 'X'"));
  CHECK(h.Unknown("event.coupon == 'X' and true"));
  CHECK(h.Unknown("event.coupon == 'X' and event.other == 1"));
  CHECK(h.Unknown("event.coupon < 3"));

  // A JSON null counts as null for presence tests, and == null never yields unknown.
  CHECK(h.True("event.note == null"));
  CHECK(h.False("event.note != null"));
  CHECK(h.False("event.amount == null"));
  CHECK(h.True("event.amount != null"));
  CHECK(h.True("null == null"));
  CHECK(h.True("customer.visits != null"));
  h.ctx.customer.erase(kLastVisit);
  CHECK(h.True("customer.last_visit == null"));
  CHECK(h.Unknown("customer.last_visit < now()"));

  // Wrong kinds at run time are unknown.
  CHECK(h.Unknown("event.text_number == 5"));
  CHECK(h.Unknown("event.text_number < 5"));
  CHECK(h.Unknown("event.amount and true"));
  CHECK(h.Unknown("not event.amount"));
  CHECK(h.Unknown("event.amount or false"));
  CHECK(h.True("event.amount or true"));
  h.ctx.event["flag"] = Value::Bool(true);
  CHECK(h.False("not event.flag"));
  CHECK(h.True("event.flag and customer.visits > 1"));
}

TEST_CASE("in and not in", "[expr]") {
  Harness h;
  CHECK(h.True("event.country in ['DE', 'AT']"));
  CHECK(h.False("event.country in ['FR', 'IT']"));
  CHECK(h.False("event.country not in ['DE', 'AT']"));
  CHECK(h.True("event.country not in ['FR']"));
  CHECK(h.True("customer.visits in [1, 2, 3]"));
  CHECK(h.False("customer.visits in []"));
  CHECK(h.True("customer.visits in [1 + 1, 1 + 2]"));
  CHECK(h.Unknown("event.missing in ['DE']"));
  CHECK(h.Unknown("event.missing not in ['DE']"));
  CHECK(h.Unknown("event.note in ['DE']"));
  // A match wins over an unknown comparison; without a match, unknown stays.
  CHECK(h.True("event.country in [event.missing, 'DE']"));
  CHECK(h.Unknown("event.country in [event.missing, 'FR']"));
  CHECK(h.Unknown("event.country not in [event.missing, 'FR']"));
  CHECK(h.Unknown("event.amount in ['42']"));  // a number against a string: unknown
  CHECK(h.True("event.amount in ['42', 42]"));
  CHECK(h.True("not event.country in ['FR']"));
  CHECK(h.TypeOf("event.country in ['FR']") == Type::kBool);
}

// -------------------------------------------------------------- functions ---

TEST_CASE("string functions", "[expr]") {
  Harness h;
  CHECK(h.String("lower(customer.email)") == "  ann@example.com ");
  CHECK(h.String("upper(customer.email)") == "  ANN@EXAMPLE.COM ");
  CHECK(h.String("trim(customer.email)") == "Ann@Example.COM");
  CHECK(h.String("lower(trim(customer.email))") == "ann@example.com");
  CHECK(h.String("trim('   ')").empty());
  CHECK(h.Number("len('abc')") == 3);
  CHECK(h.Number("len('')") == 0);
  CHECK(h.Number("len('h\xC3\xA9llo')") == 5);  // code points, not bytes
  CHECK(h.True("contains(customer.email, 'Example')"));
  CHECK(h.False("contains(customer.email, 'example')"));
  CHECK(h.True("contains('abc', '')"));
  CHECK(h.True("starts_with(event.item.sku, 'SKU-')"));
  CHECK(h.False("starts_with('SK', 'SKU')"));
  CHECK(h.True("ends_with(trim(customer.email), '.COM')"));
  CHECK(h.False("ends_with('abc', 'b')"));
  CHECK(h.Unknown("lower(event.missing)"));
  CHECK(h.Unknown("lower(event.amount)"));  // wrong kind at run time
  CHECK(h.Unknown("len(event.note)"));
  CHECK(h.Unknown("contains(event.missing, 'a')"));
  CHECK(h.Unknown("starts_with('a', event.missing)"));
  CHECK(h.TypeOf("lower(event.x)") == Type::kString);
  CHECK(h.TypeOf("len(event.x)") == Type::kNumber);
  CHECK(h.TypeOf("contains(event.x, 'a')") == Type::kBool);
}

TEST_CASE("number functions", "[expr]") {
  Harness h;
  CHECK(h.Number("abs(-3.5)") == 3.5);
  CHECK(h.Number("abs(2)") == 2);
  CHECK(h.Number("round(2.5)") == 3);
  CHECK(h.Number("round(-2.5)") == -3);  // half away from zero
  CHECK(h.Number("round(2.4)") == 2);
  CHECK(h.Number("round(3.14159, 2)") == Approx(3.14));
  CHECK(h.Number("round(1234, -2)") == 1200);
  CHECK(h.Number("floor(2.7)") == 2);
  CHECK(h.Number("floor(-2.2)") == -3);
  CHECK(h.Number("ceil(2.1)") == 3);
  CHECK(h.Number("ceil(-2.7)") == -2);
  CHECK(h.Unknown("abs(event.missing)"));
  CHECK(h.Unknown("round(event.country)"));
  CHECK(h.Unknown("round(2.5, 0.5)"));
  CHECK(h.Unknown("round(2.5, event.missing)"));
}

TEST_CASE("min, max, exists, coalesce", "[expr]") {
  Harness h;
  CHECK(h.Number("min(3, 1, 2)") == 1);
  CHECK(h.Number("max(3, 1, 2)") == 3);
  CHECK(h.Number("max(customer.visits, event.amount)") == 42);
  CHECK(h.DurationMs("min(1d, 2h)") == 2 * kMsPerHour);
  CHECK(h.DurationMs("max(1d, 2h)") == kMsPerDay);
  CHECK(h.TimeMs("max(customer.last_visit, now())") == h.ctx.now.ms);
  CHECK(h.TimeMs("min(customer.last_visit, now())") == T("2026-01-01T00:00:00Z").ms);
  CHECK(h.Unknown("min(1, event.missing)"));
  CHECK(h.Unknown("max(1, event.country)"));
  CHECK(h.TypeOf("min(1, 2)") == Type::kNumber);
  CHECK(h.TypeOf("min(event.x, 1d)") == Type::kDuration);
  CHECK(h.TypeOf("max(event.x, event.y)") == Type::kAny);

  CHECK(h.True("exists(event.amount)"));
  CHECK(h.False("exists(event.missing)"));
  CHECK(h.False("exists(event.note)"));
  CHECK(h.False("exists(1 / 0)"));
  CHECK(h.True("exists(customer.last_visit)"));

  CHECK(h.Number("coalesce(event.missing, event.note, event.amount, 1)") == 42);
  CHECK(h.String("coalesce(event.missing, 'none')") == "none");
  CHECK(h.Unknown("coalesce(event.missing, event.note)"));
  CHECK(h.TypeOf("coalesce(customer.visits, 0)") == Type::kNumber);
  CHECK(h.TypeOf("coalesce(customer.visits, null)") == Type::kNumber);
  CHECK(h.TypeOf("coalesce(customer.visits, 'none')") == Type::kAny);
  CHECK(h.TypeOf("coalesce(event.x, 0)") == Type::kAny);
}

TEST_CASE("conversion and time functions", "[expr]") {
  Harness h;
  CHECK(h.String("string(10)") == "10");
  CHECK(h.String("string(12.5)") == "12.5");
  CHECK(h.String("string(true)") == "true");
  CHECK(h.String("string(30d)") == "30d");
  CHECK(h.String("string(customer.stage)") == "Regular");
  CHECK(h.String("string(customer.last_visit)") == "2026-01-01T00:00:00.000Z");
  CHECK(h.String("'visits: ' + string(customer.visits)") == "visits: 3");
  CHECK(h.Unknown("string(event.missing)"));

  CHECK(h.TimeMs("time('2026-01-05T12:00:00+02:00')") == T("2026-01-05T10:00:00Z").ms);
  CHECK(h.TimeMs("time(1000)") == 1000);
  CHECK(h.TimeMs("time(customer.last_visit)") == T("2026-01-01T00:00:00Z").ms);
  CHECK(h.Unknown("time('yesterday')"));
  CHECK(h.Unknown("time('2026-01-05T10:00:00')"));  // no zone
  CHECK(h.Unknown("time(event.missing)"));
  CHECK(h.TypeOf("time(event.x)") == Type::kTime);

  CHECK(h.TimeMs("now()") == h.ctx.now.ms);
  CHECK(h.Number("days(36h)") == 1.5);
  CHECK(h.Number("hours(90m)") == 1.5);
  CHECK(h.Number("minutes(90s)") == 1.5);
  CHECK(h.Number("days(now() - customer.last_visit)") == Approx(4.4375));
  CHECK(h.Number("days_since(customer.last_visit)") == Approx(4.4375));
  CHECK(h.Number("days_since(now() + 1d)") == -1);
  CHECK(h.Number("hour_of_day(now())") == 10);
  CHECK(h.Number("hour_of_day(customer.last_visit)") == 0);
  CHECK(h.Number("hour_of_day(time('1969-12-31T23:30:00Z'))") == 23);
  CHECK(h.Number("day_of_week(now())") == 1);                  // Monday
  CHECK(h.Number("day_of_week(customer.last_visit)") == 4);    // Thursday
  CHECK(h.Number("day_of_week(time('2026-01-04T23:59:59Z'))") == 7);  // Sunday
  CHECK(h.Number("day_of_week(time('1969-12-31T12:00:00Z'))") == 3);  // Wednesday
  CHECK(h.String("date(now())") == "2026-01-05");
  CHECK(h.String("date(customer.last_visit - 1ms)") == "2025-12-31");
  CHECK(h.Unknown("days(event.missing)"));
  CHECK(h.Unknown("days_since(event.country)"));
  CHECK(h.Unknown("date(event.missing)"));

  CHECK(h.String("coupon('WELCOME')") == "C-WELCOME");
  CHECK(h.String("'code: ' + coupon('X')") == "code: C-X");
  CHECK(h.Unknown("coupon(event.missing)"));
}

// ------------------------------------------------------------ diagnostics ---

TEST_CASE("syntax errors", "[expr][errors]") {
  Harness h;
  Diagnostic d = h.Error("");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.message == "empty expression");
  CHECK(d.column == 1);
  CHECK(h.Error("   ").message == "empty expression");

  d = h.Error("customer.visits > 1 && event.amount > 2");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 21);
  CHECK(d.hint == "use `and`");

  d = h.Error("true || false");
  CHECK(d.column == 6);
  CHECK(d.hint == "use `or`");

  d = h.Error("!true");
  CHECK(d.column == 1);
  CHECK(d.hint == "use `not`");

  d = h.Error("customer.visits = 3");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 17);
  CHECK(d.hint == "use `==` to compare");

  d = h.Error("customer.visits > 1 AND true");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 21);
  CHECK(d.hint == "use `and`");

  d = h.Error("(1 + 2");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 7);
  CHECK(d.message.find("expected `)`") != std::string::npos);

  d = h.Error("1 +");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 4);

  d = h.Error("1 < 2 < 3");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 7);
  CHECK(d.message.find("do not chain") != std::string::npos);

  d = h.Error("'abc");
  CHECK(d.message == "unterminated string");
  CHECK(d.column == 1);

  d = h.Error("'a\\qb'");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 3);

  d = h.Error("event.country in 'DE'");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 18);

  d = h.Error("1 2");
  CHECK(d.column == 3);
  CHECK(d.message == "unexpected `2`");

  d = h.Error("event.amount #");
  CHECK(d.column == 14);

  d = h.Error("event.5");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 7);

  d = h.Error("event[1]");
  CHECK(d.code == Code::kSyntax);
  CHECK(d.column == 7);

  std::string deep(200, '(');
  deep += "1";
  deep += std::string(200, ')');
  CHECK(h.Error(deep).code == Code::kSyntax);
}

TEST_CASE("bad durations", "[expr][errors]") {
  Harness h;
  Diagnostic d = h.Error("customer.last_visit < now() - 3x");
  CHECK(d.code == Code::kBadDuration);
  CHECK(d.column == 31);
  CHECK(d.hint == "durations look like 30d, 12h, 90m, 500ms");

  d = h.Error("now() - 30dd");
  CHECK(d.code == Code::kBadDuration);
  CHECK(d.column == 9);
  CHECK(d.message.find("`30dd`") != std::string::npos);
  CHECK(d.hint == "durations look like 30d, 12h, 90m, 500ms");

  d = h.Error("now() - 30days");
  CHECK(d.code == Code::kBadDuration);
  CHECK(d.column == 9);

  d = h.Error("now() - 30 days");
  CHECK(d.code == Code::kBadDuration);
  CHECK(d.column == 9);
  CHECK(d.message.find("`30d`") != std::string::npos);
  CHECK(d.hint == "durations look like 30d, 12h, 90m, 500ms");

  d = h.Error("1.5d");
  CHECK(d.code == Code::kBadDuration);
  CHECK(d.column == 1);

  // A bad duration causes no follow-up errors ...
  CHECK(h.Error("3x", Type::kBool).code == Code::kBadDuration);
  CHECK(h.Error("0x10", Type::kBool).code == Code::kBadDuration);
  CHECK(h.Error("-30 days", Type::kBool).code == Code::kBadDuration);
  CHECK(h.Error("now() - 30dd + 1", Type::kBool).code == Code::kBadDuration);

  // ... and does not stop the search for more errors.
  Diagnostics ds = h.Errors("now() - 3x > customer.visitz");
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].code == Code::kBadDuration);
  CHECK(ds[1].code == Code::kUnknownField);
}

TEST_CASE("unknown fields", "[expr][errors]") {
  Harness h;
  Diagnostic d = h.Error("customer.vists > 3");
  CHECK(d.code == Code::kUnknownField);
  CHECK(d.column == 1);
  CHECK(d.message == "unknown field `customer.vists`");
  CHECK(d.hint == "did you mean `customer.visits`?");

  d = h.Error("1 < customer.nothing_like_it");
  CHECK(d.code == Code::kUnknownField);
  CHECK(d.column == 5);
  CHECK(d.hint.empty());

  d = h.Error("customer.visits.count");
  CHECK(d.code == Code::kUnknownField);

  d = h.Error("customer + 1");
  CHECK(d.code == Code::kUnknownField);

  d = h.Error("event");
  CHECK(d.code == Code::kUnknownField);

  d = h.Error("amount > 3");
  CHECK(d.code == Code::kUnknownField);
  CHECK(d.column == 1);
  CHECK(d.message == "unknown field `amount`");
  CHECK(d.hint == "fields start with `event.` or `customer.`");

  d = h.Error("visits > 3");
  CHECK(d.hint == "did you mean `customer.visits`?");

  d = h.Error("now > customer.last_visit");
  CHECK(d.code == Code::kUnknownField);
  CHECK(d.hint == "did you mean `now()`?");

  d = h.Error("TRUE");
  CHECK(d.hint == "use `true`");
}

TEST_CASE("type mismatches", "[expr][errors]") {
  Harness h;
  Diagnostic d = h.Error("customer.visits == \"x\"");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 17);
  CHECK(d.message == "cannot compare number with string");

  d = h.Error("customer.last_visit < 5");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.message == "cannot compare time with number");

  d = h.Error("true < false");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 6);

  d = h.Error("customer.visits < null");
  CHECK(d.code == Code::kTypeMismatch);

  d = h.Error("customer.visits + 'x'");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 17);
  CHECK(d.message == "cannot apply `+` to number and string");

  d = h.Error("now() + 5");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.message == "cannot apply `+` to time and number");
  CHECK(d.hint == "add or subtract a duration, like 30d");

  CHECK(h.Error("1d - now()").code == Code::kTypeMismatch);
  CHECK(h.Error("now() + now()").code == Code::kTypeMismatch);
  CHECK(h.Error("1d % 2").code == Code::kTypeMismatch);
  CHECK(h.Error("2 / 1d").code == Code::kTypeMismatch);
  CHECK(h.Error("'a' * 2").code == Code::kTypeMismatch);
  CHECK(h.Error("event.x + true").code == Code::kTypeMismatch);  // nothing adds to a bool

  d = h.Error("-customer.stage");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 1);

  d = h.Error("customer.visits and true");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 1);
  CHECK(d.message.find("number") != std::string::npos);

  d = h.Error("not customer.stage");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 5);

  d = h.Error("customer.visits in [1, 'two']");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 24);

  d = h.Error("lower(customer.visits)");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 7);
  CHECK(d.message == "lower() needs a string, not a number");

  d = h.Error("days_since(customer.stage)");
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.hint == "turn text into a time with time(...)");

  CHECK(h.Error("min(1, 1d)").code == Code::kTypeMismatch);
  CHECK(h.Error("max('a', 1)").code == Code::kTypeMismatch);
  CHECK(h.Error("time(true)").code == Code::kTypeMismatch);
  CHECK(h.Error("days(5)").code == Code::kTypeMismatch);
  CHECK(h.Error("coupon(5)").code == Code::kTypeMismatch);
  CHECK(h.Error("[1, 2] == 1").code == Code::kTypeMismatch);
}

TEST_CASE("a condition must be a boolean", "[expr][errors]") {
  Harness h;
  Diagnostic d = h.Error("customer.visits + 1", Type::kBool);
  CHECK(d.code == Code::kTypeMismatch);
  CHECK(d.column == 1);
  CHECK(d.message == "a condition must be a boolean, this is a number");

  d = h.Error("customer.stage", Type::kBool);
  CHECK(d.message == "a condition must be a boolean, this is a string");

  // `any` passes the static check; bool passes.
  CHECK(Compile("event.flag", h.scope, Type::kBool).expr != nullptr);
  CHECK(Compile("customer.visits > 1", h.scope, Type::kBool).expr != nullptr);
  // Other expected types.
  CHECK(h.Error("customer.visits", Type::kString).code == Code::kTypeMismatch);
  CHECK(Compile("customer.stage", h.scope, Type::kString).expr != nullptr);
}

TEST_CASE("functions: unknown names and arity", "[expr][errors]") {
  Harness h;
  Diagnostic d = h.Error("lowr(customer.stage) == 'x'");
  CHECK(d.code == Code::kUnknownFunction);
  CHECK(d.column == 1);
  CHECK(d.message == "unknown function `lowr()`");
  CHECK(d.hint == "did you mean `lower()`?");

  d = h.Error("1 + startswith('a', 'b')");
  CHECK(d.code == Code::kUnknownFunction);
  CHECK(d.column == 5);
  CHECK(d.hint == "did you mean `starts_with()`?");

  d = h.Error("frobnicate(1)");
  CHECK(d.code == Code::kUnknownFunction);
  CHECK(d.hint.empty());

  d = h.Error("lower('a', 'b')");
  CHECK(d.code == Code::kArity);
  CHECK(d.column == 1);
  CHECK(d.message == "lower() takes 1 argument, not 2");

  d = h.Error("customer.visits > 0 and now(1) > customer.last_visit");
  CHECK(d.code == Code::kArity);
  CHECK(d.column == 25);
  CHECK(d.message == "now() takes no arguments, not 1");

  CHECK(h.Error("round(1, 2, 3)").message == "round() takes 1 or 2 arguments, not 3");
  CHECK(h.Error("min(1)").message == "min() takes at least 2 arguments, not 1");
  CHECK(h.Error("contains('a')").code == Code::kArity);
  CHECK(h.Error("coalesce()").code == Code::kArity);
}

TEST_CASE("unavailable names", "[expr][errors]") {
  Harness h;
  h.scope.event_available = false;
  Diagnostic d = h.Error("customer.visits > 1 and event.amount > 10");
  CHECK(d.code == Code::kUnavailable);
  CHECK(d.column == 25);
  CHECK(d.message.find("`event.amount`") != std::string::npos);
  CHECK(d.message.find("no event is in hand when a delay ends") != std::string::npos);
  CHECK(h.Eval("customer.visits > 1").IsTrue());  // customer fields still work

  h.scope.event_available = true;
  h.scope.coupon_available = false;
  d = h.Error("'code: ' + coupon('X')");
  CHECK(d.code == Code::kUnavailable);
  CHECK(d.column == 12);
  CHECK(d.message.find("coupon()") != std::string::npos);
}

TEST_CASE("several errors are reported at once", "[expr][errors]") {
  Harness h;
  h.scope.event_available = false;
  Diagnostics ds = h.Errors(
      "customer.vists > 3 and event.amount > 1 and customer.visits == 'x' and lowr('a') == 'a' and "
      "upper(1, 2) == 'A'",
      Type::kBool);
  REQUIRE(ds.size() == 5);
  CHECK(ds[0].code == Code::kUnknownField);
  CHECK(ds[0].column == 1);
  CHECK(ds[1].code == Code::kUnavailable);
  CHECK(ds[1].column == 24);
  CHECK(ds[2].code == Code::kTypeMismatch);
  CHECK(ds[2].column == 61);
  CHECK(ds[3].code == Code::kUnknownFunction);
  CHECK(ds[3].column == 72);
  CHECK(ds[4].code == Code::kArity);
  CHECK(ds[4].column == 93);

  // An erroneous subtree does not cause follow-up errors.
  ds = h.Errors("customer.vists + 1 == 'x'");
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].code == Code::kUnknownField);

  // Errors in function arguments and in the condition type are both found.
  ds = h.Errors("lower(customer.visits) + string(customer.nope)", Type::kBool);
  REQUIRE(ds.size() == 3);
  CHECK(ds[0].code == Code::kTypeMismatch);  // the condition is a string
  CHECK(ds[0].column == 1);
  CHECK(ds[1].code == Code::kTypeMismatch);  // lower() of a number
  CHECK(ds[1].column == 7);
  CHECK(ds[2].code == Code::kUnknownField);
  CHECK(ds[2].column == 33);

  // The diagnostic renders as one line.
  CHECK(ds[2].ToString().find("1:33: error[unknown-field]: unknown field `customer.nope`") == 0);
}

// ------------------------------------------------------------ the object ---

TEST_CASE("customer_fields and reads_event", "[expr]") {
  Harness h;
  CompileOutput out =
      Compile("customer.visits > 1 and customer.stage == 'x' or customer.visits < 0", h.scope, Type::kBool);
  REQUIRE(out.expr != nullptr);
  CHECK(out.expr->customer_fields() == std::vector<uint32_t>{kVisits, kStage});
  CHECK_FALSE(out.expr->reads_event());
  CHECK(out.expr->type() == Type::kBool);

  out = Compile("event['utm-source'] == 'x'", h.scope, Type::kBool);
  REQUIRE(out.expr != nullptr);
  CHECK(out.expr->customer_fields().empty());
  CHECK(out.expr->reads_event());
}

TEST_CASE("a compiled expression outlives its source text", "[expr]") {
  Harness h;
  std::unique_ptr<Expr> expr;
  {
    std::string text = "lower('ABC') + 'def' == 'abcdef' and event['utm-source'] == 'newsletter'";
    CompileOutput out = Compile(text, h.scope, Type::kBool);
    REQUIRE(out.expr != nullptr);
    expr = std::move(out.expr);
    text.assign(text.size(), 'x');
  }
  CHECK(expr->Eval(h.ctx, h.scratch).IsTrue());
}

TEST_CASE("scratch strings are reused after Clear", "[expr]") {
  Scratch scratch;
  std::string* a = scratch.NewString();
  *a = "first, long enough not to fit in a small string buffer";
  std::string* b = scratch.NewString();
  *b = "second";
  CHECK(a != b);
  CHECK(*a == "first, long enough not to fit in a small string buffer");  // earlier strings stay valid
  const char* a_data = a->data();
  scratch.Clear();
  std::string* a2 = scratch.NewString();
  CHECK(a2 == a);
  CHECK(a2->empty());
  a2->assign("reused");
  CHECK(a2->data() == a_data);  // the capacity is kept
  CHECK(scratch.NewString() == b);

  // Evaluating with Clear() in between reuses the same buffer.
  Harness h;
  CompileOutput out = Compile("lower(customer.email) + '!'", h.scope, Type::kAny);
  REQUIRE(out.expr != nullptr);
  Value v1 = out.expr->Eval(h.ctx, h.scratch);
  REQUIRE(v1.kind == Kind::kString);
  CHECK(v1.string == "  ann@example.com !");
  const char* p1 = v1.string.data();
  h.scratch.Clear();
  Value v2 = out.expr->Eval(h.ctx, h.scratch);
  CHECK(v2.string == "  ann@example.com !");
  CHECK(v2.string.data() == p1);

  // Strings that need no change are not copied at all.
  h.ctx.customer[kStage] = Value::String("already lower");
  out = Compile("lower(customer.stage)", h.scope, Type::kAny);
  REQUIRE(out.expr != nullptr);
  Value v3 = out.expr->Eval(h.ctx, h.scratch);
  CHECK(v3.string.data() == h.ctx.customer[kStage].string.data());
}

// --------------------------------------------------------- value helpers ---

TEST_CASE("Equals", "[expr]") {
  CHECK(Equals(Value::Number(1), Value::Number(1)).IsTrue());
  CHECK(Equals(Value::Number(1), Value::Number(2)).kind == Kind::kBool);
  CHECK_FALSE(Equals(Value::Number(1), Value::Number(2)).boolean);
  CHECK(Equals(Value::String("a"), Value::String("a")).IsTrue());
  CHECK(Equals(Value::Bool(true), Value::Bool(true)).IsTrue());
  CHECK(Equals(Value::Time(EventTime{5}), Value::Time(EventTime{5})).IsTrue());
  CHECK(Equals(Value::Dur(Duration{5}), Value::Dur(Duration{5})).IsTrue());
  CHECK(Equals(Value::Unknown(), Value::Number(1)).kind == Kind::kUnknown);
  CHECK(Equals(Value::Unknown(), Value::Unknown()).kind == Kind::kUnknown);
  CHECK(Equals(Value::Null(), Value::Null()).IsTrue());
  Value null_vs_number = Equals(Value::Null(), Value::Number(1));
  CHECK(null_vs_number.kind == Kind::kBool);
  CHECK_FALSE(null_vs_number.boolean);
  // Different kinds at run time: unknown, as for any value of the wrong kind.
  CHECK(Equals(Value::String("5"), Value::Number(5)).kind == Kind::kUnknown);
  CHECK(Equals(Value::Time(EventTime{5}), Value::Dur(Duration{5})).kind == Kind::kUnknown);
}

TEST_CASE("AppendAsText and TypeName", "[expr]") {
  auto text = [](const Value& v) {
    std::string s = "[";
    AppendAsText(v, &s);
    return s.substr(1);
  };
  CHECK(text(Value::Number(10)) == "10");
  CHECK(text(Value::Number(-3)) == "-3");
  CHECK(text(Value::Number(12.5)) == "12.5");
  CHECK(text(Value::Number(0.1)) == "0.1");
  CHECK(text(Value::Number(1000000)) == "1000000");
  CHECK(text(Value::Number(-0.0)) == "0");
  CHECK(text(Value::Bool(true)) == "true");
  CHECK(text(Value::Bool(false)) == "false");
  CHECK(text(Value::String("hi")) == "hi");
  CHECK(text(Value::Time(T("2026-01-05T10:00:00Z"))) == "2026-01-05T10:00:00.000Z");
  CHECK(text(Value::Dur(Duration{30 * kMsPerDay})) == "30d");
  CHECK(text(Value::Dur(Duration{36 * kMsPerHour})) == "1d12h");
  CHECK(text(Value::Null()).empty());
  CHECK(text(Value::Unknown()).empty());

  CHECK(TypeName(Type::kAny) == "any");
  CHECK(TypeName(Type::kNull) == "null");
  CHECK(TypeName(Type::kBool) == "bool");
  CHECK(TypeName(Type::kNumber) == "number");
  CHECK(TypeName(Type::kString) == "string");
  CHECK(TypeName(Type::kTime) == "time");
  CHECK(TypeName(Type::kDuration) == "duration");
}

}  // namespace
}  // namespace rapport::rules

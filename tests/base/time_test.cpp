#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "rapport/engine/time.h"

using rapport::DaysFromCivil;
using rapport::CivilFromDays;
using rapport::Duration;
using rapport::EventTime;
using rapport::FormatDuration;
using rapport::FormatRfc3339;
using rapport::kMsPerDay;
using rapport::kMsPerHour;
using rapport::kMsPerMinute;
using rapport::kMsPerSecond;
using rapport::ParseDuration;
using rapport::ParseRfc3339;

namespace {

// 2026-01-05T10:00:00Z
constexpr int64_t kJan5 = 1767607200000;

int64_t Parse(const std::string& s) {
  auto t = ParseRfc3339(s);
  INFO(s);
  REQUIRE(t.has_value());
  return t->ms;
}

unsigned MonthLength(int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

}  // namespace

TEST_CASE("ParseRfc3339 accepts Z, z, offsets and a space or lower-case separator", "[time]") {
  CHECK(Parse("1970-01-01T00:00:00Z") == 0);
  CHECK(Parse("2026-01-05T10:00:00Z") == kJan5);
  CHECK(Parse("2026-01-05T10:00:00z") == kJan5);
  CHECK(Parse("2026-01-05t10:00:00Z") == kJan5);
  CHECK(Parse("2026-01-05 10:00:00Z") == kJan5);
  CHECK(Parse("2026-01-05T12:00:00+02:00") == kJan5);
  CHECK(Parse("2026-01-05T08:30:00-01:30") == kJan5);
  CHECK(Parse("2026-01-05T10:00:00+00:00") == kJan5);
  CHECK(Parse("2026-01-05T10:00:00-00:00") == kJan5);
  CHECK(Parse("2026-01-06T09:59:00+23:59") == kJan5);
  // Offsets that cross a day boundary.
  CHECK(Parse("2026-01-04T23:00:00-11:00") == kJan5);
  CHECK(Parse("2026-01-05T00:00:00+14:00") == kJan5 - 24 * kMsPerHour);
}

TEST_CASE("ParseRfc3339 fractional seconds: 1 to 9 digits, truncated to ms", "[time]") {
  CHECK(Parse("2026-01-05T10:00:00.1Z") == kJan5 + 100);
  CHECK(Parse("2026-01-05T10:00:00.12Z") == kJan5 + 120);
  CHECK(Parse("2026-01-05T10:00:00.123Z") == kJan5 + 123);
  CHECK(Parse("2026-01-05T10:00:00.1239Z") == kJan5 + 123);
  CHECK(Parse("2026-01-05T10:00:00.12399Z") == kJan5 + 123);
  CHECK(Parse("2026-01-05T10:00:00.123999Z") == kJan5 + 123);
  CHECK(Parse("2026-01-05T10:00:00.1239999Z") == kJan5 + 123);
  CHECK(Parse("2026-01-05T10:00:00.12399999Z") == kJan5 + 123);
  CHECK(Parse("2026-01-05T10:00:00.999999999Z") == kJan5 + 999);
  CHECK(Parse("2026-01-05T10:00:00.000000001Z") == kJan5);
  CHECK(Parse("2026-01-05T12:00:00.5+02:00") == kJan5 + 500);
  // A long run of digits is still fine.
  CHECK(Parse("2026-01-05T10:00:00.12345678901234567890Z") == kJan5 + 123);
  // No digit after the dot is not RFC 3339.
  CHECK_FALSE(ParseRfc3339("2026-01-05T10:00:00.Z"));
}

TEST_CASE("ParseRfc3339 calendar: leap years and month lengths", "[time]") {
  CHECK(Parse("2024-02-29T00:00:00Z") == DaysFromCivil(2024, 2, 29) * kMsPerDay);
  CHECK(Parse("2000-02-29T00:00:00Z") == DaysFromCivil(2000, 2, 29) * kMsPerDay);
  CHECK_FALSE(ParseRfc3339("2026-02-29T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("1900-02-29T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-02-30T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-04-31T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-13-01T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-00-01T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-01-00T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-01-32T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-01-05T24:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-01-05T10:60:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-01-05T10:00:61Z"));
  CHECK_FALSE(ParseRfc3339("0000-01-01T00:00:00Z"));
  CHECK(Parse("2026-12-31T23:59:59.999Z") == DaysFromCivil(2027, 1, 1) * kMsPerDay - 1);
  // A leap second is accepted and held at :59.
  CHECK(Parse("2016-12-31T23:59:60Z") == Parse("2016-12-31T23:59:59Z"));
}

TEST_CASE("ParseRfc3339 rejects a missing zone and malformed text", "[time]") {
  for (const char* bad : {
           "2026-01-05T10:00:00",          // no zone
           "2026-01-05T10:00:00.123",      // no zone
           "2026-01-05",                   // date only
           "2026-01-05T10:00Z",            // no seconds
           "2026-01-05T10:00:00+0200",     // offset without colon
           "2026-01-05T10:00:00+02",       // short offset
           "2026-01-05T10:00:00+24:00",    // offset hour out of range
           "2026-01-05T10:00:00+02:60",    // offset minute out of range
           "2026-01-05T10:00:00ZZ",        // trailing junk
           "2026-01-05T10:00:00Z ",        // trailing space
           " 2026-01-05T10:00:00Z",        // leading space
           "2026-01-05X10:00:00Z",         // bad separator
           "2026/01/05T10:00:00Z",         // bad date separators
           "26-01-05T10:00:00Z",           // two-digit year
           "2026-1-5T10:00:00Z",           // unpadded
           "+2026-01-05T10:00:00Z",        // sign
           "yesterday",
           "",
           "1767607200000",
       }) {
    INFO(bad);
    CHECK_FALSE(ParseRfc3339(bad).has_value());
  }
}

TEST_CASE("FormatRfc3339 writes 24 characters and round-trips", "[time]") {
  CHECK(FormatRfc3339(EventTime{0}) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339(EventTime{kJan5 + 7}) == "2026-01-05T10:00:00.007Z");
  CHECK(FormatRfc3339(EventTime{-1}) == "1969-12-31T23:59:59.999Z");
  CHECK(FormatRfc3339(EventTime{-kMsPerDay}) == "1969-12-31T00:00:00.000Z");
  CHECK(FormatRfc3339(EventTime{-kMsPerDay - 1}) == "1969-12-30T23:59:59.999Z");
  CHECK(FormatRfc3339(EventTime{-62135596800000}) == "0001-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339(EventTime{253402300799999}) == "9999-12-31T23:59:59.999Z");
  // Clamped outside years 0001-9999.
  CHECK(FormatRfc3339(EventTime{INT64_MIN}) == "0001-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339(EventTime{INT64_MAX}) == "9999-12-31T23:59:59.999Z");

  char buf[rapport::kRfc3339Length + 1];
  buf[rapport::kRfc3339Length] = '#';
  FormatRfc3339(EventTime{kJan5}, buf);
  CHECK(std::string(buf, rapport::kRfc3339Length) == "2026-01-05T10:00:00.000Z");
  CHECK(buf[rapport::kRfc3339Length] == '#');  // nothing written past the end

  // Round trips over a spread of times, negative ones included.
  int64_t step = 7 * kMsPerDay + 3 * kMsPerHour + 17 * kMsPerMinute + 29 * kMsPerSecond + 311;
  int checked = 0;
  for (int64_t ms = -62135596800000; ms <= 253402300799999; ms += step * 331) {
    std::string s = FormatRfc3339(EventTime{ms});
    auto back = ParseRfc3339(s);
    INFO(s);
    REQUIRE(back.has_value());
    REQUIRE(back->ms == ms);
    ++checked;
  }
  CHECK(checked > 1000);
  for (int64_t ms = -3 * kMsPerDay; ms <= 3 * kMsPerDay; ms += 999 * kMsPerSecond + 1) {
    auto back = ParseRfc3339(FormatRfc3339(EventTime{ms}));
    REQUIRE(back.has_value());
    REQUIRE(back->ms == ms);
  }
}

TEST_CASE("ParseDuration accepts unit literals and joined parts", "[time]") {
  CHECK(ParseDuration("30d") == Duration{30 * kMsPerDay});
  CHECK(ParseDuration("1d12h") == Duration{kMsPerDay + 12 * kMsPerHour});
  CHECK(ParseDuration("500ms") == Duration{500});
  CHECK(ParseDuration("90m") == Duration{90 * kMsPerMinute});
  CHECK(ParseDuration("45s") == Duration{45 * kMsPerSecond});
  CHECK(ParseDuration("2w") == Duration{14 * kMsPerDay});
  CHECK(ParseDuration("0s") == Duration{0});
  CHECK(ParseDuration("0ms") == Duration{0});
  CHECK(ParseDuration("1h30m15s250ms") ==
        Duration{kMsPerHour + 30 * kMsPerMinute + 15 * kMsPerSecond + 250});
  CHECK(ParseDuration("1m5ms") == Duration{kMsPerMinute + 5});
  CHECK(ParseDuration("9223372036854775807ms") == Duration{INT64_MAX});
}

TEST_CASE("ParseDuration rejects malformed and overflowing literals", "[time]") {
  for (const char* bad : {
           "", "30", "d", "ms", "30x", "30 d", " 30d", "30d ", "-5m", "+5m", "1.5h", "1d12", "30D", "1y",
           "9223372036854775808ms",   // one past INT64_MAX
           "9223372036854775809ms",
           "99999999999999999999ms",  // overflows while reading digits
           "106751991167301d",        // overflows when scaled by the unit
           "9223372036854775807ms1ms",  // overflows when summed
       }) {
    INFO(bad);
    CHECK_FALSE(ParseDuration(bad).has_value());
  }
}

TEST_CASE("FormatDuration writes the exact spelling that ParseDuration reads", "[time]") {
  CHECK(FormatDuration(Duration{0}) == "0s");
  CHECK(FormatDuration(Duration{30 * kMsPerDay}) == "30d");
  CHECK(FormatDuration(Duration{kMsPerDay + 12 * kMsPerHour}) == "1d12h");
  CHECK(FormatDuration(Duration{500}) == "500ms");
  CHECK(FormatDuration(Duration{90 * kMsPerMinute}) == "1h30m");
  CHECK(FormatDuration(Duration{kMsPerSecond + 1}) == "1s1ms");
  CHECK(FormatDuration(Duration{-90 * kMsPerMinute}) == "-1h30m");
  CHECK(FormatDuration(Duration{INT64_MAX}) == "106751991167d7h12m55s807ms");
  CHECK(FormatDuration(Duration{INT64_MIN}) == "-106751991167d7h12m55s808ms");

  for (int64_t ms : {int64_t{1}, int64_t{999}, int64_t{1000}, int64_t{61001}, kMsPerHour, kMsPerDay - 1,
                     7 * kMsPerDay, 400 * kMsPerDay + 1, int64_t{123456789012}, INT64_MAX}) {
    INFO(ms);
    std::string s = FormatDuration(Duration{ms});
    CHECK(ParseDuration(s) == Duration{ms});
  }
}

TEST_CASE("DaysFromCivil and CivilFromDays agree over a wide range", "[time]") {
  CHECK(DaysFromCivil(1970, 1, 1) == 0);
  CHECK(DaysFromCivil(1969, 12, 31) == -1);
  CHECK(DaysFromCivil(2000, 3, 1) == 11017);
  CHECK(DaysFromCivil(2026, 1, 5) == kJan5 / kMsPerDay);
  CHECK(DaysFromCivil(1, 1, 1) == -719162);
  CHECK(DaysFromCivil(9999, 12, 31) == 2932896);

  // Walk day by day from 0001-01-01 to 9999-12-31 (plus a margin either side)
  // and check that the civil date advances as the calendar says.
  int64_t y;
  unsigned m, d;
  CivilFromDays(-719163, &y, &m, &d);
  CHECK((y == 0 && m == 12 && d == 31));
  int64_t py = y;
  unsigned pm = m, pd = d;
  for (int64_t days = -719162; days <= 2932897; ++days) {
    CivilFromDays(days, &y, &m, &d);
    bool next_day = y == py && m == pm && d == pd + 1;
    bool next_month = y == py && m == pm + 1 && d == 1 && pd == MonthLength(py, pm);
    bool next_year = y == py + 1 && m == 1 && d == 1 && pm == 12 && pd == 31;
    if (!(next_day || next_month || next_year)) {
      FAIL("day " << days << " gives " << y << "-" << m << "-" << d << " after " << py << "-" << pm << "-" << pd);
    }
    if (DaysFromCivil(y, m, d) != days) {
      FAIL("DaysFromCivil(" << y << "-" << m << "-" << d << ") != " << days);
    }
    py = y;
    pm = m;
    pd = d;
  }
  CHECK((y == 10000 && m == 1 && d == 1));
}

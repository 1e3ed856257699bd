#include "rapport/engine/time.h"

#include <array>

namespace rapport {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

}  // namespace

// Howard Hinnant's days_from_civil.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

std::optional<EventTime> ParseRfc3339(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (!Digits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &month) || s[7] != '-' ||
      !Digits(s, 8, 2, &day)) {
    return std::nullopt;
  }
  char sep = s[10];
  if (sep != 'T' && sep != 't' && sep != ' ') return std::nullopt;
  if (!Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return std::nullopt;
  }
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > static_cast<int>(DaysInMonth(year, month)) ||
      hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += scale * (s[pos] - '0');
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;  // a zone is required
  int64_t offset_minutes = 0;
  char z = s[pos];
  if (z == 'Z' || z == 'z') {
    ++pos;
  } else if (z == '+' || z == '-') {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !Digits(s, pos + 4, 2, &om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (oh * 60 + om) * (z == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  if (second == 60) second = 59;  // a leap second is held at :59.999 semantics-wise
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return EventTime{secs * 1000 + millis};
}

void FormatRfc3339(EventTime t, char* out) {
  static constexpr int64_t kMin = -62135596800000;  // 0001-01-01T00:00:00Z
  static constexpr int64_t kMax = 253402300799999;  // 9999-12-31T23:59:59.999Z
  int64_t ms = t.ms < kMin ? kMin : (t.ms > kMax ? kMax : t.ms);
  int64_t days = ms >= 0 ? ms / kMsPerDay : -((-ms + kMsPerDay - 1) / kMsPerDay);
  int64_t rem = ms - days * kMsPerDay;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  auto put = [&out](size_t pos, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      out[pos + i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, y, 4);
  out[4] = '-';
  put(5, m, 2);
  out[7] = '-';
  put(8, d, 2);
  out[10] = 'T';
  put(11, rem / kMsPerHour, 2);
  out[13] = ':';
  put(14, rem / kMsPerMinute % 60, 2);
  out[16] = ':';
  put(17, rem / kMsPerSecond % 60, 2);
  out[19] = '.';
  put(20, rem % 1000, 3);
  out[23] = 'Z';
}

std::string FormatRfc3339(EventTime t) {
  std::string s(kRfc3339Length, '\0');
  FormatRfc3339(t, s.data());
  return s;
}

std::optional<Duration> ParseDuration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t total = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t start = pos;
    int64_t n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      int digit = s[pos] - '0';
      if (n > (INT64_MAX - digit) / 10) return std::nullopt;
      n = n * 10 + digit;
      ++pos;
    }
    if (pos == start || pos == s.size()) return std::nullopt;
    int64_t unit;
    if (s.substr(pos, 2) == "ms") {
      unit = 1;
      pos += 2;
    } else {
      switch (s[pos]) {
        case 's': unit = kMsPerSecond; break;
        case 'm': unit = kMsPerMinute; break;
        case 'h': unit = kMsPerHour; break;
        case 'd': unit = kMsPerDay; break;
        case 'w': unit = 7 * kMsPerDay; break;
        default: return std::nullopt;
      }
      ++pos;
    }
    if (n > INT64_MAX / unit || total > INT64_MAX - n * unit) return std::nullopt;
    total += n * unit;
  }
  return Duration{total};
}

std::string FormatDuration(Duration d) {
  if (d.ms == 0) return "0s";
  std::string out;
  // Unsigned, so that the magnitude of INT64_MIN is representable.
  uint64_t ms = static_cast<uint64_t>(d.ms);
  if (d.ms < 0) {
    out += '-';
    ms = 0 - ms;
  }
  struct Unit {
    uint64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{kMsPerDay, "d"}, {kMsPerHour, "h"}, {kMsPerMinute, "m"}, {kMsPerSecond, "s"},
                                    {1, "ms"}};
  for (const Unit& u : kUnits) {
    if (ms >= u.ms) {
      out += std::to_string(ms / u.ms);
      out += u.name;
      ms %= u.ms;
    }
  }
  return out;
}

}  // namespace rapport

// Event time and durations.
//
// Rapport reasons about *event time*: milliseconds since the Unix epoch, UTC,
// as carried by the events themselves. Wall time is a separate thing that only
// live daemons read, through an injected clock; nothing in the engine core
// reads the system clock.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rapport {

// A span of time in milliseconds. Strong type: a duration is not a time.
struct Duration {
  int64_t ms = 0;
  auto operator<=>(const Duration&) const = default;
};

// A point in event time: milliseconds since 1970-01-01T00:00:00Z.
struct EventTime {
  int64_t ms = 0;
  auto operator<=>(const EventTime&) const = default;
  EventTime operator+(Duration d) const { return EventTime{ms + d.ms}; }
  Duration operator-(EventTime o) const { return Duration{ms - o.ms}; }
};

inline constexpr int64_t kMsPerSecond = 1000;
inline constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
inline constexpr int64_t kMsPerHour = 60 * kMsPerMinute;
inline constexpr int64_t kMsPerDay = 24 * kMsPerHour;

// Parses an RFC 3339 timestamp with a zone ("2026-01-05T10:00:00.123Z",
// "2026-01-05T12:00:00+02:00", lower-case 't'/'z' and a space separator are
// accepted as RFC 3339 allows). Fractions beyond milliseconds are truncated.
// Returns nullopt for anything else: no zone, impossible dates, years outside
// 0001-9999.
std::optional<EventTime> ParseRfc3339(std::string_view text);

// Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 chars, no terminator) into out.
// Times outside years 0001-9999 are clamped into that range.
inline constexpr size_t kRfc3339Length = 24;
void FormatRfc3339(EventTime t, char* out);
std::string FormatRfc3339(EventTime t);

// Parses a duration literal: an integer followed by a unit, ms, s, m, h, d or
// w ("30d", "90m", "500ms"); several parts may be joined ("1d12h"). Returns
// nullopt when the text is not such a literal or overflows.
std::optional<Duration> ParseDuration(std::string_view text);

// The shortest exact spelling of a duration in the same syntax ("30d", "1d12h").
std::string FormatDuration(Duration d);

// Days since the epoch for a civil date, and back (proleptic Gregorian).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
void CivilFromDays(int64_t days, int64_t* y, unsigned* m, unsigned* d);

}  // namespace rapport

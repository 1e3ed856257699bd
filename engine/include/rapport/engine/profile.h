// Profile: what Rapport knows about one customer, and its binary encoding.
//
// A profile holds the built-in customer fields of docs/rule-language.md
// (counts and last times per event type, purchase total, first/last seen,
// ladder stage), the declared aggregates of the rules, and per-campaign
// state (an armed timer, the limit history). Names (event types, campaigns,
// aggregates) are stored as small symbol ids from the store's SymbolTable,
// not as text, and times as deltas from first_seen, so a typical profile is
// a few dozen bytes. The layout is versioned; docs/state-format.md describes
// it byte by byte.
//
// Money is fixed point: hundredths of the currency unit, so totals are exact.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/engine/status.h"
#include "rapport/engine/time.h"

namespace rapport {

inline constexpr int64_t kNoTime = INT64_MIN;

struct TypeStats {
  uint32_t type = 0;  // symbol of the event type
  uint64_t count = 0;
  int64_t last_ms = kNoTime;  // latest event time of this type
};

struct CampaignState {
  uint32_t campaign = 0;         // symbol of the campaign id
  int64_t armed_due_ms = kNoTime;  // the pending timer's due time, if one is armed
  uint32_t fired = 0;            // firings (held-out ones included)
  int64_t last_fired_ms = kNoTime;
  // Of the latest firing: whether it was held out, and whether the customer
  // has reached the campaign's goal since (one conversion per firing).
  bool last_held_out = false;
  bool converted = false;
  std::vector<int64_t> recent_ms;  // latest firing times, kept for `at_most` caps

  bool empty() const { return armed_due_ms == kNoTime && fired == 0; }
};

// A declared aggregate's state. Numbers are hundredths (fixed point).
struct AggregateState {
  enum class Kind : uint8_t { kNone, kNumber, kString, kBool };
  uint32_t aggregate = 0;  // symbol of the aggregate name
  Kind kind = Kind::kNone;
  int64_t number = 0;  // count, sum, min, max in hundredths (count: whole events)
  std::string text;    // kString for `last`
  bool boolean = false;
  // Windowed aggregates keep each contribution within the window:
  // (time, value in hundredths), oldest first.
  std::vector<std::pair<int64_t, int64_t>> window;
};

struct Profile {
  int64_t first_seen_ms = kNoTime;
  int64_t last_seen_ms = kNoTime;
  int64_t total_spent_cents = 0;
  uint8_t stage = 0;  // index into the rule set's ladder
  std::vector<TypeStats> types;
  std::vector<CampaignState> campaigns;
  std::vector<AggregateState> aggregates;

  TypeStats* FindType(uint32_t symbol);
  const TypeStats* FindType(uint32_t symbol) const;
  TypeStats& Type(uint32_t symbol);  // finds or adds
  CampaignState* FindCampaign(uint32_t symbol);
  CampaignState& Campaign(uint32_t symbol);
  AggregateState* FindAggregate(uint32_t symbol);
  AggregateState& Aggregate(uint32_t symbol);
  // Drops campaign entries that hold nothing.
  void Compact();
};

// Version 2 added the held-out and converted flags of a campaign entry.
// Profiles are always written in the current version; version 1 still
// decodes (both flags false).
inline constexpr uint8_t kProfileFormatVersion = 2;

// Which encoding: the stored one (docs/state-format.md), or the cached one
// the processor keeps in memory between commits, which must decode to
// exactly the profile encoded. The cached form differs only where the stored
// one loses something: it also writes campaign entries that hold nothing
// (flags 0, in their place; a commit drops them), and it marks a profile
// with first_seen set but no type entry (all its events of uncounted types)
// with bit 0x80 of the version byte, so that decoding keeps first_seen and
// last_seen.
enum class ProfileForm : uint8_t { kStored, kCached };

// Appends the encoding of `profile` to *out. Returns whether the bytes are
// also the stored form (always, for kStored).
bool EncodeProfile(const Profile& profile, std::string* out, ProfileForm form = ProfileForm::kStored);
// Decodes versions 1 and 2 (and, for kCached, the cached form); Corruption
// when the bytes are not a profile of a known version. Overwrites every
// field of *profile, reusing the capacity of its vectors: decoding into the
// same Profile again and again allocates only when a profile needs more room
// than those decoded before it.
Status DecodeProfile(std::string_view bytes, Profile* profile, ProfileForm form = ProfileForm::kStored);

}  // namespace rapport

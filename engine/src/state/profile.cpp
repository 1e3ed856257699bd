#include "rapport/engine/profile.h"

#include <algorithm>

#include "rapport/engine/coding.h"

namespace rapport {
namespace {

template <class T>
T* FindBy(std::vector<T>& items, uint32_t T::*member, uint32_t symbol) {
  for (T& item : items) {
    if (item.*member == symbol) return &item;
  }
  return nullptr;
}

// Times are stored relative to first_seen; kNoTime is stored as 0 behind a
// presence bit where it can occur.
void PutTime(std::string* out, int64_t base, int64_t t) { coding::PutSignedVarint(out, t - base); }
bool GetTime(coding::Reader& in, int64_t base, int64_t* t) {
  int64_t delta;
  if (!in.GetSignedVarint(&delta)) return false;
  *t = base + delta;
  return true;
}

enum CampaignFlags : uint8_t { kArmed = 1, kFired = 2, kRecent = 4, kHeldOut = 8, kConverted = 16 };
// Flags each version may set; anything else is corruption, not a guess.
constexpr uint8_t kVersion1Flags = kArmed | kFired | kRecent;
constexpr uint8_t kVersion2Flags = kVersion1Flags | kHeldOut | kConverted;

}  // namespace

TypeStats* Profile::FindType(uint32_t symbol) { return FindBy(types, &TypeStats::type, symbol); }
const TypeStats* Profile::FindType(uint32_t symbol) const {
  for (const TypeStats& t : types) {
    if (t.type == symbol) return &t;
  }
  return nullptr;
}
TypeStats& Profile::Type(uint32_t symbol) {
  if (TypeStats* t = FindType(symbol)) return *t;
  types.emplace_back().type = symbol;
  return types.back();
}
CampaignState* Profile::FindCampaign(uint32_t symbol) {
  return FindBy(campaigns, &CampaignState::campaign, symbol);
}
CampaignState& Profile::Campaign(uint32_t symbol) {
  if (CampaignState* c = FindCampaign(symbol)) return *c;
  campaigns.emplace_back().campaign = symbol;
  return campaigns.back();
}
AggregateState* Profile::FindAggregate(uint32_t symbol) {
  return FindBy(aggregates, &AggregateState::aggregate, symbol);
}
AggregateState& Profile::Aggregate(uint32_t symbol) {
  if (AggregateState* a = FindAggregate(symbol)) return *a;
  aggregates.emplace_back().aggregate = symbol;
  return aggregates.back();
}
void Profile::Compact() {
  campaigns.erase(std::remove_if(campaigns.begin(), campaigns.end(), [](const CampaignState& c) { return c.empty(); }),
                  campaigns.end());
}

void EncodeProfile(const Profile& p, std::string* out) {
  using namespace coding;
  out->push_back(static_cast<char>(kProfileFormatVersion));
  const int64_t base = p.first_seen_ms == kNoTime ? 0 : p.first_seen_ms;
  PutSignedVarint(out, base);
  PutTime(out, base, p.last_seen_ms == kNoTime ? base : p.last_seen_ms);
  PutSignedVarint(out, p.total_spent_cents);
  out->push_back(static_cast<char>(p.stage));
  PutVarint(out, p.types.size());
  for (const TypeStats& t : p.types) {
    PutVarint(out, t.type);
    PutVarint(out, t.count);
    PutTime(out, base, t.last_ms == kNoTime ? base : t.last_ms);
  }
  size_t live = std::count_if(p.campaigns.begin(), p.campaigns.end(), [](const CampaignState& c) { return !c.empty(); });
  PutVarint(out, live);
  for (const CampaignState& c : p.campaigns) {
    if (c.empty()) continue;
    PutVarint(out, c.campaign);
    // The held-out and converted flags describe the latest firing, so they
    // exist only with one.
    uint8_t flags = (c.armed_due_ms != kNoTime ? kArmed : 0) | (c.fired > 0 ? kFired : 0) |
                    (!c.recent_ms.empty() ? kRecent : 0) | (c.fired > 0 && c.last_held_out ? kHeldOut : 0) |
                    (c.fired > 0 && c.converted ? kConverted : 0);
    out->push_back(static_cast<char>(flags));
    if (flags & kArmed) PutTime(out, base, c.armed_due_ms);
    if (flags & kFired) {
      PutVarint(out, c.fired);
      PutTime(out, base, c.last_fired_ms);
    }
    if (flags & kRecent) {
      PutVarint(out, c.recent_ms.size());
      for (int64_t t : c.recent_ms) PutTime(out, base, t);
    }
  }
  PutVarint(out, p.aggregates.size());
  for (const AggregateState& a : p.aggregates) {
    PutVarint(out, a.aggregate);
    out->push_back(static_cast<char>(a.kind));
    switch (a.kind) {
      case AggregateState::Kind::kNone: break;
      case AggregateState::Kind::kNumber: PutSignedVarint(out, a.number); break;
      case AggregateState::Kind::kString: PutLengthPrefixed(out, a.text); break;
      case AggregateState::Kind::kBool: out->push_back(a.boolean ? 1 : 0); break;
    }
    PutVarint(out, a.window.size());
    for (const auto& [t, v] : a.window) {
      PutTime(out, base, t);
      PutSignedVarint(out, v);
    }
  }
}

Status DecodeProfile(std::string_view bytes, Profile* p) {
  using namespace coding;
  Reader in(bytes);
  auto corrupt = [](const char* what) { return Status::Corruption(std::string("profile: bad ") + what); };
  uint8_t version;
  if (!in.GetByte(&version)) return corrupt("version");
  if (version != 1 && version != kProfileFormatVersion) {
    return Status::Corruption("profile: format version " + std::to_string(version) + " is not supported");
  }
  *p = Profile();
  int64_t base;
  if (!in.GetSignedVarint(&base)) return corrupt("first_seen");
  p->first_seen_ms = base;
  if (!GetTime(in, base, &p->last_seen_ms)) return corrupt("last_seen");
  if (!in.GetSignedVarint(&p->total_spent_cents)) return corrupt("total_spent");
  if (!in.GetByte(&p->stage)) return corrupt("stage");
  uint64_t n;
  if (!in.GetVarint(&n) || n > bytes.size()) return corrupt("type count");
  p->types.resize(n);
  for (TypeStats& t : p->types) {
    uint64_t sym;
    if (!in.GetVarint(&sym) || !in.GetVarint(&t.count) || !GetTime(in, base, &t.last_ms)) return corrupt("type");
    t.type = static_cast<uint32_t>(sym);
  }
  if (!in.GetVarint(&n) || n > bytes.size()) return corrupt("campaign count");
  p->campaigns.resize(n);
  for (CampaignState& c : p->campaigns) {
    uint64_t sym;
    uint8_t flags;
    if (!in.GetVarint(&sym) || !in.GetByte(&flags)) return corrupt("campaign");
    if ((flags & ~(version == 1 ? kVersion1Flags : kVersion2Flags)) != 0 ||
        ((flags & (kHeldOut | kConverted)) != 0 && (flags & kFired) == 0)) {
      return corrupt("campaign flags");
    }
    c.campaign = static_cast<uint32_t>(sym);
    c.last_held_out = (flags & kHeldOut) != 0;
    c.converted = (flags & kConverted) != 0;
    if ((flags & kArmed) && !GetTime(in, base, &c.armed_due_ms)) return corrupt("timer");
    if (flags & kFired) {
      uint64_t fired;
      if (!in.GetVarint(&fired) || !GetTime(in, base, &c.last_fired_ms)) return corrupt("firings");
      c.fired = static_cast<uint32_t>(fired);
    }
    if (flags & kRecent) {
      uint64_t m;
      if (!in.GetVarint(&m) || m > bytes.size()) return corrupt("recent firings");
      c.recent_ms.resize(m);
      for (int64_t& t : c.recent_ms) {
        if (!GetTime(in, base, &t)) return corrupt("recent firing");
      }
    }
  }
  if (!in.GetVarint(&n) || n > bytes.size()) return corrupt("aggregate count");
  p->aggregates.resize(n);
  for (AggregateState& a : p->aggregates) {
    uint64_t sym;
    uint8_t kind;
    if (!in.GetVarint(&sym) || !in.GetByte(&kind) || kind > 3) return corrupt("aggregate");
    a.aggregate = static_cast<uint32_t>(sym);
    a.kind = static_cast<AggregateState::Kind>(kind);
    switch (a.kind) {
      case AggregateState::Kind::kNone: break;
      case AggregateState::Kind::kNumber:
        if (!in.GetSignedVarint(&a.number)) return corrupt("aggregate value");
        break;
      case AggregateState::Kind::kString: {
        std::string_view s;
        if (!in.GetLengthPrefixed(&s)) return corrupt("aggregate value");
        a.text.assign(s);
        break;
      }
      case AggregateState::Kind::kBool: {
        uint8_t b;
        if (!in.GetByte(&b)) return corrupt("aggregate value");
        a.boolean = b != 0;
        break;
      }
    }
    uint64_t m;
    if (!in.GetVarint(&m) || m > bytes.size()) return corrupt("aggregate window");
    a.window.resize(m);
    for (auto& [t, v] : a.window) {
      if (!GetTime(in, base, &t) || !in.GetSignedVarint(&v)) return corrupt("aggregate window entry");
    }
  }
  if (!in.empty()) return corrupt("trailing bytes");
  // A profile that never saw an event has first_seen unset.
  if (p->types.empty()) {
    p->first_seen_ms = kNoTime;
    p->last_seen_ms = kNoTime;
  }
  for (TypeStats& t : p->types) {
    if (t.count == 0) t.last_ms = kNoTime;
  }
  return Status::Ok();
}

}  // namespace rapport

#include "rapport/engine/profile.h"

#include <algorithm>
#include <cstring>

namespace rapport {
namespace {

template <class T>
T* FindBy(std::vector<T>& items, uint32_t T::*member, uint32_t symbol) {
  for (T& item : items) {
    if (item.*member == symbol) return &item;
  }
  return nullptr;
}

// The cached form marks a profile whose first_seen is set without a type
// entry in the version byte; the stored form cannot say so.
constexpr uint8_t kSeenWithoutTypes = 0x80;

enum CampaignFlags : uint8_t { kArmed = 1, kFired = 2, kRecent = 4, kHeldOut = 8, kConverted = 16 };
// Flags each version may set; anything else is corruption, not a guess.
constexpr uint8_t kVersion1Flags = kArmed | kFired | kRecent;
constexpr uint8_t kVersion2Flags = kVersion1Flags | kHeldOut | kConverted;

// Encoding and decoding run for every event a cached profile sees, so they
// write into memory sized once (no append per field) and read with inlined
// varint loops.
class Writer {
 public:
  explicit Writer(char* at) : at_(at) {}
  void Byte(uint8_t b) { *at_++ = static_cast<char>(b); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      *at_++ = static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    *at_++ = static_cast<char>(v);
  }
  void SignedVarint(int64_t v) { Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  // Times are stored relative to first_seen.
  void Time(int64_t base, int64_t t) { SignedVarint(t - base); }
  void Bytes(std::string_view s) {
    Varint(s.size());
    std::memcpy(at_, s.data(), s.size());
    at_ += s.size();
  }
  char* at() const { return at_; }

 private:
  char* at_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : at_(in.data()), end_(in.data() + in.size()) {}
  bool Byte(uint8_t* b) {
    if (at_ == end_) return false;
    *b = static_cast<uint8_t>(*at_++);
    return true;
  }
  // Inlined with a one-byte fast path (symbols, counts and flags mostly
  // fit in one): GCC kept these out of line, and a 50-campaign profile
  // makes a hundred calls per decode.
  __attribute__((always_inline)) bool Varint(uint64_t* v) {
    if (at_ != end_ && static_cast<uint8_t>(*at_) < 0x80) {
      *v = static_cast<uint8_t>(*at_++);
      return true;
    }
    uint64_t result = 0;
    for (int shift = 0; at_ != end_ && shift < 70; shift += 7) {
      const auto byte = static_cast<uint8_t>(*at_++);
      result |= uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;
  }
  __attribute__((always_inline)) bool SignedVarint(int64_t* v) {
    uint64_t u;
    if (!Varint(&u)) return false;
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  __attribute__((always_inline)) bool Time(int64_t base, int64_t* t) {
    int64_t delta;
    if (!SignedVarint(&delta)) return false;
    *t = base + delta;
    return true;
  }
  bool Bytes(std::string_view* s) {
    uint64_t n;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - at_)) return false;
    *s = std::string_view(at_, n);
    at_ += n;
    return true;
  }
  bool empty() const { return at_ == end_; }

 private:
  const char* at_;
  const char* end_;
};

constexpr size_t kMaxVarint = 10;

bool Written(const CampaignState& c, ProfileForm form) { return form == ProfileForm::kCached || !c.empty(); }

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
  // In symbol order, so that the encoding does not depend on when empty
  // entries were dropped (Compact at each commit): a bulk load writes back
  // at different times on one thread and on several.
  auto at = std::find_if(campaigns.begin(), campaigns.end(),
                         [symbol](const CampaignState& c) { return c.campaign > symbol; });
  auto inserted = campaigns.emplace(at);
  inserted->campaign = symbol;
  return *inserted;
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

bool EncodeProfile(const Profile& p, std::string* out, ProfileForm form) {
  size_t bound = 1 + 5 * kMaxVarint;
  size_t live = 0;
  bool empty_campaigns = false;
  bound += p.types.size() * 3 * kMaxVarint;
  for (const CampaignState& c : p.campaigns) {
    empty_campaigns |= c.empty();
    if (!Written(c, form)) continue;
    ++live;
    bound += 1 + 6 * kMaxVarint + c.recent_ms.size() * kMaxVarint;
  }
  bound += kMaxVarint;
  for (const AggregateState& a : p.aggregates) {
    bound += 1 + 3 * kMaxVarint + a.text.size() + a.window.size() * 2 * kMaxVarint;
  }
  const bool seen_without_types = p.types.empty() && p.first_seen_ms != kNoTime;
  const size_t start = out->size();
  out->resize(start + bound);
  Writer w(out->data() + start);
  w.Byte(kProfileFormatVersion | (form == ProfileForm::kCached && seen_without_types ? kSeenWithoutTypes : 0));
  const int64_t base = p.first_seen_ms == kNoTime ? 0 : p.first_seen_ms;
  w.SignedVarint(base);
  w.Time(base, p.last_seen_ms == kNoTime ? base : p.last_seen_ms);
  w.SignedVarint(p.total_spent_cents);
  w.Byte(p.stage);
  w.Varint(p.types.size());
  for (const TypeStats& t : p.types) {
    w.Varint(t.type);
    w.Varint(t.count);
    w.Time(base, t.last_ms == kNoTime ? base : t.last_ms);
  }
  w.Varint(live);
  for (const CampaignState& c : p.campaigns) {
    if (!Written(c, form)) continue;
    w.Varint(c.campaign);
    // The held-out and converted flags describe the latest firing, so they
    // exist only with one.
    uint8_t flags = (c.armed_due_ms != kNoTime ? kArmed : 0) | (c.fired > 0 ? kFired : 0) |
                    (!c.recent_ms.empty() ? kRecent : 0) | (c.fired > 0 && c.last_held_out ? kHeldOut : 0) |
                    (c.fired > 0 && c.converted ? kConverted : 0);
    w.Byte(flags);
    if (flags & kArmed) w.Time(base, c.armed_due_ms);
    if (flags & kFired) {
      w.Varint(c.fired);
      w.Time(base, c.last_fired_ms);
    }
    if (flags & kRecent) {
      w.Varint(c.recent_ms.size());
      for (int64_t t : c.recent_ms) w.Time(base, t);
    }
  }
  w.Varint(p.aggregates.size());
  for (const AggregateState& a : p.aggregates) {
    w.Varint(a.aggregate);
    w.Byte(static_cast<uint8_t>(a.kind));
    switch (a.kind) {
      case AggregateState::Kind::kNone: break;
      case AggregateState::Kind::kNumber: w.SignedVarint(a.number); break;
      case AggregateState::Kind::kString: w.Bytes(a.text); break;
      case AggregateState::Kind::kBool: w.Byte(a.boolean ? 1 : 0); break;
    }
    w.Varint(a.window.size());
    for (const auto& [t, v] : a.window) {
      w.Time(base, t);
      w.SignedVarint(v);
    }
  }
  out->resize(static_cast<size_t>(w.at() - out->data()));
  return form == ProfileForm::kStored || (!empty_campaigns && !seen_without_types);
}

Status DecodeProfile(std::string_view bytes, Profile* p, ProfileForm form) {
  Reader in(bytes);
  auto corrupt = [](const char* what) { return Status::Corruption(std::string("profile: bad ") + what); };
  uint8_t version;
  if (!in.Byte(&version)) return corrupt("version");
  bool keep_seen = false;
  if (form == ProfileForm::kCached && (version & kSeenWithoutTypes) != 0) {
    keep_seen = true;
    version &= static_cast<uint8_t>(~kSeenWithoutTypes);
  }
  if (version != 1 && version != kProfileFormatVersion) {
    return Status::Corruption("profile: format version " + std::to_string(version) + " is not supported");
  }
  // Assigned field by field, not from a fresh Profile, so that the vectors
  // (and those inside their entries) keep their capacity: a profile decoded
  // into again and again allocates nothing once warm.
  int64_t base;
  if (!in.SignedVarint(&base)) return corrupt("first_seen");
  p->first_seen_ms = base;
  if (!in.Time(base, &p->last_seen_ms)) return corrupt("last_seen");
  if (!in.SignedVarint(&p->total_spent_cents)) return corrupt("total_spent");
  if (!in.Byte(&p->stage)) return corrupt("stage");
  uint64_t n;
  if (!in.Varint(&n) || n > bytes.size()) return corrupt("type count");
  p->types.resize(n);
  for (TypeStats& t : p->types) {
    uint64_t sym;
    if (!in.Varint(&sym) || !in.Varint(&t.count) || !in.Time(base, &t.last_ms)) return corrupt("type");
    t.type = static_cast<uint32_t>(sym);
  }
  if (!in.Varint(&n) || n > bytes.size()) return corrupt("campaign count");
  p->campaigns.resize(n);
  for (CampaignState& c : p->campaigns) {
    uint64_t sym;
    uint8_t flags;
    if (!in.Varint(&sym) || !in.Byte(&flags)) return corrupt("campaign");
    if ((flags & ~(version == 1 ? kVersion1Flags : kVersion2Flags)) != 0 ||
        ((flags & (kHeldOut | kConverted)) != 0 && (flags & kFired) == 0)) {
      return corrupt("campaign flags");
    }
    c.campaign = static_cast<uint32_t>(sym);
    c.last_held_out = (flags & kHeldOut) != 0;
    c.converted = (flags & kConverted) != 0;
    c.armed_due_ms = kNoTime;
    c.fired = 0;
    c.last_fired_ms = kNoTime;
    c.recent_ms.clear();
    if ((flags & kArmed) && !in.Time(base, &c.armed_due_ms)) return corrupt("timer");
    if (flags & kFired) {
      uint64_t fired;
      if (!in.Varint(&fired) || !in.Time(base, &c.last_fired_ms)) return corrupt("firings");
      c.fired = static_cast<uint32_t>(fired);
    }
    if (flags & kRecent) {
      uint64_t m;
      if (!in.Varint(&m) || m > bytes.size()) return corrupt("recent firings");
      c.recent_ms.resize(m);
      for (int64_t& t : c.recent_ms) {
        if (!in.Time(base, &t)) return corrupt("recent firing");
      }
    }
  }
  if (!in.Varint(&n) || n > bytes.size()) return corrupt("aggregate count");
  p->aggregates.resize(n);
  for (AggregateState& a : p->aggregates) {
    uint64_t sym;
    uint8_t kind;
    if (!in.Varint(&sym) || !in.Byte(&kind) || kind > 3) return corrupt("aggregate");
    a.aggregate = static_cast<uint32_t>(sym);
    a.kind = static_cast<AggregateState::Kind>(kind);
    a.number = 0;
    a.text.clear();
    a.boolean = false;
    switch (a.kind) {
      case AggregateState::Kind::kNone: break;
      case AggregateState::Kind::kNumber:
        if (!in.SignedVarint(&a.number)) return corrupt("aggregate value");
        break;
      case AggregateState::Kind::kString: {
        std::string_view s;
        if (!in.Bytes(&s)) return corrupt("aggregate value");
        a.text.assign(s);
        break;
      }
      case AggregateState::Kind::kBool: {
        uint8_t b;
        if (!in.Byte(&b)) return corrupt("aggregate value");
        a.boolean = b != 0;
        break;
      }
    }
    uint64_t m;
    if (!in.Varint(&m) || m > bytes.size()) return corrupt("aggregate window");
    a.window.resize(m);
    for (auto& [t, v] : a.window) {
      if (!in.Time(base, &t) || !in.SignedVarint(&v)) return corrupt("aggregate window entry");
    }
  }
  if (!in.empty()) return corrupt("trailing bytes");
  // A profile that never saw an event has first_seen unset.
  if (p->types.empty() && !keep_seen) {
    p->first_seen_ms = kNoTime;
    p->last_seen_ms = kNoTime;
  }
  for (TypeStats& t : p->types) {
    if (t.count == 0) t.last_ms = kNoTime;
  }
  return Status::Ok();
}

}  // namespace rapport

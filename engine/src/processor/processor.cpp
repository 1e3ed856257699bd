#include "rapport/engine/processor.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "digests.h"
#include "profile_cache.h"
#include "rapport/engine/json_writer.h"

namespace rapport {

using rules::Campaign;
using rules::CustomerFieldKind;
using rules::Value;

std::string_view SuppressionName(Suppression s) {
  switch (s) {
#define RAPPORT_X(e, name) \
  case Suppression::e:     \
    return name;
    RAPPORT_SUPPRESSIONS(RAPPORT_X)
#undef RAPPORT_X
  }
  return "?";
}

namespace {

constexpr size_t kMaxWindowEntries = 4096;
constexpr size_t kMaxOtherEventTypes = 1024;

Value FromJson(simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::STRING: return Value::String(std::string_view(e.get_string().value_unsafe()));
    case element_type::INT64: return Value::Number(static_cast<double>(e.get_int64().value_unsafe()));
    case element_type::UINT64: return Value::Number(static_cast<double>(e.get_uint64().value_unsafe()));
    case element_type::DOUBLE: return Value::Number(e.get_double().value_unsafe());
    case element_type::BOOL: return Value::Bool(e.get_bool().value_unsafe());
    case element_type::NULL_VALUE: return Value::Null();
    default: return Value::Unknown();  // objects and arrays are not values
  }
}

Value EventPath(const Event& event, std::span<const std::string> path) {
  simdjson::dom::element cur;
  if (event.Root().get(cur)) return Value::Unknown();
  for (const std::string& key : path) {
    if (cur.type() != simdjson::dom::element_type::OBJECT) return Value::Unknown();
    auto next = cur.get_object().value_unsafe().at_key(key);
    if (next.error()) return Value::Unknown();
    cur = next.value_unsafe();
  }
  return FromJson(cur);
}

void WriteValue(JsonWriter& w, const Value& v, std::string* text) {
  switch (v.kind) {
    case rules::Kind::kNumber: w.Number(v.number); break;
    case rules::Kind::kString: w.String(v.string); break;
    case rules::Kind::kBool: w.Bool(v.boolean); break;
    case rules::Kind::kTime:
    case rules::Kind::kDuration:
      text->clear();
      rules::AppendAsText(v, text);
      w.String(*text);
      break;
    case rules::Kind::kNull:
    case rules::Kind::kUnknown: w.Null(); break;
  }
}

}  // namespace

// The values a campaign's expressions read while one customer is evaluated.
class Processor::Evaluation : public rules::EvalContext {
 public:
  Evaluation(const Processor& p, const Profile& profile, std::string_view customer, EventTime now,
             const Event* event)
      : p_(p), profile_(profile), customer_(customer), now_(now), event_(event) {}

  Value EventField(std::span<const std::string> path) const override {
    return event_ == nullptr ? Value::Unknown() : EventPath(*event_, path);
  }

  Value CustomerField(uint32_t id) const override {
    const uint32_t index = rules::FieldIndex(id);
    switch (rules::FieldKind(id)) {
      case CustomerFieldKind::kId: return Value::String(customer_);
      case CustomerFieldKind::kStage:
        return profile_.stage < p_.rules_->ladder.size() ? Value::String(p_.rules_->ladder[profile_.stage].name)
                                                         : Value::Unknown();
      case CustomerFieldKind::kTotalSpent: return Value::Number(static_cast<double>(profile_.total_spent_cents) / 100);
      case CustomerFieldKind::kFirstSeen:
        return profile_.first_seen_ms == kNoTime ? Value::Unknown() : Value::Time(EventTime{profile_.first_seen_ms});
      case CustomerFieldKind::kLastSeen:
        return profile_.last_seen_ms == kNoTime ? Value::Unknown() : Value::Time(EventTime{profile_.last_seen_ms});
      case CustomerFieldKind::kCount: {
        const TypeStats* t = profile_.FindType(p_.type_symbols_[index]);
        return Value::Number(t == nullptr ? 0 : static_cast<double>(t->count));
      }
      case CustomerFieldKind::kLastOf: {
        const TypeStats* t = profile_.FindType(p_.type_symbols_[index]);
        return t == nullptr || t->last_ms == kNoTime ? Value::Unknown() : Value::Time(EventTime{t->last_ms});
      }
      case CustomerFieldKind::kAggregate: return AggregateValue(index);
    }
    return Value::Unknown();
  }

  EventTime Now() const override { return now_; }

  std::string_view Coupon(std::string_view prefix, rules::Scratch& scratch) const override {
    // HMAC of the action id: unique per firing, stable across replays, and
    // not derivable without the secret.
    static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford base32
    unsigned char mac[32];
    p_.digests_->HmacSha256({action_id_, "\x1f", prefix}, mac);
    std::string* code = scratch.NewString();
    code->assign(prefix);
    if (!code->empty()) code->push_back('-');
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | mac[i];
    for (int i = 0; i < 10; ++i) {
      code->push_back(kAlphabet[bits >> 59]);
      bits <<= 5;
    }
    return *code;
  }

  void set_action_id(std::string_view id) { action_id_ = id; }

 private:
  Value AggregateValue(uint32_t index) const {
    const rules::Aggregate& agg = p_.rules_->aggregates[index];
    const AggregateState* s = nullptr;
    for (const AggregateState& a : profile_.aggregates) {
      if (a.aggregate == p_.aggregate_symbols_[index]) s = &a;
    }
    using F = rules::AggregateFunction;
    if (agg.window) {
      const int64_t from = now_.ms - agg.window->ms;
      double count = 0, sum = 0;
      std::optional<int64_t> lo, hi;
      if (s != nullptr) {
        for (const auto& [t, v] : s->window) {
          if (t <= from || t > now_.ms) continue;
          ++count;
          sum += static_cast<double>(v);
          lo = lo ? std::min(*lo, v) : v;
          hi = hi ? std::max(*hi, v) : v;
        }
      }
      switch (agg.function) {
        case F::kCount: return Value::Number(count);
        case F::kSum: return Value::Number(sum / 100);
        case F::kMin: return lo ? Value::Number(static_cast<double>(*lo) / 100) : Value::Unknown();
        case F::kMax: return hi ? Value::Number(static_cast<double>(*hi) / 100) : Value::Unknown();
        case F::kLast: return Value::Unknown();
      }
    }
    if (s == nullptr || s->kind == AggregateState::Kind::kNone) {
      return agg.function == F::kCount || agg.function == F::kSum ? Value::Number(0) : Value::Unknown();
    }
    switch (s->kind) {
      case AggregateState::Kind::kNumber:
        return Value::Number(agg.function == F::kCount ? static_cast<double>(s->number)
                                                       : static_cast<double>(s->number) / 100);
      case AggregateState::Kind::kString: return Value::String(s->text);
      case AggregateState::Kind::kBool: return Value::Bool(s->boolean);
      case AggregateState::Kind::kNone: break;
    }
    return Value::Unknown();
  }

  const Processor& p_;
  const Profile& profile_;
  std::string_view customer_;
  EventTime now_;
  const Event* event_;
  std::string_view action_id_;
};

Processor::Processor(StateStore& store, ActionSink& sink, const ProcessorOptions& options)
    : store_(store), sink_(sink), options_(options), cache_(std::make_unique<ProfileCache>()), batch_(store) {}

Processor::~Processor() = default;

Result<std::unique_ptr<Processor>> Processor::Open(StateStore& store, std::shared_ptr<const rules::RuleSet> rules,
                                                   ActionSink& sink, const ProcessorOptions& options) {
  std::unique_ptr<Processor> p(new Processor(store, sink, options));
  auto digests = Digests::Create(options.coupon_secret);
  if (!digests.ok()) return digests.status();
  p->digests_ = std::make_unique<Digests>(std::move(digests).value());
  if (Status s = p->SetRules(std::move(rules)); !s.ok()) return s;
  auto clock = store.GetClock(options.partition);
  if (!clock.ok()) return clock.status();
  if (*clock) p->clock_ms_ = (*clock)->ms;
  // Every commit that writes a profile also writes the clock and the
  // position (a profile changes only on an event or on a timer an event
  // armed), so without either the partition holds no profile yet.
  if (!*clock) {
    auto position = store.GetPosition(options.partition);
    if (!position.ok()) return position.status();
    p->fresh_partition_ = position->empty();
  }
  if (Status s = p->LoadTimers(); !s.ok()) return s;
  if (options.outbox) {
    auto next = store.NextOutboxSequence(options.partition);
    if (!next.ok()) return next.status();
    p->next_outbox_sequence_ = *next;
  }
  return p;
}

Status Processor::SetRules(std::shared_ptr<const rules::RuleSet> rules) {
  std::vector<uint32_t> types, campaigns, aggregates;
  for (const std::string& t : rules->event_types) {
    auto s = store_.Symbol(options_.partition, SymbolKind::kEventType, t);
    if (!s.ok()) return s.status();
    types.push_back(*s);
  }
  for (const Campaign& c : rules->campaigns) {
    auto s = store_.Symbol(options_.partition, SymbolKind::kCampaign, c.id);
    if (!s.ok()) return s.status();
    campaigns.push_back(*s);
  }
  for (const rules::Aggregate& a : rules->aggregates) {
    auto s = store_.Symbol(options_.partition, SymbolKind::kAggregate, a.name);
    if (!s.ok()) return s.status();
    aggregates.push_back(*s);
  }
  // Timers in memory point at campaigns by index: carry them over by id.
  if (rules_ != nullptr && !timers_.empty()) {
    std::vector<TimerEntry> kept;
    kept.reserve(timers_.size());
    for (TimerEntry& t : timers_) {
      if (t.campaign == TimerEntry::kCustomer) {
        kept.push_back(t);
      } else if (auto ci = rules->FindCampaign(rules_->campaigns[t.campaign].id)) {
        t.campaign = *ci;
        kept.push_back(t);
      } else {
        ReleaseTimerEntry(t);
      }
    }
    timers_ = std::move(kept);
  }
  rules_ = std::move(rules);
  type_symbols_ = std::move(types);
  campaign_symbols_ = std::move(campaigns);
  aggregate_symbols_ = std::move(aggregates);
  campaign_by_symbol_.clear();
  for (size_t i = 0; i < campaign_symbols_.size(); ++i) {
    if (campaign_symbols_[i] >= campaign_by_symbol_.size()) campaign_by_symbol_.resize(campaign_symbols_[i] + 1, -1);
    campaign_by_symbol_[campaign_symbols_[i]] = static_cast<int32_t>(i);
  }
  std::make_heap(timers_.begin(), timers_.end(),
                 [this](const TimerEntry& a, const TimerEntry& b) { return TimerAfter(a, b); });
  return Status::Ok();
}

bool Processor::TimerAfter(const TimerEntry& a, const TimerEntry& b) const {
  if (a.due != b.due) return a.due > b.due;
  if (int c = TimerCustomer(a).compare(TimerCustomer(b)); c != 0) return c > 0;
  if (a.campaign == b.campaign || a.campaign == TimerEntry::kCustomer) return false;
  return b.campaign == TimerEntry::kCustomer || rules_->campaigns[a.campaign].id > rules_->campaigns[b.campaign].id;
}

Processor::TimerEntry Processor::MakeTimerEntry(int64_t due, uint32_t campaign, std::string_view customer) {
  TimerEntry entry;
  entry.due = due;
  entry.campaign = campaign;
  if (customer.size() <= sizeof entry.id) {
    entry.size = static_cast<uint8_t>(customer.size());
    std::memcpy(entry.id, customer.data(), customer.size());
    return entry;
  }
  uint32_t index;
  if (free_long_ids_.empty()) {
    index = static_cast<uint32_t>(long_ids_.size());
    long_ids_.emplace_back(customer);
  } else {
    index = free_long_ids_.back();
    free_long_ids_.pop_back();
    long_ids_[index].assign(customer);
  }
  entry.size = TimerEntry::kLongId;
  std::memcpy(entry.id, &index, sizeof index);
  return entry;
}

std::string_view Processor::TimerCustomer(const TimerEntry& t) const {
  if (t.size != TimerEntry::kLongId) return std::string_view(t.id, t.size);
  uint32_t index;
  std::memcpy(&index, t.id, sizeof index);
  return long_ids_[index];
}

void Processor::ReleaseTimerEntry(const TimerEntry& t) {
  if (t.size != TimerEntry::kLongId) return;
  uint32_t index;
  std::memcpy(&index, t.id, sizeof index);
  long_ids_[index] = std::string();
  free_long_ids_.push_back(index);
}

void Processor::AppendTimer(const TimerEntry& entry) {
  if (timers_.size() == timers_.capacity()) timers_.reserve(timers_.capacity() + timers_.capacity() / 2 + 64);
  timers_.push_back(entry);
}

void Processor::PushTimer(int64_t due, uint32_t campaign, std::string_view customer) {
  AppendTimer(MakeTimerEntry(due, campaign, customer));
  std::push_heap(timers_.begin(), timers_.end(),
                 [this](const TimerEntry& a, const TimerEntry& b) { return TimerAfter(a, b); });
}

std::optional<EventTime> Processor::clock() const {
  if (clock_ms_ == kNoTime) return std::nullopt;
  return EventTime{clock_ms_};
}

namespace {
// The due time of the profile's earliest armed timer, kNoTime if none.
int64_t EarliestArmed(const Profile& profile) {
  int64_t earliest = kNoTime;
  for (const CampaignState& c : profile.campaigns) {
    if (c.armed_due_ms != kNoTime && (earliest == kNoTime || c.armed_due_ms < earliest)) earliest = c.armed_due_ms;
  }
  return earliest;
}

// A profile as a new customer starts, keeping the vectors' capacity.
void ResetProfile(Profile* p) {
  p->first_seen_ms = kNoTime;
  p->last_seen_ms = kNoTime;
  p->total_spent_cents = 0;
  p->stage = 0;
  p->types.clear();
  p->campaigns.clear();
  p->aggregates.clear();
}
}  // namespace

// A customer's timers are in its profile; the queue gets one entry at the
// earliest (see TimerEntry).
Status Processor::LoadTimers() {
  Status bad;
  Status s = store_.ForEachProfile(options_.partition, [&](std::string_view customer, std::string_view bytes) {
    if (!bad.ok()) return;
    if (Status d = DecodeProfile(bytes, &commit_profile_); !d.ok()) {
      bad = Status::Corruption("profile of customer " + std::string(customer) + ": " + d.message());
      return;
    }
    const int64_t due = EarliestArmed(commit_profile_);
    if (due == kNoTime) return;
    AppendTimer(MakeTimerEntry(due, TimerEntry::kCustomer, customer));
    ++customers_with_timers_;
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  std::make_heap(timers_.begin(), timers_.end(),
                 [this](const TimerEntry& a, const TimerEntry& b) { return TimerAfter(a, b); });
  return Status::Ok();
}

size_t Processor::CustomerHash(std::string_view customer) { return ProfileCache::HashOf(customer); }

size_t Processor::cached_profiles() const { return cache_->size(); }

void Processor::Prefetch(size_t customer_hash, PrefetchStage stage) const {
  switch (stage) {
    case PrefetchStage::kSlot: cache_->PrefetchSlot(customer_hash); break;
    case PrefetchStage::kEntry: cache_->PrefetchEntry(customer_hash); break;
    case PrefetchStage::kBytes: cache_->PrefetchBytes(customer_hash); break;
  }
}

Result<Processor::CachedProfile*> Processor::Load(std::string_view customer) {
  // Timers firing for one customer, then its event, find it still decoded.
  if (current_.entry != CachedProfile::kNoEntry && current_.customer == customer) return &current_;
  Release();
  const size_t hash = ProfileCache::HashOf(customer);
  uint32_t entry = cache_->Find(customer, hash);
  Profile& profile = current_.profile;
  if (entry != ProfileCache::kNotFound) {
    const std::string_view bytes = cache_->bytes(entry);
    if (bytes.empty()) {
      ResetProfile(&profile);
    } else if (Status s = DecodeProfile(bytes, &profile, ProfileForm::kCached); !s.ok()) {
      return Status::Corruption("cached profile of customer " + std::string(customer) + ": " + s.message());
    }
  } else {
    bool found = false;
    // In a partition that started empty, only evicted profiles can be in the
    // store: a customer the filter has never seen is new, without a read.
    if (!fresh_partition_ || MayHaveBeenEvicted(hash)) {
      // Only a profile this processor's latest commit evicted can be in a
      // commit group still being written; any other read goes ahead.
      const bool evicted_last = std::binary_search(last_evicted_.begin(), last_evicted_.end(), hash);
      const auto when = evicted_last ? StateStore::ProfileRead::kAfterTakenGroups : StateStore::ProfileRead::kNow;
      if (Status s = store_.GetProfile(options_.partition, customer, &encoded_, &found, when); !s.ok()) return s;
    }
    if (found) {
      if (Status s = DecodeProfile(encoded_, &profile); !s.ok()) {
        return Status::Corruption("profile of customer " + std::string(customer) + ": " + s.message());
      }
      ++stats_.profiles_loaded;
    } else {
      ResetProfile(&profile);
      encoded_.clear();
      ++stats_.profiles_created;
    }
    // Stored bytes decode the same in the cached form.
    entry = cache_->Insert(customer, hash, encoded_);
  }
  current_.entry = entry;
  current_.customer.assign(customer);
  current_.modified = false;
  return &current_;
}

void Processor::Release() {
  if (current_.entry == CachedProfile::kNoEntry) return;
  const uint32_t entry = current_.entry;
  current_.entry = CachedProfile::kNoEntry;
  if (!current_.modified) return;
  encoded_.clear();
  const bool stored_form = EncodeProfile(current_.profile, &encoded_, ProfileForm::kCached);
  cache_->SetBytes(entry, encoded_, stored_form);
  if (cache_->dirty(entry)) return;
  cache_->set_dirty(entry, true);
  dirty_.push_back(entry);
}

// A Bloom filter with one 64-bit word per key: four bits of the word the
// hash picks. It is sized once, on the first eviction, for eight times the
// cache capacity at 16 bits a key (false positives well under 1%); past
// that it stops answering "certainly not" rather than answer wrongly often.
namespace {
uint64_t FilterBits(size_t hash) {
  const uint64_t h = static_cast<uint64_t>(hash) * 0x9E3779B97F4A7C15ull;
  return (1ull << (h >> 58)) | (1ull << ((h >> 52) & 63)) | (1ull << ((h >> 46) & 63)) | (1ull << ((h >> 40) & 63));
}
}  // namespace

void Processor::NoteEvicted(size_t hash) {
  if (evicted_filter_.empty()) {
    size_t words = 1;
    while (words * 4 < options_.cache_capacity * 8) words *= 2;  // 16 bits a key
    evicted_filter_.assign(words, 0);
  }
  ++evicted_count_;
  evicted_filter_[hash & (evicted_filter_.size() - 1)] |= FilterBits(hash);
}

bool Processor::MayHaveBeenEvicted(size_t hash) const {
  if (evicted_filter_.empty()) return false;
  if (evicted_count_ > evicted_filter_.size() * 4) return true;
  const uint64_t bits = FilterBits(hash);
  return (evicted_filter_[hash & (evicted_filter_.size() - 1)] & bits) == bits;
}

Result<uint32_t> Processor::EventTypeSymbol(std::string_view type, std::optional<uint32_t> rule_index) {
  if (rule_index) return type_symbols_[*rule_index];
  if (auto it = other_type_symbols_.find(type); it != other_type_symbols_.end()) return it->second;
  if (other_type_symbols_.size() >= kMaxOtherEventTypes) return UINT32_MAX;  // counted no more
  auto s = store_.Symbol(options_.partition, SymbolKind::kEventType, type);
  if (!s.ok()) return s.status();
  other_type_symbols_.emplace(std::string(type), *s);
  return *s;
}

Status Processor::Apply(const Event& event) {
  ++stats_.events;
  if (event.ts.ms > clock_ms_) {
    if (Status s = FireDue(event.ts); !s.ok()) return s;
    clock_ms_ = event.ts.ms;
  }
  const rules::RuleSet& rules = *rules_;
  const std::optional<uint32_t> rule_type = rules.FindEventType(event.type);
  auto type_symbol = EventTypeSymbol(event.type, rule_type);
  if (!type_symbol.ok()) return type_symbol.status();
  auto loaded = Load(event.customer_id);
  if (!loaded.ok()) return loaded.status();
  CachedProfile* cached = *loaded;
  Profile& profile = cached->profile;
  const std::string_view customer = cached->customer;

  // Built-in aggregates.
  const int64_t ts = event.ts.ms;
  profile.first_seen_ms = profile.first_seen_ms == kNoTime ? ts : std::min(profile.first_seen_ms, ts);
  profile.last_seen_ms = profile.last_seen_ms == kNoTime ? ts : std::max(profile.last_seen_ms, ts);
  if (*type_symbol != UINT32_MAX) {
    TypeStats& t = profile.Type(*type_symbol);
    ++t.count;
    t.last_ms = t.last_ms == kNoTime ? ts : std::max(t.last_ms, ts);
  }
  if (event.has_amount && event.type == "purchase") profile.total_spent_cents += event.amount_cents;
  if (rule_type) UpdateAggregates(event, *rule_type, profile);
  const uint8_t old_stage = profile.stage;
  profile.stage = ComputeStage(profile, customer);
  MarkDirty(cached);
  if (options_.tracer != nullptr) options_.tracer->OnEvent(event, customer, profile, old_stage);

  // No campaign can subscribe to a type the rules do not know, but such an
  // event can still move the stage: it sets last_seen, which the ladder reads
  // (and which is its now()). So only the stage's campaigns are offered then.
  if (!rule_type && profile.stage == old_stage) return Status::Ok();

  // Before this event can fire anything, so that a firing never converts on
  // the event that caused it.
  if (rule_type) CountConversions(event, *rule_type, cached);

  // Inactivity timers restart from the latest event of their type.
  if (rule_type) {
    for (uint32_t ci : rules.OnInactivity(*rule_type)) {
      const TypeStats* t = profile.FindType(type_symbols_[*rule_type]);
      ArmTimer(cached, ci, EventTime{t->last_ms} + rules.campaigns[ci].trigger.inactivity);
    }
  }

  // Candidates: campaigns on this event type, then those on the stage entered.
  candidates_.clear();
  const EventTime now = event.ts;
  auto offer = [&](uint32_t ci) {
    const Campaign& c = rules.campaigns[ci];
    bool condition_true = true;
    if (c.condition || options_.tracer != nullptr) {
      Evaluation eval(*this, profile, customer, now, &event);
      if (c.condition) {
        scratch_.Clear();
        condition_true = c.condition->Eval(eval, scratch_).IsTrue();
      }
      if (options_.tracer != nullptr) options_.tracer->OnOffered(c, customer, now, eval, condition_true);
      if (!condition_true) return;
    }
    const CampaignState* state = profile.FindCampaign(campaign_symbols_[ci]);
    if (c.delay && state != nullptr && state->armed_due_ms != kNoTime) {
      Suppress(c, customer, now, Suppression::kDelayPending);
      return;
    }
    if (auto why = CheckLimits(c, state, now)) {
      Suppress(c, customer, now, *why);
      return;
    }
    candidates_.push_back(ci);
  };
  if (rule_type) {
    for (uint32_t ci : rules.OnEvent(*rule_type)) offer(ci);
  }
  if (profile.stage != old_stage && profile.stage < rules.ladder.size()) {
    for (uint32_t ci : rules.OnStage(profile.stage)) offer(ci);
  }
  if (candidates_.empty()) return Status::Ok();
  std::sort(candidates_.begin(), candidates_.end());

  // Inside a group only the highest priority fires (the first id on a tie).
  for (size_t i = 0; i < candidates_.size(); ++i) {
    const Campaign& c = rules.campaigns[candidates_[i]];
    if (c.group.empty()) continue;
    for (size_t j = 0; j < candidates_.size(); ++j) {
      // A suppressed candidate lost to a better one, which is still listed.
      if (candidates_[j] == UINT32_MAX) continue;
      const Campaign& other = rules.campaigns[candidates_[j]];
      if (i == j || other.group != c.group) continue;
      if (other.priority > c.priority || (other.priority == c.priority && j < i)) {
        Suppress(c, customer, now, Suppression::kGroup);
        candidates_[i] = UINT32_MAX;
        break;
      }
    }
  }
  for (uint32_t ci : candidates_) {
    if (ci == UINT32_MAX) continue;
    const Campaign& c = rules.campaigns[ci];
    if (c.delay) {
      ArmTimer(cached, ci, now + *c.delay);
    } else {
      Fire(ci, cached, now, &event, c.trigger.kind == rules::TriggerKind::kStage ? "stage" : "event");
    }
  }
  return Status::Ok();
}

void Processor::UpdateAggregates(const Event& event, uint32_t rule_type, Profile& profile) {
  using F = rules::AggregateFunction;
  for (uint32_t ai : rules_->AggregatesOf(rule_type)) {
    const rules::Aggregate& agg = rules_->aggregates[ai];
    AggregateState& s = profile.Aggregate(aggregate_symbols_[ai]);
    Value v = agg.field.empty() ? Value::Number(1) : EventPath(event, agg.field);
    if (agg.function == F::kLast) {
      if (v.kind == rules::Kind::kString) {
        s.kind = AggregateState::Kind::kString;
        s.text.assign(v.string);
      } else if (v.kind == rules::Kind::kNumber) {
        s.kind = AggregateState::Kind::kNumber;
        s.number = std::llround(v.number * 100);
      } else if (v.kind == rules::Kind::kBool) {
        s.kind = AggregateState::Kind::kBool;
        s.boolean = v.boolean;
      }
      continue;
    }
    if (agg.function == F::kCount) {
      if (!v.IsPresent()) continue;
      v = Value::Number(1);
    }
    if (v.kind != rules::Kind::kNumber || !std::isfinite(v.number) || std::fabs(v.number) > 1e13) continue;
    const int64_t value = agg.function == F::kCount ? 1 : std::llround(v.number * 100);
    if (agg.window) {
      auto& w = s.window;
      auto pos = std::upper_bound(w.begin(), w.end(), event.ts.ms,
                                  [](int64_t t, const std::pair<int64_t, int64_t>& e) { return t < e.first; });
      w.insert(pos, {event.ts.ms, value});
      const int64_t horizon = w.back().first - agg.window->ms;
      auto keep = std::find_if(w.begin(), w.end(), [horizon](const auto& e) { return e.first > horizon; });
      w.erase(w.begin(), keep);
      if (w.size() > kMaxWindowEntries) w.erase(w.begin(), w.begin() + static_cast<long>(w.size() - kMaxWindowEntries));
      continue;
    }
    if (s.kind == AggregateState::Kind::kNone) {
      s.kind = AggregateState::Kind::kNumber;
      s.number = agg.function == F::kCount || agg.function == F::kSum ? 0 : value;
    }
    switch (agg.function) {
      case F::kCount:
      case F::kSum: s.number += value; break;
      case F::kMin: s.number = std::min(s.number, value); break;
      case F::kMax: s.number = std::max(s.number, value); break;
      case F::kLast: break;
    }
  }
}

uint8_t Processor::ComputeStage(const Profile& profile, std::string_view customer) {
  // The last stage whose condition holds, searched from the top: a customer
  // in stage k costs the conditions above k and k's, not all of them.
  const auto& ladder = rules_->ladder;
  Evaluation eval(*this, profile, customer, EventTime{profile.last_seen_ms}, nullptr);
  for (size_t i = std::min<size_t>(ladder.size(), 256); i-- > 1;) {
    scratch_.Clear();
    if (ladder[i].condition && ladder[i].condition->Eval(eval, scratch_).IsTrue()) return static_cast<uint8_t>(i);
  }
  return 0;
}

std::optional<Suppression> Processor::CheckLimits(const Campaign& c, const CampaignState* state,
                                                  EventTime now) const {
  if (state == nullptr || state->fired == 0) return std::nullopt;
  const rules::Limits& l = c.limits;
  if (l.once_per_customer) return Suppression::kOnce;
  if (l.cooldown && state->last_fired_ms != kNoTime && now.ms < state->last_fired_ms + l.cooldown->ms) {
    return Suppression::kCooldown;
  }
  if (l.at_most_count > 0) {
    uint32_t in_window = 0;
    for (int64_t t : state->recent_ms) {
      if (t > now.ms - l.at_most_per.ms && t <= now.ms) ++in_window;
    }
    if (in_window >= l.at_most_count) return Suppression::kCap;
  }
  return std::nullopt;
}

void Processor::ArmTimer(CachedProfile* p, uint32_t ci, EventTime due) {
  CampaignState& state = p->profile.Campaign(campaign_symbols_[ci]);
  const int64_t replaced = state.armed_due_ms;
  if (replaced == due.ms) return;
  if (options_.tracer != nullptr) {
    options_.tracer->OnTimerArmed(rules_->campaigns[ci], p->customer, due,
                                  replaced == kNoTime ? std::nullopt : std::optional<EventTime>(EventTime{replaced}));
    if (replaced != kNoTime) PushTimer(replaced, ci, p->customer);  // reported stale when it comes due
  }
  // A timer moved later keeps the customer's queue entry (TimerEntry).
  const bool moved_later = replaced != kNoTime && due.ms > replaced;
  const int64_t earliest = moved_later ? kNoTime : EarliestArmed(p->profile);  // before this one moves
  state.armed_due_ms = due.ms;
  MarkDirty(p);
  if (moved_later) return;
  if (earliest == kNoTime) ++customers_with_timers_;
  // The customer has an entry at or before its earliest timer already.
  if (earliest == kNoTime || earliest > due.ms) PushTimer(due.ms, TimerEntry::kCustomer, p->customer);
}

Status Processor::AdvanceTo(EventTime t) {
  if (Status s = FireDue(t); !s.ok()) return s;
  if (t.ms > clock_ms_) clock_ms_ = t.ms;
  return Status::Ok();
}

Status Processor::FireDue(EventTime t) {
  auto after = [this](const TimerEntry& a, const TimerEntry& b) { return TimerAfter(a, b); };
  auto pop = [&] {
    std::pop_heap(timers_.begin(), timers_.end(), after);
    const TimerEntry timer = timers_.back();
    timers_.pop_back();
    return timer;
  };
  while (!timers_.empty() && timers_.front().due <= t.ms) {
    const TimerEntry timer = pop();
    // Entries re-queued for the same time and customer are one.
    while (!timers_.empty() && !after(timers_.front(), timer)) ReleaseTimerEntry(pop());
    // The next customer's cache memory is loaded while this one's timers
    // fire, as Apply's callers load the next events' (Prefetch): firings
    // come in due order, which scatters them over the cache.
    std::optional<size_t> next_hash;
    if (!timers_.empty() && timers_.front().due <= t.ms) {
      next_hash = ProfileCache::HashOf(TimerCustomer(timers_.front()));
      cache_->PrefetchSlot(*next_hash);
    }
    Status s;
    if (timer.campaign == TimerEntry::kCustomer) {
      s = FireCustomerTimers(timer, next_hash);
    } else {
      ++stats_.stale_timers;  // replaced (with a tracer only)
      options_.tracer->OnTimerFired(rules_->campaigns[timer.campaign].id, TimerCustomer(timer), EventTime{timer.due},
                                    true);
    }
    ReleaseTimerEntry(timer);
    if (!s.ok()) return s;
  }
  if (!timers_.empty()) PrefetchNextTimer();
  return Status::Ok();
}

void Processor::PrefetchNextTimer() {
  const TimerEntry& top = timers_.front();
  NextTimerPrefetch& next = next_timer_prefetch_;
  if (top.due != next.due || top.campaign != next.campaign || TimerCustomer(top) != next.customer) {
    next.due = top.due;
    next.campaign = top.campaign;
    next.customer.assign(TimerCustomer(top));
    next.hash = ProfileCache::HashOf(next.customer);
    next.stage = 0;
  }
  if (next.stage > static_cast<uint8_t>(PrefetchStage::kBytes)) return;  // loaded
  Prefetch(next.hash, static_cast<PrefetchStage>(next.stage++));
}

Status Processor::FireCustomerTimers(const TimerEntry& timer, std::optional<size_t> next_hash) {
  auto loaded = Load(TimerCustomer(timer));
  if (!loaded.ok()) return loaded.status();
  if (next_hash) cache_->PrefetchEntry(*next_hash);
  CachedProfile* cached = *loaded;
  Profile& profile = cached->profile;
  due_timers_.clear();
  int64_t later = kNoTime;
  for (const CampaignState& c : profile.campaigns) {
    if (c.armed_due_ms == kNoTime) continue;
    if (c.armed_due_ms <= timer.due) {
      const int32_t ci = c.campaign < campaign_by_symbol_.size() ? campaign_by_symbol_[c.campaign] : -1;
      due_timers_.push_back(DueTimer{c.armed_due_ms, static_cast<uint32_t>(ci), c.campaign});
    } else if (later == kNoTime || c.armed_due_ms < later) {
      later = c.armed_due_ms;
    }
  }
  if (!due_timers_.empty()) {
    // Campaign indexes are in id order; a campaign no longer in the rules
    // (index -1) sorts last.
    std::sort(due_timers_.begin(), due_timers_.end(), [](const DueTimer& a, const DueTimer& b) {
      return a.due != b.due ? a.due < b.due : a.campaign < b.campaign;
    });
    for (const DueTimer& d : due_timers_) {
      profile.FindCampaign(d.symbol)->armed_due_ms = kNoTime;
      MarkDirty(cached);
      if (d.campaign == UINT32_MAX) {
        // Its campaign was removed: it can never fire.
        ++stats_.stale_timers;
        if (options_.tracer != nullptr) {
          symbol_name_ = store_.SymbolName(options_.partition, SymbolKind::kCampaign, d.symbol);
          options_.tracer->OnTimerFired(symbol_name_, cached->customer, EventTime{d.due}, true);
        }
        continue;
      }
      FireTimer(d.campaign, cached, EventTime{d.due});
    }
    if (later == kNoTime) --customers_with_timers_;
  }
  // Moved later since this entry was queued, or still armed after those fired.
  if (later != kNoTime) PushTimer(later, TimerEntry::kCustomer, cached->customer);
  if (next_hash) cache_->PrefetchBytes(*next_hash);
  return Status::Ok();
}

void Processor::FireTimer(uint32_t ci, CachedProfile* cached, EventTime due) {
  const Campaign& c = rules_->campaigns[ci];
  ++stats_.timers_fired;
  if (options_.tracer != nullptr) options_.tracer->OnTimerFired(c.id, cached->customer, due, false);
  if (!c.enabled) return;
  Profile& profile = cached->profile;
  const std::string_view who = cached->customer;
  Evaluation eval(*this, profile, who, due, nullptr);
  if (c.trigger.kind == rules::TriggerKind::kInactivity) {
    bool condition_true = true;
    if (c.condition) {
      scratch_.Clear();
      condition_true = c.condition->Eval(eval, scratch_).IsTrue();
    }
    if (options_.tracer != nullptr) options_.tracer->OnOffered(c, who, due, eval, condition_true);
    if (!condition_true) return;
  } else if (c.recheck) {
    scratch_.Clear();
    if (!c.recheck->Eval(eval, scratch_).IsTrue()) {
      Suppress(c, who, due, Suppression::kRecheck);
      return;
    }
  }
  if (auto why = CheckLimits(c, profile.FindCampaign(campaign_symbols_[ci]), due)) {
    Suppress(c, who, due, *why);
    return;
  }
  Fire(ci, cached, due, nullptr, c.trigger.kind == rules::TriggerKind::kInactivity ? "inactivity" : "delay");
}

bool Processor::IsHeldOut(const Campaign& c, std::string_view customer) {
  if (c.holdout_basis_points == 0) return false;
  std::string& input = digest_input_;
  input = "holdout\x1f";
  input += c.id;
  input.push_back('\x1f');
  input += customer;
  unsigned char digest[32];
  digests_->Sha256(input, digest);
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h = (h << 8) | digest[i];
  return h % 10000 < c.holdout_basis_points;
}

void Processor::Suppress(const Campaign& c, std::string_view customer, EventTime now, Suppression why) {
  if (options_.tracer != nullptr) options_.tracer->OnSuppressed(c, customer, now, why);
  ++stats_.campaigns[c.id].suppressed[static_cast<size_t>(why)];
}

void Processor::CountConversions(const Event& event, uint32_t rule_type, CachedProfile* p) {
  const std::string_view customer = p->customer;
  for (uint32_t ci : rules_->GoalsOf(rule_type)) {
    const Campaign& c = rules_->campaigns[ci];
    CampaignState* state = p->profile.FindCampaign(campaign_symbols_[ci]);
    if (state == nullptr || state->fired == 0 || state->converted || state->last_fired_ms == kNoTime) continue;
    // A late event from before the firing did not follow the action.
    if (event.ts.ms < state->last_fired_ms || event.ts.ms - state->last_fired_ms > c.goal->within.ms) continue;
    if (c.goal->condition) {
      Evaluation eval(*this, p->profile, customer, event.ts, &event);
      scratch_.Clear();
      if (!c.goal->condition->Eval(eval, scratch_).IsTrue()) continue;
    }
    state->converted = true;
    MarkDirty(p);
    CampaignCounters& counters = stats_.campaigns[c.id];
    ++(state->last_held_out ? counters.conversions_held_out : counters.conversions);
    if (options_.tracer != nullptr) {
      options_.tracer->OnConversion(c, customer, event.ts, EventTime{state->last_fired_ms}, state->last_held_out);
    }
  }
}

void Processor::Fire(uint32_t ci, CachedProfile* p, EventTime now, const Event* event, std::string_view trigger) {
  const Campaign& c = rules_->campaigns[ci];
  Profile& profile = p->profile;
  const std::string_view customer = p->customer;
  CampaignState& state = profile.Campaign(campaign_symbols_[ci]);
  ++state.fired;
  state.last_fired_ms = now.ms;
  if (c.limits.at_most_count > 0) {
    state.recent_ms.push_back(now.ms);
    if (state.recent_ms.size() > c.limits.at_most_count) state.recent_ms.erase(state.recent_ms.begin());
  }
  MarkDirty(p);
  const bool held_out = IsHeldOut(c, customer);
  state.last_held_out = held_out;
  state.converted = false;
  CampaignCounters& counters = stats_.campaigns[c.id];
  ++(held_out ? counters.held_out : counters.fired);

  char ts[kRfc3339Length];
  FormatRfc3339(now, ts);
  for (size_t ai = 0; ai < c.actions.size(); ++ai) {
    const rules::Action& action = c.actions[ai];
    // The id is a digest of what identifies this firing, so the same input
    // always yields the same id. A stage entry is digested as "event", as
    // before stage entries were reported as such, so its ids did not change.
    std::string& identity = digest_input_;
    identity = c.id;
    for (std::string_view part : {customer, std::string_view(ts, sizeof ts),
                                  trigger == "stage" ? std::string_view("event") : trigger,
                                  event ? event->type : std::string_view(), event ? event->event_id : std::string_view()}) {
      identity.push_back('\x1f');
      identity.append(part);
    }
    identity.push_back('\x1f');
    char index[24];
    identity.append(index, std::to_chars(index, index + sizeof index, ai).ptr);
    unsigned char digest[32];
    digests_->Sha256(identity, digest);
    char action_id[32];
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 16; ++i) {
      action_id[2 * i] = kHex[digest[i] >> 4];
      action_id[2 * i + 1] = kHex[digest[i] & 0xF];
    }
    const std::string_view id(action_id, sizeof action_id);

    scratch_.Clear();
    Evaluation eval(*this, profile, customer, now, event);
    eval.set_action_id(id);
    action_json_.clear();
    JsonWriter w(&action_json_);
    w.BeginObject();
    w.Key("action_id");
    w.String(id);
    w.Key("campaign");
    w.String(c.id);
    w.Key("customer_id");
    w.String(customer);
    w.Key("ts");
    w.String(std::string_view(ts, sizeof ts));
    w.Key("channel");
    w.String(action.channel);
    w.Key("template");
    w.String(action.template_name);
    w.Key("payload");
    std::string text;
    auto render = [&](auto& self, const rules::PayloadNode& node) -> void {
      using K = rules::PayloadNode::Kind;
      switch (node.kind) {
        case K::kLiteral: w.Raw(node.literal_json); break;
        case K::kObject:
          w.BeginObject();
          for (const auto& [key, child] : node.members) {
            w.Key(key);
            self(self, child);
          }
          w.EndObject();
          break;
        case K::kArray:
          w.BeginArray();
          for (const auto& child : node.items) self(self, child);
          w.EndArray();
          break;
        case K::kTemplate:
          if (node.single_expression) {
            WriteValue(w, node.exprs[0]->Eval(eval, scratch_), &text);
          } else {
            std::string rendered;
            for (size_t i = 0; i < node.exprs.size(); ++i) {
              rendered += node.text[i];
              rules::AppendAsText(node.exprs[i]->Eval(eval, scratch_), &rendered);
            }
            rendered += node.text.back();
            w.String(rendered);
          }
          break;
      }
    };
    render(render, action.payload);
    w.Key("trigger");
    w.BeginObject();
    w.Key("kind");
    w.String(trigger);
    if (trigger == "stage") {
      w.Key("stage");
      w.String(rules_->ladder[c.trigger.stage].name);
    }
    if (event != nullptr) {
      w.Key("event_type");
      w.String(event->type);
      if (!event->event_id.empty()) {
        w.Key("event_id");
        w.String(event->event_id);
      }
    } else if (c.delay) {
      w.Key("armed_at");
      w.String(FormatRfc3339(EventTime{now.ms - c.delay->ms}));
    } else if (c.trigger.kind == rules::TriggerKind::kInactivity) {
      w.Key("event_type");
      w.String(rules_->event_types[c.trigger.event_type]);
      w.Key("inactive_since");
      w.String(FormatRfc3339(EventTime{now.ms - c.trigger.inactivity.ms}));
    }
    w.EndObject();
    w.Key("held_out");
    w.Bool(held_out);
    w.EndObject();
    if (options_.outbox) {
      batch_.PutOutbox(options_.partition, next_outbox_sequence_++, customer, held_out, action_json_);
    }
    const FiredAction fired{action_json_, id, &c, customer, now, held_out};
    if (options_.tracer != nullptr) options_.tracer->OnFired(fired);
    sink_.Deliver(fired);
  }
}

// The first 16 bytes of `key`, zero-padded, as a number that orders like the
// bytes: equal prefixes need the whole keys compared.
Processor::Prefix Processor::KeyPrefix(std::string_view key) {
  unsigned char bytes[16] = {};
  std::memcpy(bytes, key.data(), std::min(key.size(), sizeof bytes));
  Prefix prefix{0, 0};
  for (int i = 0; i < 8; ++i) prefix.first = (prefix.first << 8) | bytes[i];
  for (int i = 8; i < 16; ++i) prefix.second = (prefix.second << 8) | bytes[i];
  return prefix;
}

Status Processor::Commit(std::string_view position) { return Write(&position); }

Status Processor::WriteBack() { return Write(nullptr); }

Status Processor::Write(const std::string_view* position) {
  // Profiles are written sorted: a bulk load writes them straight into a
  // table file, which takes keys only in order, and a memtable inserts them
  // fastest so (each insert starts from where the previous one ended). The
  // keys of one batch are all distinct, so the order changes nothing else.
  // Sorting on a copy of each key's first 16 bytes keeps the comparisons
  // out of cold memory (ids are rarely longer).
  Release();
  sorted_dirty_.clear();
  for (const uint32_t entry : dirty_) sorted_dirty_.push_back(SortKey{KeyPrefix(cache_->customer(entry)), entry});
  std::sort(sorted_dirty_.begin(), sorted_dirty_.end(), [this](const SortKey& a, const SortKey& b) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    return cache_->customer(a.entry) < cache_->customer(b.entry);
  });
  for (const SortKey& k : sorted_dirty_) {
    const uint32_t entry = k.entry;
    if (!cache_->stored_form(entry)) {
      // Drops the campaign entries that hold nothing, in memory too.
      if (Status s = DecodeProfile(cache_->bytes(entry), &commit_profile_, ProfileForm::kCached); !s.ok()) {
        return Status::Corruption("cached profile of customer " + std::string(cache_->customer(entry)) + ": " +
                                  s.message());
      }
      commit_profile_.Compact();
      encoded_.clear();
      EncodeProfile(commit_profile_, &encoded_);
      cache_->SetBytes(entry, encoded_, true);
    }
    const std::string_view customer = cache_->customer(entry);  // SetBytes may have moved it
    batch_.PutProfile(options_.partition, customer, cache_->bytes(entry));
    cache_->set_dirty(entry, false);
  }
  dirty_.clear();
  if (position != nullptr) {
    if (clock_ms_ != kNoTime) batch_.SetClock(options_.partition, EventTime{clock_ms_});
    batch_.SetPosition(options_.partition, *position);
  }
  if (Status s = store_.Commit(batch_); !s.ok()) return s;
  ++stats_.commits;
  // Every cached profile is clean now. No event comes before the group of
  // the commit before this one is written (see Commit()), so only this
  // commit's evictions can be ahead of the store when the next read comes.
  // Only a commit can be in a group: a bulk load's write-backs, which evict
  // a quarter of the cache each, need no list.
  last_evicted_.clear();
  if (cache_->size() > options_.cache_capacity) {
    // Down to three quarters of the bound, so that the next commits do not
    // each evict a few.
    cache_->Evict(options_.cache_capacity / 4 * 3, [this, position](size_t hash) {
      if (fresh_partition_) NoteEvicted(hash);
      if (position != nullptr) last_evicted_.push_back(hash);
    });
    std::sort(last_evicted_.begin(), last_evicted_.end());
  }
  return Status::Ok();
}

}  // namespace rapport

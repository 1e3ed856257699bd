// Processor: applies one stream's events, in order, to customer state and
// fires the campaigns (docs/rule-language.md, "How campaigns run").
//
// For each event: advance the stream clock to the event's time, firing every
// timer due at or before it in (due, customer, campaign) order; load the
// profile (cache, then RocksDB); update the built-in and declared aggregates
// and the ladder stage; re-arm inactivity timers; offer the event to the
// campaigns subscribed to its type (and to those of a ladder stage it
// entered), in campaign-id order; apply limits, group priority and holdout;
// then fire the actions or arm the delay timers.
//
// Actions go to the ActionSink as they fire. State changes stay in a
// bounded write-back cache and reach RocksDB in Commit(), one WriteBatch per
// commit group holding profiles, the clock and the source position. A
// timer is its due time in the profile's campaign entry; the processor keeps
// them in a queue in memory, which Open() fills from the partition's
// profiles.
//
// Lifecycle and threads: one Processor per stream (a file, a Kafka
// partition), used from one thread. It borrows the StateStore and the sink,
// which must outlive it. SetRules() swaps the rule set between events.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rapport/engine/event.h"
#include "rapport/engine/profile.h"
#include "rapport/engine/state_store.h"
#include "rapport/engine/status.h"
#include "rapport/engine/time.h"
#include "rapport/rules/expr.h"
#include "rapport/rules/rule_set.h"

namespace rapport {

class Digests;
class ProfileCache;

// Why a campaign that matched did not send.
#define RAPPORT_SUPPRESSIONS(X)          \
  X(kOnce, "once_per_customer")          \
  X(kCooldown, "cooldown")               \
  X(kCap, "at_most")                     \
  X(kGroup, "group_priority")            \
  X(kRecheck, "recheck_failed")          \
  X(kDelayPending, "delay_already_pending")

enum class Suppression : uint8_t {
#define RAPPORT_X(e, name) e,
  RAPPORT_SUPPRESSIONS(RAPPORT_X)
#undef RAPPORT_X
};
inline constexpr size_t kSuppressionCount = 0
#define RAPPORT_X(e, name) +1
    RAPPORT_SUPPRESSIONS(RAPPORT_X)
#undef RAPPORT_X
    ;
std::string_view SuppressionName(Suppression s);

// One action as it fires.
struct FiredAction {
  std::string_view json;  // the action object, without a newline
  std::string_view action_id;
  const rules::Campaign* campaign;
  std::string_view customer_id;
  EventTime ts;
  bool held_out;
};

class ActionSink {
 public:
  virtual ~ActionSink() = default;
  virtual void Deliver(const FiredAction& action) = 0;
};

// Sees each decision the processor makes, for `rapport explain`, `rapport
// test` and reports. Every method has an empty default; a Processor without
// a tracer pays one pointer test per decision. Called on the processor's
// thread; references are valid only during the call.
class ProcessorTracer {
 public:
  virtual ~ProcessorTracer() = default;
  // An event was applied: aggregates and the stage are already updated.
  virtual void OnEvent(const Event& /*event*/, std::string_view /*customer*/, const Profile& /*profile*/,
                       uint8_t /*old_stage*/) {}
  // A campaign was offered to a customer and its condition evaluated (true
  // when it has none). `context` can evaluate more expressions, e.g. each
  // part of the condition.
  virtual void OnOffered(const rules::Campaign& /*campaign*/, std::string_view /*customer*/, EventTime /*now*/,
                         const rules::EvalContext& /*context*/, bool /*condition_true*/) {}
  virtual void OnSuppressed(const rules::Campaign& /*campaign*/, std::string_view /*customer*/, EventTime /*now*/,
                            Suppression /*why*/) {}
  // A timer was armed; `replaced` is the due time of the one it replaced.
  virtual void OnTimerArmed(const rules::Campaign& /*campaign*/, std::string_view /*customer*/, EventTime /*due*/,
                            std::optional<EventTime> /*replaced*/) {}
  // A timer came due; stale when it had been replaced or its campaign removed.
  virtual void OnTimerFired(std::string_view /*campaign_id*/, std::string_view /*customer*/, EventTime /*due*/,
                            bool /*stale*/) {}
  // An action fired (or was held out); the same as the sink sees.
  virtual void OnFired(const FiredAction& /*action*/) {}
  // The customer reached the campaign's goal at `now`, within its window
  // after the firing at `fired_at`; `held_out` is that firing's. At most one
  // per firing.
  virtual void OnConversion(const rules::Campaign& /*campaign*/, std::string_view /*customer*/, EventTime /*now*/,
                            EventTime /*fired_at*/, bool /*held_out*/) {}
};

struct CampaignCounters {
  uint64_t fired = 0;     // actions delivered (not held out)
  uint64_t held_out = 0;  // firings recorded for the holdout group
  // Goals reached after a delivered firing, and after a held-out one.
  uint64_t conversions = 0;
  uint64_t conversions_held_out = 0;
  uint64_t suppressed[kSuppressionCount] = {};
};

struct ProcessorStats {
  uint64_t events = 0;
  uint64_t timers_fired = 0;
  uint64_t stale_timers = 0;
  uint64_t profiles_loaded = 0;  // read from RocksDB (cache misses)
  uint64_t profiles_created = 0;
  uint64_t commits = 0;
  std::map<std::string, CampaignCounters> campaigns;  // by campaign id
};

struct ProcessorOptions {
  uint32_t partition = 0;
  // Secret for coupon codes: without it codes are guessable.
  std::string coupon_secret;
  // Profiles kept in memory; clean ones beyond this are dropped after a commit.
  size_t cache_capacity = 1 << 20;
  // Also write each fired action to the store's outbox, in the commit batch
  // with the state and position, for a dispatcher to deliver (rapport run).
  bool outbox = false;
  // Sees every decision; null in production. Must outlive the processor.
  ProcessorTracer* tracer = nullptr;
};

class Processor {
 public:
  // Loads the partition's clock from the store, and its timers from the
  // profiles: a corrupt profile fails the open, naming its customer.
  static Result<std::unique_ptr<Processor>> Open(StateStore& store, std::shared_ptr<const rules::RuleSet> rules,
                                                 ActionSink& sink, const ProcessorOptions& options);
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Applies one decoded event. Errors are RocksDB failures only: bad events
  // never reach here (the decoder rejects them).
  Status Apply(const Event& event);
  // Fires every timer due at or before `t` and moves the clock there if it is
  // later. The end of a replay calls it with the final clock (or --until);
  // live daemons call it with the wall clock.
  Status AdvanceTo(EventTime t);
  // Writes every change since the last commit, with the source position, in
  // one batch. Inside a commit group (StateStore::BeginCommitGroup) the
  // batch is held, and profiles evicted from the cache may be read back
  // before the group is written: such reads wait for it. The caller must
  // not apply events after a commit until the group of the commit before
  // it has been written (the daemon's next commit waits for it anyway).
  Status Commit(std::string_view position);
  // Writes the changes as Commit() does but not the clock and position, so
  // that the cache may drop the profiles: for a bulk load, whose state is
  // not a point to resume from until its final commit.
  Status WriteBack();
  // The hash Apply() looks a customer up by; a caller that knows the
  // customers of the next events can pass theirs to Prefetch() a few events
  // ahead, stage by stage (each reads what the one before loaded: kSlot
  // about eight events ahead, kEntry four, kBytes two), so that the lookups
  // find the cache's memory already loaded.
  enum class PrefetchStage : uint8_t { kSlot, kEntry, kBytes };
  static size_t CustomerHash(std::string_view customer);
  void Prefetch(size_t customer_hash, PrefetchStage stage) const;
  // Profiles changed since the last commit (or write-back): they stay in
  // memory until then.
  size_t dirty_profiles() const { return dirty_.size(); }
  // Profiles in memory, changed or not.
  size_t cached_profiles() const;
  // Swaps the rule set; takes effect for the next event.
  Status SetRules(std::shared_ptr<const rules::RuleSet> rules);
  // Changes ProcessorOptions::cache_capacity; a smaller bound takes effect
  // at the next commit. For a process whose processors share one budget.
  void SetCacheCapacity(size_t profiles) { options_.cache_capacity = profiles; }

  // The stream clock: the largest event time seen (nullopt before any).
  std::optional<EventTime> clock() const;
  const ProcessorStats& stats() const { return stats_; }
  // Customers with at least one timer armed (one timer key each).
  size_t customers_with_timers() const { return customers_with_timers_; }
  const rules::RuleSet& rules() const { return *rules_; }

  class Evaluation;  // the EvalContext of one campaign evaluation

 private:
  // The profile being worked on, decoded from its cache entry. There is one
  // at a time, reused for every event (so that an event allocates nothing),
  // and it goes back to its entry, encoded, when the next profile is loaded
  // or at the commit.
  struct CachedProfile {
    static constexpr uint32_t kNoEntry = UINT32_MAX;
    uint32_t entry = kNoEntry;  // in the ProfileCache
    std::string customer;
    Profile profile;
    bool modified = false;
  };
  // A customer's place in the timer queue: due at `due`, when the timers of
  // its profile that are due by then fire, in campaign-id order. There is an
  // entry at or before the customer's earliest armed timer; a timer moved
  // later keeps it, and an entry that comes up with nothing due re-queues
  // itself for the earliest (FireCustomerTimers). So re-arming the same
  // inactivity timers on every visit pushes nothing, and a customer with
  // many campaigns' timers is one entry, not one per campaign.
  // With a tracer, a replaced timer also leaves an entry for its campaign,
  // which reports it stale when it comes due.
  // 24 bytes, trivially copied by the heap (the heap is a large part of a
  // replay's memory): the customer id inline when it fits, else an index
  // into long_ids_.
  struct TimerEntry {
    static constexpr uint8_t kLongId = 0xFF;
    static constexpr uint32_t kCustomer = UINT32_MAX;
    int64_t due;
    uint32_t campaign;  // kCustomer, or a replaced timer's index into rules_->campaigns
    uint8_t size;       // of the inline id, or kLongId
    char id[11];
  };
  static_assert(sizeof(TimerEntry) == 24);
  // Appends to the heap's vector, growing it by half rather than doubling.
  void AppendTimer(const TimerEntry& entry);
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  Processor(StateStore& store, ActionSink& sink, const ProcessorOptions& options);
  Status LoadTimers();
  Result<CachedProfile*> Load(std::string_view customer);
  // Encodes the current profile back into its entry if it changed.
  void Release();
  void MarkDirty(CachedProfile* p) { p->modified = true; }
  void NoteEvicted(size_t hash);
  bool MayHaveBeenEvicted(size_t hash) const;
  Result<uint32_t> EventTypeSymbol(std::string_view type, std::optional<uint32_t> rule_index);

  // Commit() with a position, WriteBack() without.
  Status Write(const std::string_view* position);
  Status FireDue(EventTime t);
  // Loads the cache memory of the next timer's customer, one stage per call
  // (Prefetch): a timer usually comes due a few events after it reaches the
  // top of the queue, and firings in due order scatter over the cache.
  void PrefetchNextTimer();
  // Fires the customer's timers due by the entry's time; re-queues it for
  // its next one. Prefetches the cache memory of `next_hash`, the customer
  // of the timer due next, if any.
  Status FireCustomerTimers(const TimerEntry& timer, std::optional<size_t> next_hash);
  // Fires one campaign's timer, already cleared in the profile.
  void FireTimer(uint32_t campaign_index, CachedProfile* p, EventTime due);
  bool TimerAfter(const TimerEntry& a, const TimerEntry& b) const;
  void PushTimer(int64_t due, uint32_t campaign, std::string_view customer);
  TimerEntry MakeTimerEntry(int64_t due, uint32_t campaign, std::string_view customer);
  std::string_view TimerCustomer(const TimerEntry& t) const;
  // Frees the entry's long id, if it has one, once the entry is gone.
  void ReleaseTimerEntry(const TimerEntry& t);
  void UpdateAggregates(const Event& event, uint32_t rule_type, Profile& profile);
  uint8_t ComputeStage(const Profile& profile, std::string_view customer);
  std::optional<Suppression> CheckLimits(const rules::Campaign& c, const CampaignState* state, EventTime now) const;
  void ArmTimer(CachedProfile* p, uint32_t campaign_index, EventTime due);
  // Sends (or holds out) the campaign's actions and records the firing.
  void Fire(uint32_t campaign_index, CachedProfile* p, EventTime now, const Event* event, std::string_view trigger);
  void Suppress(const rules::Campaign& c, std::string_view customer, EventTime now, Suppression why);
  // Counts a conversion for each campaign whose goal this event reaches.
  void CountConversions(const Event& event, uint32_t rule_type, CachedProfile* p);
  bool IsHeldOut(const rules::Campaign& c, std::string_view customer);

  StateStore& store_;
  ActionSink& sink_;
  ProcessorOptions options_;
  std::shared_ptr<const rules::RuleSet> rules_;
  // Symbols of the rule set's event types, campaigns and aggregates.
  std::vector<uint32_t> type_symbols_, campaign_symbols_, aggregate_symbols_;
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> other_type_symbols_;

  // Profiles in memory, encoded, and the one decoded to work on.
  std::unique_ptr<ProfileCache> cache_;
  // Action ids, coupons and holdouts; its contexts are scratch state, used
  // from const evaluations too.
  std::unique_ptr<Digests> digests_;
  CachedProfile current_;
  // Cache entries of the profiles changed since the last commit.
  std::vector<uint32_t> dirty_;
  // The timer PrefetchNextTimer() last saw at the top, and the stages done.
  struct NextTimerPrefetch {
    int64_t due = kNoTime;
    uint32_t campaign = 0;
    std::string customer;
    size_t hash = 0;
    uint8_t stage = 0;  // the next PrefetchStage to run
  };
  NextTimerPrefetch next_timer_prefetch_;
  Profile commit_profile_;  // Commit() and Open() decode profiles into it
  // True when the partition held nothing at Open: then a customer is in the
  // store only if its profile was committed and evicted from the cache since,
  // which this filter of evicted customers' hashes remembers.
  bool fresh_partition_ = false;
  std::vector<uint64_t> evicted_filter_;
  size_t evicted_count_ = 0;
  // Hashes of the customers the latest commit evicted, sorted: a read of
  // one waits for the commit group being written (StateStore::GetProfile).
  std::vector<size_t> last_evicted_;
  // A min-heap in firing order: (due, customer, campaign id).
  std::vector<TimerEntry> timers_;
  std::deque<std::string> long_ids_;
  std::vector<uint32_t> free_long_ids_;
  size_t customers_with_timers_ = 0;
  // FireCustomerTimers' list of the timers due: (due, campaign index, symbol).
  struct DueTimer {
    int64_t due;
    uint32_t campaign, symbol;
  };
  std::vector<DueTimer> due_timers_;
  // campaign symbol -> index into rules_->campaigns, or -1.
  std::vector<int32_t> campaign_by_symbol_;
  int64_t clock_ms_ = kNoTime;
  uint64_t next_outbox_sequence_ = 0;
  CommitBatch batch_;

  // A dirty profile in the commit's key order.
  using Prefix = std::pair<uint64_t, uint64_t>;
  static Prefix KeyPrefix(std::string_view key);
  struct SortKey {
    Prefix prefix;
    uint32_t entry;
  };
  std::vector<SortKey> sorted_dirty_;

  rules::Scratch scratch_;
  // digest_input_: what an action id or a holdout draw digests.
  std::string action_json_, encoded_, symbol_name_, digest_input_;
  std::vector<uint32_t> candidates_;
  ProcessorStats stats_;
};

}  // namespace rapport

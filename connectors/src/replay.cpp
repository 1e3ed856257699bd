#include "rapport/connectors/replay.h"

#include <pthread.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "rapport/connectors/dead_letter.h"
#include "rapport/connectors/jsonl_reader.h"

namespace rapport::connectors {

Result<std::unique_ptr<ScratchDirectory>> ScratchDirectory::Create(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return Status::IoError("cannot create a temporary directory " + pattern + ": " + std::strerror(errno));
  }
  return std::unique_ptr<ScratchDirectory>(new ScratchDirectory(pattern));
}

ScratchDirectory::~ScratchDirectory() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::unique_ptr<JsonlActionSink>> JsonlActionSink::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<JsonlActionSink>(new JsonlActionSink(stdout, false, "stdout"));
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
  return std::unique_ptr<JsonlActionSink>(new JsonlActionSink(f, true, path));
}

JsonlActionSink::~JsonlActionSink() {
  (void)Flush();
  if (owns_) std::fclose(file_);
}

void JsonlActionSink::Deliver(const FiredAction& action) {
  buffer_.append(action.json);
  buffer_.push_back('\n');
  if (buffer_.size() >= (1 << 20)) (void)Flush();
}

Status JsonlActionSink::Flush() {
  if (!buffer_.empty()) {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) failed_ = true;
    buffer_.clear();
  }
  if (std::fflush(file_) != 0) failed_ = true;
  if (failed_) {
    failed_ = false;
    return Status::IoError("writing actions to " + path_ + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

namespace {

// True when the directory is absent or empty: nothing in it can be lost, so
// it may be filled as a bulk load and split between processors.
bool IsFreshDirectory(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return !ec;
  return std::filesystem::is_directory(dir, ec) && std::filesystem::is_empty(dir, ec) && !ec;
}

// The shared parts of a replay: the input, its rejections and the summary.
struct ReplayInput {
  std::unique_ptr<JsonlReader> reader;
  std::unique_ptr<DeadLetterFile> dead_letters;
  EventDecoder decoder;
  Rejection rejection;
  Line line;

  std::string Position() const { return Position(reader->position()); }
  std::string Position(uint64_t offset) const { return reader->path() + ":" + std::to_string(offset); }

  // Reads the next line that decodes into *event, counting and dead-lettering
  // the others. False at the end (or on an error: *status says which).
  bool NextEvent(Event* event, ReplaySummary* summary, Status* status) {
    return NextEvent(decoder, event, summary, status);
  }
  // The same with another decoder, which *event then points into.
  bool NextEvent(EventDecoder& with, Event* event, ReplaySummary* summary, Status* status) {
    while (reader->Next(&line)) {
      ++summary->lines;
      bool ok;
      if (line.too_long) {
        ok = false;
        rejection.reason = RejectReason::kTooLarge;
        rejection.message = "event is larger than " + std::to_string(kMaxEventBytes) + " bytes";
      } else {
        ok = with.Decode(line.text, event, &rejection);
      }
      if (ok) {
        ++summary->accepted;
        return true;
      }
      ++summary->rejected;
      ++summary->rejected_by_reason[static_cast<size_t>(rejection.reason)];
      if (dead_letters) {
        DeadLetter letter{reader->path(), line.number, -1, line.offset, rejection.reason, rejection.message,
                          line.text};
        if (Status s = dead_letters->Write(letter); !s.ok()) {
          *status = s;
          return false;
        }
      }
    }
    *status = reader->status();
    return false;
  }
};

// A bulk load's commits are no points to resume from (a crash leaves a
// directory to discard), so it writes a profile back only when memory asks
// for it: when the cache (the changed profiles and the clean ones kept, at
// most three quarters of the bound after a write-back) is full. So a
// customer seen many times between two write-backs is written once, and
// when the customers fit in the cache every profile is written once, at the
// end: the final compaction then has one version of each to merge (1M
// customers: one write instead of three or four at three quarters changed,
// a rule kept from before the full cache was a trigger).
bool WriteBackDue(const Processor& p, size_t cache_capacity) {
  return p.dirty_profiles() > 0 && p.cached_profiles() >= cache_capacity;
}

Status ReplayOneThread(const ReplayOptions& options, bool bulk_load, ReplayInput& in, Processor& p,
                       ReplaySummary* summary) {
  // Events are decoded a few ahead of the one applied, each by its own
  // decoder (an Event points into its decoder), so that the cache memory of
  // the customers applied next is loaded while this one is processed
  // (Processor::Prefetch): the lookup's cache misses are most of a
  // 1M-customer replay's time otherwise.
  constexpr size_t kAhead = 8, kEntryAhead = 4, kBytesAhead = 2;
  struct Decoded {
    EventDecoder decoder;
    Event event;
    uint64_t end_offset = 0;  // the reader's position just past its line
    size_t customer_hash = 0;
  };
  auto ring = std::make_unique<Decoded[]>(kAhead);
  uint64_t decoded = 0, applied = 0;
  bool more = true;
  Status status;
  uint64_t since_commit = 0;
  for (;;) {
    while (more && decoded - applied < kAhead) {
      Decoded& d = ring[decoded % kAhead];
      if (!in.NextEvent(d.decoder, &d.event, summary, &status)) {
        more = false;
        break;
      }
      d.end_offset = in.reader->position();
      d.customer_hash = Processor::CustomerHash(d.event.customer_id);
      p.Prefetch(d.customer_hash, Processor::PrefetchStage::kSlot);
      ++decoded;
    }
    if (applied == decoded) break;
    if (applied + kEntryAhead < decoded) {
      p.Prefetch(ring[(applied + kEntryAhead) % kAhead].customer_hash, Processor::PrefetchStage::kEntry);
    }
    if (applied + kBytesAhead < decoded) {
      p.Prefetch(ring[(applied + kBytesAhead) % kAhead].customer_hash, Processor::PrefetchStage::kBytes);
    }
    const Decoded& d = ring[applied % kAhead];
    if (Status s = p.Apply(d.event); !s.ok()) return s;
    ++applied;
    if (bulk_load) {
      if (WriteBackDue(p, options.cache_capacity)) {
        if (Status s = p.WriteBack(); !s.ok()) return s;
      }
    } else if (++since_commit >= options.commit_every) {
      if (Status s = p.Commit(in.Position(d.end_offset)); !s.ok()) return s;
      since_commit = 0;
    }
  }
  if (!status.ok()) return status;
  std::optional<EventTime> end = p.clock();
  if (options.until && (!end || *options.until > *end)) end = options.until;
  if (end) {
    if (Status s = p.AdvanceTo(*end); !s.ok()) return s;
  }
  if (Status s = p.Commit(in.Position()); !s.ok()) return s;
  summary->processor = p.stats();
  summary->final_clock = p.clock();
  summary->customers_with_timers = p.customers_with_timers();
  return Status::Ok();
}

// --- Several processors -----------------------------------------------------
//
// The reader numbers the accepted events (steps) and gives each processor,
// per batch, a list of work items: every step at which the stream clock
// moves (each processor must fire its timers then, as one processor would
// for all customers), its own customers' events, and the commits. Each
// processor's actions are tagged with their step and phase (timers fired as
// the clock moved, or the event itself); merging the tagged lists by (step,
// phase, due, customer, campaign) gives back the one-processor order, since a
// single processor fires the timers of a step by taking the smallest
// (due, customer, campaign) of all of them, one at a time.

struct WorkItem {
  enum : uint8_t { kAdvance = 1, kApply = 2, kCommit = 4, kEnd = 8 };
  uint64_t step;
  int64_t clock;         // the stream clock after this step
  uint32_t event;        // index in Batch::events (kApply)
  size_t customer_hash;  // Processor::CustomerHash of the event's customer (kApply)
  uint8_t kinds;
};

// An event as the reading thread decoded it: the processor that applies it
// takes these fields instead of decoding the line again, and parses the line
// only if a rule reads another field (EventDecoder::Rebuild). Strings are
// spans of Batch::text.
struct RoutedEvent {
  struct Span {
    uint32_t begin, size;
  };
  Span text, type, customer_id, event_id;
  int64_t ts_ms, amount_cents;
  bool has_amount;
};

struct TaggedAction {
  uint64_t step;
  bool from_event;  // false: fired by a timer as the clock moved
  bool held_out;
  int64_t ts;
  const rules::Campaign* campaign;
  uint32_t json_begin, json_size, id_begin, id_size, customer_begin, customer_size;  // into ShardSink::text
};

// Collects a processor's actions with their place in the stream.
class ShardSink final : public ActionSink {
 public:
  void Deliver(const FiredAction& a) override {
    const auto put = [this](std::string_view part, uint32_t* begin, uint32_t* size) {
      *begin = static_cast<uint32_t>(text.size());
      *size = static_cast<uint32_t>(part.size());
      text.append(part);
    };
    TaggedAction& t = actions.emplace_back();
    t.step = step;
    t.from_event = from_event;
    t.held_out = a.held_out;
    t.ts = a.ts.ms;
    t.campaign = a.campaign;
    put(a.json, &t.json_begin, &t.json_size);
    put(a.action_id, &t.id_begin, &t.id_size);
    put(a.customer_id, &t.customer_begin, &t.customer_size);
  }
  std::string_view View(uint32_t begin, uint32_t size) const { return std::string_view(text).substr(begin, size); }
  void Clear() {
    actions.clear();
    text.clear();
  }

  uint64_t step = 0;
  bool from_event = false;
  std::vector<TaggedAction> actions;
  std::string text;
};

struct Batch {
  uint64_t sequence = 0;
  // The accepted lines of the batch, each followed by its decoded strings
  // (RoutedEvent), then padding.
  std::string text;
  std::vector<RoutedEvent> events;
  std::vector<std::vector<WorkItem>> items;  // per processor
  std::string end_position;  // the source position at the end (kCommit)
  std::vector<ShardSink> sinks;  // per processor
  unsigned pending = 0;  // processors still working on it
  bool published = false;
};

class ShardedReplay {
 public:
  static constexpr size_t kBatches = 3;
  static constexpr size_t kBatchEvents = 16384;

  ShardedReplay(const ReplayOptions& options, ReplayInput& in, StateStore& store, ActionSink& sink, unsigned threads)
      : options_(options), in_(in), store_(store), sink_(sink), threads_(threads), batches_(kBatches) {
    for (Batch& b : batches_) {
      b.items.resize(threads_);
      b.sinks.resize(threads_);
    }
  }

  ~ShardedReplay() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  Status Run(std::shared_ptr<const rules::RuleSet> rules, const ProcessorOptions& processor_options,
             ReplaySummary* summary) {
    rules_ = rules.get();
    ProcessorOptions each = processor_options;
    each.cache_capacity = std::max<size_t>(1, (processor_options.cache_capacity + threads_ - 1) / threads_);
    // Opened in turn, so the rule set's symbols get the ids one processor
    // would give them.
    for (unsigned i = 0; i < threads_; ++i) {
      shards_.push_back(std::make_unique<Shard>());
      auto p = Processor::Open(store_, rules, shards_.back()->sink, each);
      if (!p.ok()) return p.status();
      shards_.back()->processor = std::move(*p);
    }
    for (unsigned i = 0; i < threads_; ++i) {
      workers_.emplace_back([this, i] {
        pthread_setname_np(pthread_self(), "rapport:shard");  // for top -H and perf
        Work(i);
      });
    }

    cache_share_ = each.cache_capacity;
    Event event;
    Status status;
    uint64_t step = 0;
    int64_t clock = kNoTime;
    std::unordered_set<std::string> unknown_types;
    Batch* batch = nullptr;
    while (in_.NextEvent(&event, summary, &status)) {
      if (batch == nullptr) {
        auto b = Acquire();
        if (!b.ok()) return b.status();
        batch = *b;
      }
      // A type the rules do not know gets its symbol from the first event of
      // that type, as one processor would create it: the processors then find it.
      if (!rules_->FindEventType(event.type) && unknown_types.size() < kMaxUnknownTypes &&
          unknown_types.emplace(event.type).second) {
        // A replay is partition 0.
        if (auto s = store_.Symbol(0, SymbolKind::kEventType, event.type); !s.ok()) return s.status();
      }
      const bool advances = event.ts.ms > clock;
      if (advances) clock = event.ts.ms;
      const size_t customer_hash = Processor::CustomerHash(event.customer_id);
      const unsigned owner = static_cast<unsigned>(customer_hash % threads_);
      const auto index = static_cast<uint32_t>(batch->events.size());
      RoutedEvent& routed = batch->events.emplace_back();
      auto put = [batch](std::string_view part) {
        RoutedEvent::Span span{static_cast<uint32_t>(batch->text.size()), static_cast<uint32_t>(part.size())};
        batch->text.append(part);
        return span;
      };
      routed.text = put(in_.line.text);
      routed.type = put(event.type);
      routed.customer_id = put(event.customer_id);
      routed.event_id = put(event.event_id);
      routed.ts_ms = event.ts.ms;
      routed.amount_cents = event.amount_cents;
      routed.has_amount = event.has_amount;
      for (unsigned i = 0; i < threads_; ++i) {
        uint8_t kinds = (advances ? WorkItem::kAdvance : 0) | (i == owner ? WorkItem::kApply : 0);
        if (kinds == 0) continue;
        batch->items[i].push_back(WorkItem{step, clock, index, customer_hash, kinds});
      }
      ++step;
      if (batch->events.size() >= kBatchEvents || batch->text.size() >= (8u << 20)) {
        if (Status s = Publish(batch); !s.ok()) return s;
        batch = nullptr;
      }
    }
    if (!status.ok()) return status;
    if (batch == nullptr) {
      auto b = Acquire();
      if (!b.ok()) return b.status();
      batch = *b;
    }
    // The end: fire what is due at the final clock (or --until), commit.
    std::optional<EventTime> end;
    if (clock != kNoTime) end = EventTime{clock};
    if (options_.until && (!end || *options_.until > *end)) end = options_.until;
    batch->end_position = in_.Position();
    for (unsigned i = 0; i < threads_; ++i) {
      batch->items[i].push_back(WorkItem{step, end ? end->ms : kNoTime, 0, 0,
                                         static_cast<uint8_t>((end ? WorkItem::kEnd : 0) | WorkItem::kCommit)});
    }
    if (Status s = Publish(batch); !s.ok()) return s;
    while (merged_ < published_) {
      if (Status s = MergeOldest(); !s.ok()) return s;
    }

    summary->processor = ProcessorStats();
    for (auto& shard : shards_) {
      const ProcessorStats& st = shard->processor->stats();
      ProcessorStats& sum = summary->processor;
      sum.events += st.events;
      sum.timers_fired += st.timers_fired;
      sum.stale_timers += st.stale_timers;
      sum.profiles_loaded += st.profiles_loaded;
      sum.profiles_created += st.profiles_created;
      sum.commits += st.commits;
      for (const auto& [id, c] : st.campaigns) {
        CampaignCounters& into = sum.campaigns[id];
        into.fired += c.fired;
        into.held_out += c.held_out;
        into.conversions += c.conversions;
        into.conversions_held_out += c.conversions_held_out;
        for (size_t k = 0; k < kSuppressionCount; ++k) into.suppressed[k] += c.suppressed[k];
      }
      summary->customers_with_timers += shard->processor->customers_with_timers();
    }
    summary->final_clock = shards_.front()->processor->clock();
    return Status::Ok();
  }

 private:
  // As many as one processor creates symbols for (processor.cpp).
  static constexpr size_t kMaxUnknownTypes = 1024;

  struct Shard {
    ShardSink sink;
    std::unique_ptr<Processor> processor;
    EventDecoder decoder;
    Status status;
  };

  // The next batch to fill; merges the oldest first when all are in use.
  Result<Batch*> Acquire() {
    while (published_ - merged_ >= kBatches) {
      if (Status s = MergeOldest(); !s.ok()) return s;
    }
    Batch& b = batches_[published_ % kBatches];
    b.sequence = published_;
    b.text.clear();
    b.events.clear();
    for (auto& items : b.items) items.clear();
    b.end_position.clear();
    return &b;
  }

  Status Publish(Batch* b) {
    // The decoder reads a little past each line.
    b->text.append(kEventPadding, ' ');
    {
      std::lock_guard lock(mu_);
      b->pending = threads_;
      b->published = true;
      ++published_;
    }
    work_.notify_all();
    return Status::Ok();
  }

  // Waits for the oldest published batch and writes its actions in order.
  Status MergeOldest() {
    Batch& b = batches_[merged_ % kBatches];
    {
      std::unique_lock lock(mu_);
      done_.wait(lock, [&b] { return b.pending == 0; });
      b.published = false;
    }
    for (auto& shard : shards_) {
      if (!shard->status.ok()) return shard->status;
    }
    std::vector<size_t> next(threads_, 0);
    for (;;) {
      int best = -1;
      for (unsigned i = 0; i < threads_; ++i) {
        if (next[i] == b.sinks[i].actions.size()) continue;
        if (best < 0 || Before(b.sinks[i], b.sinks[i].actions[next[i]], b.sinks[best], b.sinks[best].actions[next[best]])) {
          best = static_cast<int>(i);
        }
      }
      if (best < 0) break;
      const ShardSink& from = b.sinks[best];
      const TaggedAction& a = from.actions[next[best]++];
      sink_.Deliver(FiredAction{from.View(a.json_begin, a.json_size), from.View(a.id_begin, a.id_size), a.campaign,
                                from.View(a.customer_begin, a.customer_size), EventTime{a.ts}, a.held_out});
    }
    for (ShardSink& s : b.sinks) s.Clear();
    ++merged_;
    return Status::Ok();
  }

  static bool Before(const ShardSink& sa, const TaggedAction& a, const ShardSink& sb, const TaggedAction& b) {
    if (a.step != b.step) return a.step < b.step;
    if (a.from_event != b.from_event) return !a.from_event;
    if (a.ts != b.ts) return a.ts < b.ts;
    if (int c = sa.View(a.customer_begin, a.customer_size).compare(sb.View(b.customer_begin, b.customer_size)); c != 0) {
      return c < 0;
    }
    return a.campaign->id < b.campaign->id;
  }

  void Work(unsigned index) {
    Shard& shard = *shards_[index];
    for (uint64_t sequence = 0;; ++sequence) {
      Batch& b = batches_[sequence % kBatches];
      {
        std::unique_lock lock(mu_);
        work_.wait(lock, [&] { return stopping_ || (b.published && b.sequence == sequence && b.pending > 0); });
        if (!(b.published && b.sequence == sequence && b.pending > 0)) return;
      }
      if (shard.status.ok()) shard.status = RunItems(shard, b, b.items[index]);
      // The batch takes the actions; the sink keeps the batch's old buffers.
      std::swap(shard.sink.actions, b.sinks[index].actions);
      std::swap(shard.sink.text, b.sinks[index].text);
      shard.sink.Clear();
      {
        std::lock_guard lock(mu_);
        --b.pending;
      }
      done_.notify_all();
    }
  }

  Status RunItems(Shard& shard, const Batch& b, const std::vector<WorkItem>& items) {
    Processor& p = *shard.processor;
    ShardSink& sink = shard.sink;
    Event event;
    // The customers' cache memory, loaded ahead (Processor::Prefetch).
    constexpr size_t kSlotAhead = 8, kEntryAhead = 4, kBytesAhead = 2;
    // And the event as the reading thread left it, in another core's cache:
    // its RoutedEvent first, then the strings it points to.
    using Stage = Processor::PrefetchStage;
    auto prefetch = [&](size_t at, Stage stage) {
      if (at >= items.size() || !(items[at].kinds & WorkItem::kApply)) return;
      p.Prefetch(items[at].customer_hash, stage);
      const RoutedEvent& routed = b.events[items[at].event];
      if (stage == Stage::kSlot) {
        __builtin_prefetch(&routed);
      } else if (stage == Stage::kEntry) {
        __builtin_prefetch(b.text.data() + routed.type.begin);
      }
    };
    for (size_t i = 0; i < kSlotAhead; ++i) {
      prefetch(i, i < kBytesAhead ? Stage::kBytes : i < kEntryAhead ? Stage::kEntry : Stage::kSlot);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      const WorkItem& item = items[i];
      prefetch(i + kSlotAhead, Stage::kSlot);
      prefetch(i + kEntryAhead, Stage::kEntry);
      prefetch(i + kBytesAhead, Stage::kBytes);
      sink.step = item.step;
      if (item.kinds & (WorkItem::kAdvance | WorkItem::kEnd)) {
        sink.from_event = false;
        if (Status s = p.AdvanceTo(EventTime{item.clock}); !s.ok()) return s;
      }
      if (item.kinds & WorkItem::kApply) {
        sink.from_event = true;
        const RoutedEvent& routed = b.events[item.event];
        auto view = [&b](RoutedEvent::Span span) { return std::string_view(b.text).substr(span.begin, span.size); };
        event.type = view(routed.type);
        event.customer_id = view(routed.customer_id);
        event.event_id = view(routed.event_id);
        event.ts = EventTime{routed.ts_ms};
        event.amount_cents = routed.amount_cents;
        event.has_amount = routed.has_amount;
        shard.decoder.Rebuild(view(routed.text), &event);
        if (Status s = p.Apply(event); !s.ok()) return s;
      }
      if (WriteBackDue(p, cache_share_)) {
        if (Status s = p.WriteBack(); !s.ok()) return s;
      }
      if (item.kinds & WorkItem::kCommit) {
        if (Status s = p.Commit(b.end_position); !s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  const ReplayOptions& options_;
  ReplayInput& in_;
  StateStore& store_;
  ActionSink& sink_;
  const unsigned threads_;
  size_t cache_share_ = 0;  // each processor's cache_capacity
  const rules::RuleSet* rules_ = nullptr;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::thread> workers_;
  std::vector<Batch> batches_;
  uint64_t published_ = 0, merged_ = 0;  // batches; only the reading thread touches these

  std::mutex mu_;
  std::condition_variable work_, done_;
  bool stopping_ = false;
};

}  // namespace

Result<ReplaySummary> RunReplay(const ReplayOptions& options, std::shared_ptr<const rules::RuleSet> rules,
                                ActionSink& sink) {
  const auto start = std::chrono::steady_clock::now();
  ReplaySummary summary;

  std::unique_ptr<ScratchDirectory> scratch;
  std::string state_dir = options.state_dir;
  if (state_dir.empty()) {
    auto dir = ScratchDirectory::Create("rapport-replay");
    if (!dir.ok()) return dir.status();
    scratch = std::move(*dir);
    state_dir = scratch->path();
  }
  const bool fresh = IsFreshDirectory(state_dir);
  StateStoreOptions store_options;
  store_options.bulk_load = fresh;
  auto store = StateStore::Open(state_dir, store_options);
  if (!store.ok()) return store.status();

  ReplayInput in;
  auto reader = JsonlReader::Open(options.events_path);
  if (!reader.ok()) return reader.status();
  in.reader = std::move(*reader);
  if (!options.dead_letter_path.empty()) {
    auto dl = DeadLetterFile::Open(options.dead_letter_path);
    if (!dl.ok()) return dl.status();
    in.dead_letters = std::move(*dl);
  }

  ProcessorOptions processor_options;
  processor_options.coupon_secret = options.coupon_secret;
  processor_options.cache_capacity = options.cache_capacity;
  processor_options.tracer = options.tracer;
  // A store with state in it has timers that a split would have to sort out
  // by customer; a tracer expects one processor's calls.
  const unsigned threads = fresh && options.tracer == nullptr ? std::max(1u, options.threads) : 1u;
  summary.threads = threads;
  summary.bulk_load = fresh;
  if (threads == 1) {
    auto processor = Processor::Open(**store, std::move(rules), sink, processor_options);
    if (!processor.ok()) return processor.status();
    if (Status s = ReplayOneThread(options, fresh, in, **processor, &summary); !s.ok()) return s;
  } else {
    ShardedReplay sharded(options, in, **store, sink, threads);
    if (Status s = sharded.Run(std::move(rules), processor_options, &summary); !s.ok()) return s;
  }
  if (in.dead_letters) {
    if (Status s = in.dead_letters->Flush(); !s.ok()) return s;
  }
  if (fresh) {
    // Without a write-ahead log, nothing is durable before this.
    if (Status s = (*store)->Flush(); !s.ok()) return s;
    if (Status s = (*store)->Compact(); !s.ok()) return s;
  }
  summary.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

namespace {

std::string Thousands(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

void Row(std::string* out, std::string_view label, const std::string& value, int width = 24) {
  out->append("  ");
  out->append(label);
  out->append(static_cast<size_t>(std::max<int>(1, width - static_cast<int>(label.size()))), ' ');
  out->append(value);
  out->push_back('\n');
}

// Conversion rates of the campaigns with a goal: conversions per firing,
// treated and held out. Nothing when no campaign has a goal.
void AppendConversions(std::string* out, const ReplaySummary& s, const rules::RuleSet& rules) {
  char line[256];
  bool header = false;
  auto rate = [](uint64_t conversions, uint64_t firings) {
    if (firings == 0) return std::string("-");
    char text[32];
    std::snprintf(text, sizeof text, "%.1f%%", 100.0 * static_cast<double>(conversions) / static_cast<double>(firings));
    return std::string(text);
  };
  for (const rules::Campaign& c : rules.campaigns) {
    if (!c.goal) continue;
    if (!header) {
      std::snprintf(line, sizeof line, "  %-30s %12s %10s %12s %10s\n", "goal reached (conversions)", "treated", "rate",
                    "held out", "rate");
      *out += line;
      header = true;
    }
    auto it = s.processor.campaigns.find(c.id);
    CampaignCounters counters = it == s.processor.campaigns.end() ? CampaignCounters{} : it->second;
    std::snprintf(line, sizeof line, "  %-30s %12s %10s %12s %10s\n", c.id.c_str(),
                  Thousands(counters.conversions).c_str(), rate(counters.conversions, counters.fired).c_str(),
                  c.holdout_basis_points == 0 ? "no holdout" : Thousands(counters.conversions_held_out).c_str(),
                  rate(counters.conversions_held_out, counters.held_out).c_str());
    *out += line;
  }
  if (header) *out += "\n";
}

}  // namespace

std::string FormatReplaySummary(const ReplaySummary& s, const rules::RuleSet& rules) {
  std::string out = "replay summary\n";
  Row(&out, "events read", Thousands(s.lines));
  Row(&out, "accepted", Thousands(s.accepted));
  Row(&out, "rejected", Thousands(s.rejected));
  for (size_t r = 0; r < kRejectReasonCount; ++r) {
    if (s.rejected_by_reason[r] > 0) {
      Row(&out, "  " + std::string(RejectReasonName(static_cast<RejectReason>(r))), Thousands(s.rejected_by_reason[r]));
    }
  }
  Row(&out, "timers fired", Thousands(s.processor.timers_fired));
  Row(&out, "customers with timers", Thousands(s.customers_with_timers));
  // A bulk load's are write-backs, one per processor as its cache fills.
  Row(&out, "state writes", Thousands(s.processor.commits));
  if (s.final_clock) Row(&out, "final clock", FormatRfc3339(*s.final_clock));
  char line[256];
  std::snprintf(line, sizeof line, "\n  %-30s %10s %10s  %s\n", "campaign", "actions", "held out", "suppressed");
  out += line;
  uint64_t total = 0, held = 0;
  for (const rules::Campaign& c : rules.campaigns) {
    auto it = s.processor.campaigns.find(c.id);
    CampaignCounters counters = it == s.processor.campaigns.end() ? CampaignCounters{} : it->second;
    std::string suppressed;
    for (size_t k = 0; k < kSuppressionCount; ++k) {
      if (counters.suppressed[k] == 0) continue;
      if (!suppressed.empty()) suppressed += ", ";
      suppressed += std::string(SuppressionName(static_cast<Suppression>(k))) + " " + Thousands(counters.suppressed[k]);
    }
    std::snprintf(line, sizeof line, "  %-30s %10s %10s  %s%s\n", c.id.c_str(), Thousands(counters.fired).c_str(),
                  Thousands(counters.held_out).c_str(), suppressed.empty() ? "-" : suppressed.c_str(),
                  c.enabled ? "" : " (disabled)");
    out += line;
    total += counters.fired;
    held += counters.held_out;
  }
  std::snprintf(line, sizeof line, "  %-30s %10s %10s\n\n", "total", Thousands(total).c_str(), Thousands(held).c_str());
  out += line;
  AppendConversions(&out, s, rules);
  const double rate = s.wall_seconds > 0 ? static_cast<double>(s.lines) / s.wall_seconds : 0;
  std::snprintf(line, sizeof line, "  wall time %.2f s, %s events/s\n", s.wall_seconds,
                Thousands(static_cast<uint64_t>(rate)).c_str());
  out += line;
  return out;
}

}  // namespace rapport::connectors

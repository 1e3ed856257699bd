#include "rapport/connectors/daemon.h"

#include <pthread.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <set>
#include <vector>

#include "rapport/connectors/changelog.h"
#include "rapport/connectors/jsonl_reader.h"
#include "rapport/connectors/outbox_dispatcher.h"
#include "rapport/connectors/sinks.h"
#include "rapport/engine/event.h"
#include "rapport/engine/state_store.h"

namespace rapport::connectors {
namespace {

using Clock = std::chrono::steady_clock;

EventTime SystemWallClock() {
  return EventTime{
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count()};
}

std::optional<int64_t> ParseOffset(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}

// Counts what fires and passes it on to the observer.
class CountingSink : public ActionSink {
 public:
  explicit CountingSink(ActionSink* observer) : observer_(observer) {}
  void Deliver(const FiredAction& action) override {
    ++fired;
    if (observer_ != nullptr) observer_->Deliver(action);
  }
  uint64_t fired = 0;

 private:
  ActionSink* observer_;
};

// The consumer's messages, taken from its queue up to 256 at a time: one
// lock round and one clock read per batch, where consume() costs both, a
// C++ wrapper and a clock read more per message. Callbacks (rebalance,
// errors, offset commits) are served inside Take() as inside consume().
class ConsumerBatch {
 public:
  explicit ConsumerBatch(RdKafka::KafkaConsumer& consumer)
      : queue_(rd_kafka_queue_get_consumer(consumer.c_ptr())) {}
  ~ConsumerBatch() {
    Release();
    rd_kafka_queue_destroy(queue_);
  }
  ConsumerBatch(const ConsumerBatch&) = delete;
  ConsumerBatch& operator=(const ConsumerBatch&) = delete;

  // Releases the previous batch, then takes what is queued; if nothing is,
  // waits up to timeout_ms for one message (a wait for a full batch would
  // hold the first message back until the timeout).
  size_t Take(int timeout_ms) {
    Release();
    ssize_t n = rd_kafka_consume_batch_queue(queue_, 0, messages_.data(), messages_.size());
    if (n == 0 && timeout_ms > 0) n = rd_kafka_consume_batch_queue(queue_, timeout_ms, messages_.data(), 1);
    size_ = n > 0 ? static_cast<size_t>(n) : 0;
    return size_;
  }
  const rd_kafka_message_t& operator[](size_t i) const { return *messages_[i]; }

  static constexpr size_t kMaxMessages = 256;

 private:
  void Release() {
    for (size_t i = 0; i < size_; ++i) rd_kafka_message_destroy(messages_[i]);
    size_ = 0;
  }

  rd_kafka_queue_t* queue_;  // the consumer group's queue, which consume() reads
  std::array<rd_kafka_message_t*, kMaxMessages> messages_{};
  size_t size_ = 0;
};

// Runs one job at a time on its own thread: the daemon replicates and writes
// a commit group there while its consumer goes on with the next events.
// Failures are sticky: after one, every Wait() reports it.
class BackgroundCommit {
 public:
  BackgroundCommit() : thread_([this] { Loop(); }) {}
  ~BackgroundCommit() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  BackgroundCommit(const BackgroundCommit&) = delete;
  BackgroundCommit& operator=(const BackgroundCommit&) = delete;

  // Waits for the job before it (jobs run in the order started), then starts
  // `job`; its result comes from a later Start() or Wait().
  Status Start(std::function<Status()> job) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !job_ && !running_; });
    if (!failure_.ok()) return failure_;
    job_ = std::move(job);
    busy_ = true;
    cv_.notify_all();
    return Status::Ok();
  }
  // True while a job waits or runs.
  bool busy() const { return busy_.load(std::memory_order_relaxed); }
  // Waits until no job is running or waiting.
  Status Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !job_ && !running_; });
    return failure_;
  }

 private:
  void Loop() {
    pthread_setname_np(pthread_self(), "rapport:commit");  // for top -H and perf
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || job_; });
      if (!job_) return;
      std::function<Status()> job = std::exchange(job_, nullptr);
      running_ = true;
      lock.unlock();
      Status result = job();
      lock.lock();
      running_ = false;
      busy_ = false;
      if (failure_.ok()) failure_ = result;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<Status()> job_;
  bool running_ = false, stopping_ = false;
  std::atomic<bool> busy_{false};
  Status failure_;
  std::thread thread_;
};

void AddCounters(CampaignCounters& into, const CampaignCounters& from) {
  into.fired += from.fired;
  into.held_out += from.held_out;
  for (size_t i = 0; i < kSuppressionCount; ++i) into.suppressed[i] += from.suppressed[i];
}

}  // namespace

class Daemon::Impl : public RdKafka::RebalanceCb, public RdKafka::EventCb, public RdKafka::OffsetCommitCb {
 public:
  Impl(const RunConfig& config, std::shared_ptr<const rules::RuleSet> rules, DaemonOptions options)
      : config_(config), rules_(std::move(rules)), options_(std::move(options)), sink_(options_.observer) {
    if (!options_.wall_clock) options_.wall_clock = SystemWallClock;
    if (!options_.log) options_.log = [](const std::string&) {};
    padded_.resize(kMaxEventBytes + kEventPadding);
  }

  Status Open();
  Status Run();
  void RequestStop() { stop_ = true; }
  void RequestReload() { reload_ = true; }
  void StopWhenConsumed(std::map<int32_t, int64_t> end_offsets) {
    std::lock_guard lock(stats_mu_);
    stop_at_ = std::move(end_offsets);
  }
  DaemonStats stats() const {
    std::lock_guard lock(stats_mu_);
    DaemonStats s = stats_;
    if (dispatcher_) {
      s.delivered = dispatcher_->delivered();
      s.delivery_failures = dispatcher_->failures();
    }
    return s;
  }

  // RdKafka callbacks, on the Run() thread (inside ConsumerBatch::Take()).
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;
  void event_cb(RdKafka::Event& event) override;
  void offset_commit_cb(RdKafka::ErrorCode err, std::vector<RdKafka::TopicPartition*>& /*offsets*/) override {
    if (err != RdKafka::ERR_NO_ERROR && err != RdKafka::ERR__NO_OFFSET) mirror_again_ = true;
  }

 private:
  struct Partition {
    std::unique_ptr<Processor> processor;
    int64_t next_offset = -1;  // -1: nothing consumed yet
    bool dirty = false;
    // It fired actions since its last commit: they leave once it commits.
    bool actions_waiting = false;
    Clock::time_point last_event{};
  };

  void Log(const std::string& line) { options_.log(line); }
  Result<Partition*> OpenPartition(int32_t partition);
  void ShareCacheCapacity();
  Status ClosePartition(int32_t partition);
  // Decodes and applies one event; rejected ones go to the dead letters.
  Status Handle(Partition& p, std::string_view text, bool too_long, const DeadLetter& where);
  // kAll: every dirty partition, and the interval and budget start again.
  // kActionsWaiting: only the partitions whose actions wait for a commit,
  // so that at low rates an action costs the changelog requests of its own
  // partition rather than of every partition that saw an event.
  enum class CommitScope { kAll, kActionsWaiting };
  Status Commit(CommitScope scope = CommitScope::kAll);
  Status CommitPartition(int32_t id, Partition& p);
  // Applies fn to p and notes whether it fired actions.
  template <typename Fn>
  Status Firing(Partition& p, Fn&& fn) {
    const uint64_t fired = sink_.fired;
    Status s = fn();
    if (sink_.fired != fired && !p.actions_waiting) {
      p.actions_waiting = true;
      ++partitions_with_actions_;
    }
    return s;
  }
  // Commits when the budget is spent: after each event of a batch, whose
  // clock-reading checks (Tick) run once at its end.
  Status CommitIfBudgetSpent() {
    return uncommitted_ >= config_.commit_max_events ? Commit(CommitScope::kAll) : Status::Ok();
  }
  // The interval, the budget and, in wall mode, idle partitions' clocks, as
  // of `now`. `drained`: the consumer had nothing more to hand over.
  Status Tick(Clock::time_point now, bool drained = false);
  void MaybeReload();
  Status RunKafka();
  Status RunFile();
  Status Shutdown();
  Status OpenChangelog();
  // The group's committed offset of an input partition (-1: none).
  int64_t CommittedOffset(RdKafka::KafkaConsumer* consumer, int32_t partition);
  Status Restore(RdKafka::KafkaConsumer* consumer, int32_t partition);
  std::string Name(int32_t partition) const {
    return config_.kafka_source->topic + "[" + std::to_string(partition) + "]";
  }

  RunConfig config_;
  std::shared_ptr<const rules::RuleSet> rules_;
  DaemonOptions options_;
  CountingSink sink_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<OutboxDispatcher> dispatcher_;
  std::unique_ptr<DeadLetterOutput> dead_letters_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<Changelog> changelog_;  // with a Kafka source
  std::unique_ptr<StandbyReplicas> standby_;  // with standby_replicas > 0
  std::set<uint32_t> owned_;              // partitions assigned to this instance
  std::map<int32_t, Partition> partitions_;
  // With a Kafka source: replicates and writes each commit group while the
  // next events are processed. Declared after what its jobs use, so that it
  // stops first.
  std::unique_ptr<BackgroundCommit> background_;
  Status callback_error_;  // a failure inside a librdkafka callback, raised by Run()

  // The messages of the batch being applied: their partitions and their
  // customers' hashes (RunKafka).
  static constexpr size_t kSlotAhead = 8, kEntryAhead = 4, kBytesAhead = 2;
  struct Ahead {
    Partition* partition = nullptr;  // nullptr: not this instance's (or an error)
    size_t customer_hash = 0;
  };
  std::array<Ahead, ConsumerBatch::kMaxMessages> ahead_{};
  void Prefetch(size_t i, size_t n, Processor::PrefetchStage stage) const {
    if (i < n && ahead_[i].partition != nullptr) {
      ahead_[i].partition->processor->Prefetch(ahead_[i].customer_hash, stage);
    }
  }

  EventDecoder decoder_;
  Event event_;
  Rejection rejection_;
  std::string padded_;
  uint64_t uncommitted_ = 0;
  size_t partitions_with_actions_ = 0;  // with actions_waiting set
  // Counted on the Run() thread without a lock; published at each commit.
  struct {
    uint64_t events = 0, accepted = 0, rejected = 0;
    Clock::time_point first_event;
  } counts_;
  Clock::time_point last_commit_ = Clock::now();

  std::atomic<bool> stop_{false}, reload_{false};
  bool mirror_again_ = false;  // a group commit failed: commit every partition's position next time
  mutable std::mutex stats_mu_;
  DaemonStats stats_;
  std::map<std::string, CampaignCounters> closed_counters_;  // of processors already closed
  std::map<int32_t, int64_t> stop_at_;
};

Status Daemon::Impl::Open() {
  StateStoreOptions store_options;
  // A commit is what the outbox and the offsets rely on. With a Kafka
  // source the changelog, written first with acks=all, is the durable copy:
  // a local write lost to a power cut leaves the local checkpoint behind it,
  // and the next assignment restores the difference, so there is no fsync
  // on the commit path. A file source has no changelog: its commits fsync.
  store_options.sync = !config_.kafka_source.has_value();
  auto store = StateStore::Open(config_.state_dir, store_options);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);

  std::vector<std::unique_ptr<ActionOutput>> outputs;
  for (const SinkConfig& sink : config_.sinks) {
    Result<std::unique_ptr<ActionOutput>> out = Status::InvalidArgument("unknown sink");
    switch (sink.kind) {
      case SinkConfig::Kind::kKafka: out = OpenKafkaOutput(sink.kafka); break;
      case SinkConfig::Kind::kFile: out = OpenFileOutput(sink.file); break;
      case SinkConfig::Kind::kWebhook: out = OpenWebhookOutput(sink.webhook); break;
    }
    if (!out.ok()) return out.status();
    Log("sink " + (*out)->Describe());
    outputs.push_back(std::move(*out));
  }
  dispatcher_ = std::make_unique<OutboxDispatcher>(*store_, std::move(outputs), options_.log);

  switch (config_.dead_letter.kind) {
    case DeadLetterConfig::Kind::kNone: break;
    case DeadLetterConfig::Kind::kFile: {
      auto dl = OpenDeadLetterFileOutput(config_.dead_letter.topic_or_path);
      if (!dl.ok()) return dl.status();
      dead_letters_ = std::move(*dl);
      break;
    }
    case DeadLetterConfig::Kind::kKafka: {
      auto dl = OpenDeadLetterKafkaOutput(config_.dead_letter.properties, config_.dead_letter.topic_or_path);
      if (!dl.ok()) return dl.status();
      dead_letters_ = std::move(*dl);
      break;
    }
  }

  if (config_.kafka_source) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    KafkaProperties props = config_.kafka_source->properties;
    props.emplace("auto.offset.reset", "earliest");
    // 2.0.2 backs the fetcher off for a whole second when its queue is full.
    props.emplace("queued.min.messages", "1000000");
    props["group.id"] = config_.application_id;
    props["enable.auto.commit"] = "false";
    props["enable.auto.offset.store"] = "false";
    props["partition.assignment.strategy"] = "cooperative-sticky";
    for (const auto& [key, value] : props) {
      if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
        return Status::InvalidArgument("kafka property " + key + ": " + err);
      }
    }
    if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) != RdKafka::Conf::CONF_OK ||
        conf->set("event_cb", static_cast<RdKafka::EventCb*>(this), err) != RdKafka::Conf::CONF_OK ||
        conf->set("offset_commit_cb", static_cast<RdKafka::OffsetCommitCb*>(this), err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("kafka consumer: " + err);
    }
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) return Status::InvalidArgument("kafka consumer: " + err);
    if (Status s = OpenChangelog(); !s.ok()) return s;
    background_ = std::make_unique<BackgroundCommit>();
  }
  return Status::Ok();
}

Status Daemon::Impl::OpenChangelog() {
  const std::string& topic = config_.kafka_source->topic;
  std::string err;
  std::unique_ptr<RdKafka::Topic> input(RdKafka::Topic::create(consumer_.get(), topic, nullptr, err));
  if (!input) return Status::InvalidArgument("topic " + topic + ": " + err);
  RdKafka::Metadata* raw = nullptr;
  RdKafka::ErrorCode e = consumer_->metadata(false, input.get(), &raw, 10000);
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  if (e != RdKafka::ERR_NO_ERROR || metadata->topics()->size() != 1 ||
      (*metadata->topics())[0]->err() != RdKafka::ERR_NO_ERROR) {
    return Status::Unavailable("input topic " + topic + " is not there: " +
                               RdKafka::err2str(e != RdKafka::ERR_NO_ERROR || metadata->topics()->empty()
                                                    ? e
                                                    : (*metadata->topics())[0]->err()));
  }
  const auto partitions = static_cast<int32_t>((*metadata->topics())[0]->partitions()->size());
  ChangelogOptions options;
  options.topic = config_.application_id + "-changelog";
  options.properties = config_.kafka_source->properties;
  options.log = options_.log;
  auto changelog = Changelog::Open(options);
  if (!changelog.ok()) return changelog.status();
  if (Status s = (*changelog)->EnsureTopic(partitions); !s.ok()) return s;
  changelog_ = std::move(*changelog);
  store_->SetChangeListener(changelog_.get());
  // Nothing is this instance's until the group assigns it.
  dispatcher_->SetPartitions(std::set<uint32_t>{});
  if (config_.standby_replicas > 0) {
    auto standby = StandbyReplicas::Start(*store_, options, config_.application_id, partitions,
                                          [this](int32_t p) { return CommittedOffset(consumer_.get(), p); });
    if (!standby.ok()) return standby.status();
    standby_ = std::move(*standby);
  }
  return Status::Ok();
}

int64_t Daemon::Impl::CommittedOffset(RdKafka::KafkaConsumer* consumer, int32_t partition) {
  std::vector<RdKafka::TopicPartition*> tps = {
      RdKafka::TopicPartition::create(config_.kafka_source->topic, partition)};
  int64_t offset = -1;
  if (consumer->committed(tps, 10000) == RdKafka::ERR_NO_ERROR && tps[0]->err() == RdKafka::ERR_NO_ERROR &&
      tps[0]->offset() >= 0) {
    offset = tps[0]->offset();
  }
  delete tps[0];
  return offset;
}

Status Daemon::Impl::Restore(RdKafka::KafkaConsumer* consumer, int32_t partition) {
  const int64_t committed = CommittedOffset(consumer, partition);
  auto result = changelog_->Restore(*store_, static_cast<uint32_t>(partition), committed, Name(partition));
  if (!result.ok()) return result.status();
  auto position = store_->GetPosition(static_cast<uint32_t>(partition));
  if (!position.ok()) return position.status();
  const std::string resume = position->empty() ? "the group's offset" : "offset " + *position;
  if (!result->restored) {
    Log("state of " + Name(partition) + " is current (changelog offset " + std::to_string(result->to) +
        "); input resumes at " + resume);
    return Status::Ok();
  }
  const double rate = result->seconds > 0 ? static_cast<double>(result->records) / result->seconds : 0;
  char line[512];
  std::snprintf(line, sizeof(line),
                "restored %s from changelog offsets %lld..%lld: %llu records (%llu of an unfinished commit "
                "skipped) in %.2f s, %.0f records/s; input resumes at %s",
                Name(partition).c_str(), static_cast<long long>(result->from), static_cast<long long>(result->to),
                static_cast<unsigned long long>(result->records), static_cast<unsigned long long>(result->skipped),
                result->seconds, rate, resume.c_str());
  Log(line);
  return Status::Ok();
}

Result<Daemon::Impl::Partition*> Daemon::Impl::OpenPartition(int32_t id) {
  ProcessorOptions po;
  po.partition = static_cast<uint32_t>(id);
  po.coupon_secret = config_.coupon_secret;
  po.outbox = true;
  po.cache_capacity = std::max<size_t>(1, config_.cache_capacity / (partitions_.size() + 1));
  auto processor = Processor::Open(*store_, rules_, sink_, po);
  if (!processor.ok()) return processor.status();
  Partition& p = partitions_[id];
  p.processor = std::move(*processor);
  ShareCacheCapacity();
  p.last_event = Clock::now();
  auto position = store_->GetPosition(po.partition);
  if (!position.ok()) return position.status();
  if (!position->empty()) {
    auto offset = ParseOffset(*position);
    if (!offset) return Status::Corruption("stored position of partition " + std::to_string(id) + " is not an offset");
    p.next_offset = *offset;
    std::lock_guard lock(stats_mu_);
    stats_.positions[id] = p.next_offset;
  }
  return &p;
}

Status Daemon::Impl::CommitPartition(int32_t id, Partition& p) {
  if (p.actions_waiting) {
    p.actions_waiting = false;
    --partitions_with_actions_;
  }
  if (!p.dirty) return Status::Ok();
  if (Status s = p.processor->Commit(std::to_string(p.next_offset)); !s.ok()) return s;
  p.dirty = false;
  std::lock_guard lock(stats_mu_);
  stats_.positions[id] = p.next_offset;
  return Status::Ok();
}

Status Daemon::Impl::ClosePartition(int32_t id) {
  auto it = partitions_.find(id);
  if (it == partitions_.end()) return Status::Ok();
  if (dead_letters_) {
    if (Status s = dead_letters_->Flush(); !s.ok()) return s;
  }
  if (Status s = CommitPartition(id, it->second); !s.ok()) return s;
  for (const auto& [campaign, counters] : it->second.processor->stats().campaigns) {
    AddCounters(closed_counters_[campaign], counters);
  }
  partitions_.erase(it);
  ShareCacheCapacity();
  dispatcher_->Notify();
  return Status::Ok();
}

// cache_capacity bounds the profiles of the whole process: each partition
// owned gets an equal share, recomputed as partitions come and go.
void Daemon::Impl::ShareCacheCapacity() {
  if (partitions_.empty()) return;
  const size_t share = std::max<size_t>(1, config_.cache_capacity / partitions_.size());
  for (auto& [id, p] : partitions_) p.processor->SetCacheCapacity(share);
}

Status Daemon::Impl::Handle(Partition& p, std::string_view text, bool too_long, const DeadLetter& where) {
  if (counts_.events++ == 0) counts_.first_event = Clock::now();
  bool ok = false;
  if (too_long || text.size() > kMaxEventBytes) {
    rejection_.reason = RejectReason::kTooLarge;
    rejection_.message = "event is larger than " + std::to_string(kMaxEventBytes) + " bytes";
  } else {
    // The decoder reads past the end: give it padding.
    std::memcpy(padded_.data(), text.data(), text.size());
    ok = decoder_.Decode(std::string_view(padded_.data(), text.size()), &event_, &rejection_);
  }
  p.dirty = true;
  ++uncommitted_;
  if (!ok) {
    ++counts_.rejected;
    if (dead_letters_) {
      DeadLetter letter = where;
      letter.reason = rejection_.reason;
      letter.message = rejection_.message;
      letter.raw = text;
      return dead_letters_->Write(letter);
    }
    return Status::Ok();
  }
  ++counts_.accepted;
  Status applied = Firing(p, [&] { return p.processor->Apply(event_); });
  // Once: `make bench` measures restart time from process start to this line.
  if (counts_.accepted == 1 && applied.ok()) Log("first event processed");
  return applied;
}

Status Daemon::Impl::Commit(CommitScope scope) {
  // A rejected event must be durable in the dead letters before the position
  // that passes it is.
  if (dead_letters_) {
    if (Status s = dead_letters_->Flush(); !s.ok()) return s;
  }
  // Offsets to commit to the group once the state they pass is written.
  struct Mirror {
    std::vector<RdKafka::TopicPartition*> offsets;
    ~Mirror() {
      for (auto* tp : offsets) delete tp;
    }
  };
  auto mirror_holder = std::make_shared<Mirror>();
  std::vector<RdKafka::TopicPartition*>& mirror = mirror_holder->offsets;
  bool committed = false;
  // One changelog round trip for all partitions.
  store_->BeginCommitGroup();
  const bool all = scope == CommitScope::kAll;
  for (auto& [id, p] : partitions_) {
    if (!all && !p.actions_waiting) continue;
    bool was_dirty = p.dirty;
    if (Status s = CommitPartition(id, p); !s.ok()) {
      if (background_) (void)background_->Wait();
      (void)store_->EndCommitGroup();
      return s;
    }
    committed |= was_dirty;
    // The ones that moved, and all of them again after the group refused a
    // commit (during a rebalance: "generation id is not valid"), so that
    // lag tools and the next owner's restore see the stored position.
    if (consumer_ && p.next_offset >= 0 && (was_dirty || (all && mirror_again_))) {
      mirror.push_back(RdKafka::TopicPartition::create(config_.kafka_source->topic, id, p.next_offset));
    }
  }
  if (all) mirror_again_ = false;
  // The group's records go to the changelog, then RocksDB, then the group
  // offsets; only then may the dispatcher see its actions.
  auto group = std::make_shared<StateStore::CommitGroup>(store_->TakeCommitGroup());
  auto finish = [this, group, mirror_holder]() -> Status {
    if (Status s = store_->WriteCommitGroup(std::move(*group)); !s.ok()) return s;
    if (!mirror_holder->offsets.empty()) consumer_->commitAsync(mirror_holder->offsets);
    dispatcher_->Notify();
    return Status::Ok();
  };
  if (Status s = background_ ? background_->Start(finish) : finish(); !s.ok()) return s;
  if (all) {
    uncommitted_ = 0;
    last_commit_ = Clock::now();
  }
  std::lock_guard lock(stats_mu_);
  stats_.commits += committed;
  stats_.events = counts_.events;
  stats_.accepted = counts_.accepted;
  stats_.rejected = counts_.rejected;
  if (counts_.events > 0) {
    stats_.busy_seconds = std::chrono::duration<double>(Clock::now() - counts_.first_event).count();
  }
  stats_.actions = sink_.fired;
  stats_.campaigns = closed_counters_;
  for (auto& [id, p] : partitions_) {
    for (const auto& [campaign, counters] : p.processor->stats().campaigns)
      AddCounters(stats_.campaigns[campaign], counters);
  }
  if (!stop_at_.empty()) {
    bool done = true;
    for (const auto& [id, end] : stop_at_) {
      auto it = stats_.positions.find(id);
      if (it == stats_.positions.end() || it->second < end) done = false;
    }
    if (done) stop_ = true;
  }
  return Status::Ok();
}

void Daemon::Impl::MaybeReload() {
  if (!reload_.exchange(false)) return;
  if (!options_.reload_rules) {
    Log("reload: no rule loader; keeping the running rules");
    return;
  }
  auto loaded = options_.reload_rules();
  if (!loaded.ok()) {
    Log("reload refused, the running rules stay: " + loaded.status().message());
    return;
  }
  for (auto& [id, p] : partitions_) {
    if (Status s = p.processor->SetRules(*loaded); !s.ok()) {
      Log("reload failed on partition " + std::to_string(id) + ": " + s.ToString());
      return;
    }
  }
  rules_ = std::move(*loaded);
  Log("reloaded rules: " + std::to_string(rules_->campaigns.size()) + " campaigns");
  std::lock_guard lock(stats_mu_);
  ++stats_.reloads;
}

// Commits on the interval or the event budget, or as soon as the input is
// drained while fired actions wait for a commit: actions leave only once
// committed, and a commit that finds the consumer idle delays nothing, so
// at low rates an action waits for one commit rather than the interval. Under
// load the consumer is never drained and the interval and budget decide.
// In wall mode also moves idle partitions' clocks to the wall clock.
Status Daemon::Impl::Tick(Clock::time_point now, bool drained) {
  MaybeReload();
  if (config_.clock == ClockMode::kWall) {
    for (auto& [id, p] : partitions_) {
      if (now - p.last_event < config_.commit_interval) continue;
      Status advanced = Firing(p, [&] { return p.processor->AdvanceTo(options_.wall_clock()); });
      if (!advanced.ok()) return advanced;
      if (p.next_offset >= 0 || !consumer_) p.dirty = true;
    }
  }
  // While the previous commit is being written the next one would only
  // wait for it, holding up the consumer: the events go on into the next
  // group instead, unless the budget says the group is full.
  const bool commit_in_flight = background_ && background_->busy();
  if (uncommitted_ >= config_.commit_max_events ||
      (!commit_in_flight && now - last_commit_ >= config_.commit_interval)) {
    return Commit(CommitScope::kAll);
  }
  if (!commit_in_flight && drained && partitions_with_actions_ > 0) return Commit(CommitScope::kActionsWaiting);
  return Status::Ok();
}

void Daemon::Impl::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                                std::vector<RdKafka::TopicPartition*>& partitions) {
  const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
  std::string names;
  for (auto* tp : partitions) {
    if (!names.empty()) names += ",";
    names += std::to_string(tp->partition());
  }
  {
    std::lock_guard lock(stats_mu_);
    ++stats_.rebalances;
  }
  // Restores, revocations and dropped batches start from written state.
  if (Status s = background_->Wait(); !s.ok()) {
    callback_error_ = s;
    stop_ = true;
    return;
  }
  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    for (auto* tp : partitions) {
      // The state follows the partition: bring it up to the changelog first.
      if (standby_) standby_->Activate(static_cast<uint32_t>(tp->partition()));
      if (Status s = Restore(consumer, tp->partition()); !s.ok()) {
        callback_error_ = s;
        stop_ = true;
        return;
      }
      auto p = OpenPartition(tp->partition());
      if (!p.ok()) {
        callback_error_ = p.status();
        stop_ = true;
        return;
      }
      // RocksDB holds the truth; without a stored offset fall back to the
      // group's committed offset, then auto.offset.reset.
      tp->set_offset((*p)->next_offset >= 0 ? (*p)->next_offset : RdKafka::Topic::OFFSET_INVALID);
      owned_.insert(static_cast<uint32_t>(tp->partition()));
    }
    dispatcher_->SetPartitions(owned_);
    mirror_again_ = true;
    if (!partitions.empty()) Log("assigned " + config_.kafka_source->topic + "[" + names + "]");
    if (cooperative) {
      RdKafka::Error* e = consumer->incremental_assign(partitions);
      if (e != nullptr) {
        Log("incremental_assign: " + e->str());
        delete e;
      }
    } else {
      consumer->assign(partitions);
    }
    return;
  }
  // Revoked: finish the in-flight batch of each partition and commit it
  // (changelog, RocksDB, then the group's offset, synchronously: the next
  // owner restores up to that offset). Lost: another instance may own the
  // partition already and write its changelog, so the batch is dropped;
  // this instance's local state stays at its last commit.
  const bool lost = consumer->assignment_lost();
  std::vector<RdKafka::TopicPartition*> offsets;
  for (auto* tp : partitions) {
    owned_.erase(static_cast<uint32_t>(tp->partition()));
    if (lost) {
      auto dropped = partitions_.find(tp->partition());
      if (dropped != partitions_.end() && dropped->second.actions_waiting) --partitions_with_actions_;
      partitions_.erase(tp->partition());
      ShareCacheCapacity();
      continue;
    }
    auto it = partitions_.find(tp->partition());
    const int64_t next = it == partitions_.end() ? -1 : it->second.next_offset;
    if (Status s = ClosePartition(tp->partition()); !s.ok()) {
      callback_error_ = s;
      stop_ = true;
      continue;
    }
    if (next >= 0) offsets.push_back(RdKafka::TopicPartition::create(config_.kafka_source->topic, tp->partition(), next));
  }
  // The revoked partitions' actions are delivered before they are let go;
  // what a sink refuses meanwhile travels in the changelog to the next
  // owner. From here the dispatcher leaves those partitions alone, and the
  // tombstones of what it delivered reach the changelog first.
  if (!lost && !partitions.empty()) {
    std::set<uint32_t> revoked;
    for (auto* tp : partitions) revoked.insert(static_cast<uint32_t>(tp->partition()));
    if (!dispatcher_->DeliverNow(revoked, options_.shutdown_drain_timeout)) {
      Log("revocation: some actions of " + config_.kafka_source->topic + "[" + names +
          "] were not delivered; they travel in the changelog to the next owner");
    }
  }
  dispatcher_->SetPartitions(owned_);
  if (!lost && changelog_) {
    for (auto* tp : partitions) {
      auto end = changelog_->Flush(static_cast<uint32_t>(tp->partition()));
      if (!end.ok()) {
        Log("changelog flush on revocation: " + end.status().ToString());
      } else if (*end >= 0) {
        (void)store_->SetChangelogOffset(static_cast<uint32_t>(tp->partition()), *end);
      }
    }
  }
  if (standby_) {
    for (auto* tp : partitions) standby_->Deactivate(static_cast<uint32_t>(tp->partition()));
  }
  if (!offsets.empty()) {
    if (RdKafka::ErrorCode e = consumer->commitSync(offsets); e != RdKafka::ERR_NO_ERROR) {
      Log("commit on revocation: " + RdKafka::err2str(e));
    }
  }
  for (auto* tp : offsets) delete tp;
  if (!partitions.empty()) {
    Log(std::string(consumer->assignment_lost() ? "lost " : "revoked ") + config_.kafka_source->topic + "[" + names +
        "]");
  }
  if (cooperative) {
    RdKafka::Error* e = consumer->incremental_unassign(partitions);
    if (e != nullptr) {
      Log("incremental_unassign: " + e->str());
      delete e;
    }
  } else {
    consumer->unassign();
  }
}

void Daemon::Impl::event_cb(RdKafka::Event& event) {
  if (event.type() == RdKafka::Event::EVENT_ERROR) {
    Log(std::string(event.fatal() ? "kafka fatal error: " : "kafka: ") + RdKafka::err2str(event.err()) + ": " +
        event.str());
    if (event.fatal()) {
      callback_error_ = Status::IoError("kafka fatal error: " + event.str());
      stop_ = true;
    }
  } else if (event.type() == RdKafka::Event::EVENT_LOG && event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
    Log("kafka: " + event.fac() + ": " + event.str());
  }
}

Status Daemon::Impl::RunKafka() {
  const std::string& topic = config_.kafka_source->topic;
  if (RdKafka::ErrorCode e = consumer_->subscribe({topic}); e != RdKafka::ERR_NO_ERROR) {
    return Status::IoError("subscribe to " + topic + ": " + RdKafka::err2str(e));
  }
  Log("consuming " + topic + " as group " + config_.application_id);
  ConsumerBatch batch(*consumer_);
  DeadLetter where{};
  where.source = topic;
  while (!stop_) {
    // With actions waiting for a commit, only look whether more input is
    // ready, and commit if not; while the previous commit is still being
    // written that would only wait for it, so look again in a millisecond.
    const bool actions_waiting = partitions_with_actions_ > 0;
    const int timeout_ms = !actions_waiting ? 100 : background_->busy() ? 1 : 0;
    const size_t n = batch.Take(timeout_ms);
    if (!callback_error_.ok()) return callback_error_;
    const auto now = Clock::now();
    bool drained = n == 0;
    // Each message's processor, and its key's hash: the key is the customer
    // (docs/running.md), so the customers' cache memory is loaded a few
    // messages ahead of the one applied, as a replay does
    // (Processor::Prefetch). A message keyed otherwise only wastes its
    // prefetch.
    for (size_t i = 0; i < n; ++i) {
      const rd_kafka_message_t& msg = batch[i];
      auto it = msg.err == RD_KAFKA_RESP_ERR_NO_ERROR ? partitions_.find(msg.partition) : partitions_.end();
      ahead_[i].partition = it == partitions_.end() ? nullptr : &it->second;
      ahead_[i].customer_hash =
          Processor::CustomerHash(std::string_view(static_cast<const char*>(msg.key), msg.key ? msg.key_len : 0));
      if (i < kSlotAhead) Prefetch(i, n, Processor::PrefetchStage::kSlot);
    }
    for (size_t i = 0; i < n && !stop_; ++i) {
      Prefetch(i + kSlotAhead, n, Processor::PrefetchStage::kSlot);
      Prefetch(i + kEntryAhead, n, Processor::PrefetchStage::kEntry);
      Prefetch(i + kBytesAhead, n, Processor::PrefetchStage::kBytes);
      const rd_kafka_message_t& msg = batch[i];
      if (msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        drained = true;
        continue;
      }
      if (msg.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Log("kafka consume: " + std::string(rd_kafka_message_errstr(&msg)));
        continue;
      }
      if (ahead_[i].partition == nullptr) continue;  // from a partition revoked meanwhile
      Partition& p = *ahead_[i].partition;
      if (p.next_offset > msg.offset) continue;  // already applied before a restart
      where.partition = msg.partition;
      where.offset = static_cast<uint64_t>(msg.offset);
      std::string_view text(static_cast<const char*>(msg.payload), msg.len);
      if (Status s = Handle(p, text, false, where); !s.ok()) return s;
      p.next_offset = msg.offset + 1;
      p.last_event = now;
      if (Status s = CommitIfBudgetSpent(); !s.ok()) return s;
    }
    if (Status s = Tick(now, drained); !s.ok()) return s;
  }
  return Status::Ok();
}

Status Daemon::Impl::RunFile() {
  const std::string& path = config_.file_source->path;
  auto reader = JsonlReader::Open(path);
  if (!reader.ok()) return reader.status();
  auto p = OpenPartition(0);
  if (!p.ok()) return p.status();
  Partition& partition = **p;
  // A file source's position is the byte offset just past the last line applied.
  const int64_t resume = path == "-" ? 0 : std::max<int64_t>(0, partition.next_offset);
  if (resume > 0) Log("resuming " + path + " at byte " + std::to_string(resume));
  DeadLetter where{};
  where.source = path;
  Line line;
  while (!stop_ && (*reader)->Next(&line)) {
    if (static_cast<int64_t>(line.offset) < resume) continue;
    where.line = line.number;
    where.offset = line.offset;
    if (Status s = Handle(partition, line.text, line.too_long, where); !s.ok()) return s;
    partition.next_offset = static_cast<int64_t>((*reader)->position());
    const auto now = Clock::now();
    partition.last_event = now;
    if (Status s = Tick(now); !s.ok()) return s;
  }
  if (!(*reader)->status().ok()) return (*reader)->status();
  if (!stop_) {
    // The end of the input: fire what is due by the final clock (event
    // mode) or by now (wall mode), as a replay does.
    std::optional<EventTime> end = partition.processor->clock();
    if (config_.clock == ClockMode::kWall) end = options_.wall_clock();
    if (end) {
      if (Status s = partition.processor->AdvanceTo(*end); !s.ok()) return s;
    }
    partition.dirty = true;
    if (partition.next_offset < 0) partition.next_offset = 0;
  }
  return Status::Ok();
}

Status Daemon::Impl::Shutdown() {
  standby_.reset();  // its thread asks consumer_ for committed offsets
  Status result = Commit();
  if (background_) {
    Status written = background_->Wait();
    if (result.ok()) result = written;
  }
  if (consumer_) {
    // close() revokes what is assigned (committing each partition) and
    // leaves the group.
    consumer_->close();
    if (result.ok() && !callback_error_.ok()) result = callback_error_;
  }
  partitions_.clear();
  bool drained = dispatcher_->Stop(options_.shutdown_drain_timeout);
  uint64_t left = drained ? 0 : store_->ApproximateOutboxCount();
  Log(drained ? "outbox delivered" : "outbox: about " + std::to_string(left) + " actions wait for the next start");
  return result;
}

Status Daemon::Impl::Run() {
  dispatcher_->Start();
  Status s = consumer_ ? RunKafka() : RunFile();
  Status shut = Shutdown();
  return s.ok() ? shut : s;
}

Result<std::unique_ptr<Daemon>> Daemon::Open(const RunConfig& config, std::shared_ptr<const rules::RuleSet> rules,
                                             DaemonOptions options) {
  auto impl = std::make_unique<Impl>(config, std::move(rules), std::move(options));
  if (Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;
Status Daemon::Run() { return impl_->Run(); }
void Daemon::RequestStop() { impl_->RequestStop(); }
void Daemon::RequestReload() { impl_->RequestReload(); }
void Daemon::StopWhenConsumed(std::map<int32_t, int64_t> end_offsets) {
  impl_->StopWhenConsumed(std::move(end_offsets));
}
DaemonStats Daemon::stats() const { return impl_->stats(); }

}  // namespace rapport::connectors

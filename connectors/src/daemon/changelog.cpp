#include "rapport/connectors/changelog.h"

#include <pthread.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <deque>
#include <set>
#include <thread>

namespace rapport::connectors {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kPositionHeader[] = "rapport.position";
constexpr size_t kApplyRecords = 4096;
constexpr size_t kApplyBytes = 4 << 20;
constexpr int kMetadataTimeoutMs = 10000;

// Properties only a consumer understands; the producer would warn about each.
const std::set<std::string> kConsumerOnly = {
    "group.id", "group.instance.id", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
    "auto.offset.reset", "enable.auto.commit", "auto.commit.interval.ms", "enable.auto.offset.store",
    "enable.partition.eof", "queued.min.messages", "queued.max.messages.kbytes", "fetch.wait.max.ms",
    "fetch.min.bytes", "fetch.max.bytes", "fetch.message.max.bytes", "max.partition.fetch.bytes",
    "fetch.error.backoff.ms", "partition.assignment.strategy", "isolation.level", "check.crcs",
    "allow.auto.create.topics", "group.protocol.type", "coordinator.query.interval.ms"};
// ... and what only a producer does.
const std::set<std::string> kProducerOnly = {
    "acks", "request.required.acks", "enable.idempotence", "linger.ms", "queue.buffering.max.ms",
    "queue.buffering.max.messages", "queue.buffering.max.kbytes", "batch.num.messages", "batch.size",
    "compression.type", "compression.codec", "message.timeout.ms", "delivery.timeout.ms", "transactional.id",
    "retries", "message.send.max.retries", "retry.backoff.ms", "enable.gapless.guarantee", "partitioner"};

Result<std::unique_ptr<RdKafka::Conf>> MakeConf(const KafkaProperties& properties, const std::set<std::string>& skip,
                                                const KafkaProperties& own) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  KafkaProperties merged;
  for (const auto& [k, v] : properties) {
    if (!skip.contains(k)) merged[k] = v;
  }
  for (const auto& [k, v] : own) merged[k] = v;
  for (const auto& [k, v] : merged) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("changelog: kafka property " + k + ": " + err);
    }
  }
  return conf;
}

std::optional<int64_t> ParseInt(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// Records produced, numbered in order, and how far from the first one every
// record has its delivery report (which arrive out of order across
// partitions): a Sync() waits until that passes the records it covers.
// No allocation per record, unlike a set of those in flight.
class AckWindow {
 public:
  // Numbers `count` records about to be produced; returns the first number.
  uintptr_t Produced(size_t count) {
    acknowledged_.resize(acknowledged_.size() + count, false);
    return first_ + acknowledged_.size() - count;
  }
  void Acknowledged(uintptr_t sequence) {
    if (sequence < first_ || sequence - first_ >= acknowledged_.size()) return;
    acknowledged_[sequence - first_] = true;
    while (!acknowledged_.empty() && acknowledged_.front()) {
      acknowledged_.pop_front();
      ++first_;
    }
  }
  uintptr_t first_unacknowledged() const { return first_; }
  uintptr_t next() const { return first_ + acknowledged_.size(); }

 private:
  uintptr_t first_ = 0;
  std::deque<bool> acknowledged_;
};

std::string Count(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// The input position a record carries (nullopt: none, a write outside a
// commit; -1 when unreadable, which no committed offset passes).
std::optional<int64_t> RecordPosition(RdKafka::Message& msg) {
  RdKafka::Headers* headers = msg.headers();
  if (headers == nullptr) return std::nullopt;
  RdKafka::Headers::Header h = headers->get_last(kPositionHeader);
  if (h.err() != RdKafka::ERR_NO_ERROR || h.value() == nullptr) return std::nullopt;
  auto position = ParseInt(std::string_view(static_cast<const char*>(h.value()), h.value_size()));
  return position ? *position : INT64_MAX;
}

// One changelog record, owned (the message is gone when it is applied).
struct ChangelogRecord {
  int64_t offset = 0;
  std::optional<int64_t> position;
  std::string key;  // family byte, then the family's key
  std::string value;
  bool deleted = false;

  // A record of the former timers family, which repeated what the profiles
  // hold: a changelog written before timers were read from the profiles
  // restores without them.
  bool former_timer() const { return key[0] == 't'; }
  StateChange change() const {
    return StateChange{static_cast<StateFamily>(key[0]), std::string_view(key).substr(1), value, deleted};
  }
};

// False for a record without a state key (not written by Rapport).
bool ReadRecord(RdKafka::Message& msg, ChangelogRecord* out) {
  const std::string* key = msg.key();
  if (key == nullptr || key->size() < 2 || std::string_view("mpot").find((*key)[0]) == std::string_view::npos) {
    return false;
  }
  std::string_view payload(static_cast<const char*>(msg.payload()), msg.payload() ? msg.len() : 0);
  out->offset = msg.offset();
  out->position = RecordPosition(msg);
  out->key = *key;
  out->deleted = payload.empty();
  out->value.assign(payload.empty() ? std::string_view() : payload.substr(1));
  return true;
}

}  // namespace

class Changelog::Impl : public RdKafka::DeliveryReportCb {
 public:
  explicit Impl(ChangelogOptions options) : options_(std::move(options)) {
    if (!options_.log) options_.log = [](const std::string&) {};
  }

  Status Open() {
    auto conf = MakeConf(options_.properties, kConsumerOnly,
                         {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "2"}});
    if (!conf.ok()) return conf.status();
    std::string err;
    if ((*conf)->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("changelog: " + err);
    }
    producer_.reset(RdKafka::Producer::create(conf->get(), err));
    if (!producer_) return Status::InvalidArgument("changelog producer: " + err);
    topic_.reset(rd_kafka_topic_new(producer_->c_ptr(), options_.topic.c_str(), nullptr));
    if (!topic_) {
      return Status::InvalidArgument("changelog topic " + options_.topic + ": " +
                                     rd_kafka_err2str(rd_kafka_last_error()));
    }
    return Status::Ok();
  }

  void dr_cb(RdKafka::Message& message) override {
    std::lock_guard lock(mu_);
    acks_.Acknowledged(reinterpret_cast<uintptr_t>(message.msg_opaque()));
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      if (first_error_.empty()) first_error_ = message.errstr();
      return;
    }
    int64_t& end = ends_[message.partition()];
    end = std::max(end, message.offset() + 1);
  }

  Status EnsureTopic(int32_t partitions) {
    std::string err;
    std::unique_ptr<RdKafka::Topic> topic(RdKafka::Topic::create(producer_.get(), options_.topic, nullptr, err));
    if (!topic) return Status::InvalidArgument("changelog topic " + options_.topic + ": " + err);
    RdKafka::Metadata* raw = nullptr;
    RdKafka::ErrorCode e = producer_->metadata(false, topic.get(), &raw, kMetadataTimeoutMs);
    std::unique_ptr<RdKafka::Metadata> metadata(raw);
    int32_t have = -1;
    if (e == RdKafka::ERR_NO_ERROR && metadata->topics()->size() == 1) {
      const RdKafka::TopicMetadata* t = (*metadata->topics())[0];
      if (t->err() == RdKafka::ERR_NO_ERROR) have = static_cast<int32_t>(t->partitions()->size());
    }
    if (have < 0) {
      if (Status s = CreateTopic(partitions); !s.ok()) return s;
      options_.log("created changelog topic " + options_.topic + " with " + std::to_string(partitions) +
                   " partitions (cleanup.policy=compact)");
      return Status::Ok();
    }
    if (have < partitions) {
      return Status::InvalidArgument("changelog topic " + options_.topic + " has " + std::to_string(have) +
                                     " partitions, the input has " + std::to_string(partitions) +
                                     ": it needs one per input partition (docs/scaling.md)");
    }
    return Status::Ok();
  }

  Status CreateTopic(int32_t partitions) {
    rd_kafka_t* rk = producer_->c_ptr();
    char errstr[512];
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(options_.topic.c_str(), partitions, -1, errstr, sizeof(errstr));
    if (nt == nullptr) return Status::InvalidArgument("changelog topic " + options_.topic + ": " + errstr);
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t* admin = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(admin, kMetadataTimeoutMs, errstr, sizeof(errstr));
    rd_kafka_CreateTopics(rk, &nt, 1, admin, queue);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, kMetadataTimeoutMs + 2000);
    std::string failure;
    if (ev == nullptr) {
      failure = "no answer from the cluster";
    } else if (rd_kafka_event_error(ev)) {
      failure = rd_kafka_event_error_string(ev);
    } else if (const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev)) {
      size_t n = 0;
      const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
      for (size_t i = 0; i < n; ++i) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(results[i]);
        if (te != RD_KAFKA_RESP_ERR_NO_ERROR && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          const char* msg = rd_kafka_topic_result_error_string(results[i]);
          failure = msg != nullptr ? msg : rd_kafka_err2str(te);
        }
      }
    }
    if (ev != nullptr) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(admin);
    rd_kafka_queue_destroy(queue);
    rd_kafka_NewTopic_destroy(nt);
    if (!failure.empty()) {
      return Status::Unavailable("changelog topic " + options_.topic + " does not exist and could not be created (" +
                                 failure + "): create it with " + std::to_string(partitions) +
                                 " partitions and cleanup.policy=compact (docs/scaling.md)");
    }
    return Status::Ok();
  }

  Result<int64_t> OnChanges(uint32_t partition, std::string_view position, const std::vector<StateChange>& changes,
                            bool wait) {
    // Through the C API with the topic's handle: the C++ produce() copies
    // the topic's name and looks the topic up by it for every record, and
    // wraps each record's headers in an object of its own.
    std::string key, value;
    uintptr_t sequence;
    {
      std::lock_guard lock(mu_);
      sequence = acks_.Produced(changes.size());
    }
    const uintptr_t end = sequence + changes.size();
    for (const StateChange& c : changes) {
      key.clear();
      key.push_back(static_cast<char>(c.family));
      key.append(c.key);
      value.clear();
      if (!c.deleted) {
        value.push_back('=');
        value.append(c.value);
      }
      for (;;) {
        rd_kafka_headers_t* headers = nullptr;
        if (!position.empty()) {
          headers = rd_kafka_headers_new(1);
          rd_kafka_header_add(headers, kPositionHeader, -1, position.data(), static_cast<ssize_t>(position.size()));
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            producer_->c_ptr(), RD_KAFKA_V_RKT(topic_.get()), RD_KAFKA_V_PARTITION(static_cast<int32_t>(partition)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE(value.empty() ? nullptr : value.data(), value.size()),
            RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_HEADERS(headers),
            RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(sequence)), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;  // the producer owns the headers now
        if (headers != nullptr) rd_kafka_headers_destroy(headers);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          producer_->poll(10);
          continue;
        }
        {
          // Nothing to wait for, this record's nor the ones not produced:
          // the caller gets the error.
          std::lock_guard lock(mu_);
          for (uintptr_t s = sequence; s < end; ++s) acks_.Acknowledged(s);
        }
        return Status::Unavailable("changelog " + options_.topic + "[" + std::to_string(partition) +
                                   "]: " + rd_kafka_err2str(e));
      }
      ++sequence;
    }
    if (!wait) return int64_t{-1};
    return Flush(partition);
  }

  Status Sync() {
    // Waits for the records produced before this call only: the outbox
    // dispatcher keeps producing tombstones from its thread, and waiting for
    // an empty queue would wait for those too. flush() sends at once,
    // ignoring linger.ms. librdkafka retries until message.timeout.ms; a
    // broker outage shorter than that only delays the commit.
    uintptr_t target;
    {
      std::lock_guard lock(mu_);
      target = acks_.next();
    }
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (acks_.first_unacknowledged() >= target) break;
      }
      producer_->flush(1);
    }
    std::lock_guard lock(mu_);
    if (!first_error_.empty()) {
      std::string error = std::move(first_error_);
      first_error_.clear();
      return Status::Unavailable("changelog " + options_.topic + ": a record was not delivered: " + error);
    }
    return Status::Ok();
  }

  int64_t EndOffset(uint32_t partition) {
    std::lock_guard lock(mu_);
    auto it = ends_.find(static_cast<int32_t>(partition));
    return it == ends_.end() ? int64_t{-1} : it->second;
  }

  Result<int64_t> Flush(uint32_t partition) {
    if (Status s = Sync(); !s.ok()) return s;
    return EndOffset(partition);
  }

  Result<RestoreResult> Restore(StateStore& store, uint32_t partition, int64_t committed_input,
                                const std::string& name) {
    RestoreResult result;
    auto conf = MakeConf(options_.properties, kProducerOnly,
                         {{"group.id", options_.topic + "-restore"},
                          {"enable.auto.commit", "false"},
                          {"enable.auto.offset.store", "false"},
                          {"enable.partition.eof", "false"}});
    if (!conf.ok()) return conf.status();
    std::string err;
    std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf->get(), err));
    if (!consumer) return Status::InvalidArgument("changelog restore consumer: " + err);
    const auto p = static_cast<int32_t>(partition);
    int64_t low = 0, high = 0;
    if (RdKafka::ErrorCode e = consumer->query_watermark_offsets(options_.topic, p, &low, &high, kMetadataTimeoutMs);
        e != RdKafka::ERR_NO_ERROR) {
      consumer->close();
      return Status::Unavailable("changelog " + options_.topic + "[" + std::to_string(p) +
                                 "]: reading its offsets: " + RdKafka::err2str(e));
    }
    auto local = store.GetChangelogOffset(partition);
    if (!local.ok()) return local.status();
    result.to = high;
    if (*local && **local == high) {
      consumer->close();
      result.from = high;
      return result;
    }
    int64_t from = low;
    if (*local && **local >= low && **local < high) {
      from = **local;
    } else {
      // No checkpoint (this instance never held the partition), or one the
      // log no longer covers: what is here may be stale; start afresh.
      if (Status s = store.DropPartition(partition); !s.ok()) return s;
    }
    result.restored = true;
    result.from = from;
    const auto start = Clock::now();
    if (from >= high) {
      if (Status s = store.SetChangelogOffset(partition, high); !s.ok()) return s;
      consumer->close();
      return result;
    }
    options_.log("restoring " + name + " from " + options_.topic + "[" + std::to_string(p) + "]: offsets " +
                 std::to_string(from) + ".." + std::to_string(high));
    std::vector<RdKafka::TopicPartition*> assignment = {RdKafka::TopicPartition::create(options_.topic, p, from)};
    consumer->assign(assignment);
    delete assignment[0];

    // One chunk's records; the StateChanges point into them.
    std::vector<ChangelogRecord> chunk;
    std::vector<StateChange> changes;
    size_t chunk_bytes = 0;
    int64_t next = from;
    auto apply = [&]() -> Status {
      changes.clear();
      for (const ChangelogRecord& r : chunk) changes.push_back(r.change());
      Status s = store.ApplyChanges(partition, changes, next);
      chunk.clear();
      chunk_bytes = 0;
      return s;
    };
    auto last_log = start;
    Status status;
    while (next < high && status.ok()) {
      std::unique_ptr<RdKafka::Message> msg(consumer->consume(1000));
      if (msg->err() == RdKafka::ERR__TIMED_OUT) continue;
      if (msg->err() != RdKafka::ERR_NO_ERROR) {
        status = Status::Unavailable("changelog " + options_.topic + "[" + std::to_string(p) + "]: " + msg->errstr());
        break;
      }
      next = msg->offset() + 1;
      ++result.records;
      ChangelogRecord record;
      if (!ReadRecord(*msg, &record)) {
        status = Status::Corruption("changelog " + options_.topic + "[" + std::to_string(p) + "] offset " +
                                    std::to_string(msg->offset()) + ": a record without a state key");
        break;
      }
      if (record.former_timer() || (record.position && *record.position > committed_input)) {
        ++result.skipped;
      } else {
        chunk_bytes += record.key.size() + record.value.size();
        chunk.push_back(std::move(record));
      }
      if (chunk.size() >= kApplyRecords || chunk_bytes >= kApplyBytes || next >= high) status = apply();
      if (Clock::now() - last_log > std::chrono::seconds(2)) {
        last_log = Clock::now();
        options_.log("restoring " + name + ": " + Count(static_cast<uint64_t>(next - from)) + " of " +
                     Count(static_cast<uint64_t>(high - from)) + " records");
      }
    }
    consumer->close();
    if (!status.ok()) return status;
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  }

 private:
  ChangelogOptions options_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> topic_{nullptr, &rd_kafka_topic_destroy};
  std::mutex mu_;
  std::map<int32_t, int64_t> ends_;
  std::string first_error_;
  AckWindow acks_;
};

Result<std::unique_ptr<Changelog>> Changelog::Open(const ChangelogOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  if (Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<Changelog>(new Changelog(std::move(impl)));
}

Changelog::Changelog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Changelog::~Changelog() = default;
Status Changelog::EnsureTopic(int32_t partitions) { return impl_->EnsureTopic(partitions); }
Result<int64_t> Changelog::OnChanges(uint32_t partition, std::string_view position,
                                     const std::vector<StateChange>& changes, bool wait) {
  return impl_->OnChanges(partition, position, changes, wait);
}
Result<int64_t> Changelog::Flush(uint32_t partition) { return impl_->Flush(partition); }
Status Changelog::Sync() { return impl_->Sync(); }
int64_t Changelog::EndOffset(uint32_t partition) { return impl_->EndOffset(partition); }
Result<RestoreResult> Changelog::Restore(StateStore& store, uint32_t partition, int64_t committed_input,
                                         const std::string& name) {
  return impl_->Restore(store, partition, committed_input, name);
}

}  // namespace rapport::connectors

namespace rapport::connectors {

class StandbyReplicas::Impl {
 public:
  Impl(StateStore& store, ChangelogOptions options, std::function<int64_t(int32_t)> committed_input)
      : store_(store), options_(std::move(options)), committed_input_(std::move(committed_input)) {}

  ~Impl() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    if (consumer_) consumer_->close();
  }

  Status Start(const std::string& application_id, int32_t partitions) {
    auto conf = MakeConf(options_.properties, kProducerOnly,
                         {{"group.id", application_id + "-standby"},
                          {"enable.auto.commit", "false"},
                          {"enable.auto.offset.store", "false"}});
    if (!conf.ok()) return conf.status();
    std::string err;
    consumer_.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
    if (!consumer_) return Status::InvalidArgument("standby consumer: " + err);
    // Every partition; the ones this instance comes to own are skipped
    // while it owns them (Activate).
    std::vector<RdKafka::TopicPartition*> assignment;
    for (int32_t p = 0; p < partitions; ++p) {
      Follower& f = followers_[static_cast<uint32_t>(p)];
      assignment.push_back(RdKafka::TopicPartition::create(options_.topic, p, StartOffset(static_cast<uint32_t>(p), f)));
    }
    RdKafka::ErrorCode e = consumer_->assign(assignment);
    for (auto* tp : assignment) delete tp;
    if (e != RdKafka::ERR_NO_ERROR) return Status::Unavailable("standby: " + RdKafka::err2str(e));
    options_.log("standby: following " + options_.topic + " (" + std::to_string(partitions) +
                 " partitions; the ones owned here are skipped while owned)");
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "rapport:standby");  // for top -H and perf
      Loop();
    });
    return Status::Ok();
  }

  void Activate(uint32_t partition) {
    std::lock_guard lock(mu_);
    Follower& f = followers_[partition];
    f.active = true;
    f.pending.clear();
  }

  void Deactivate(uint32_t partition) {
    std::lock_guard lock(mu_);
    Follower& f = followers_[partition];
    f.active = false;
    f.needs_seek = true;
  }

 private:
  struct Follower {
    bool active = false;      // owned here: the processor writes it
    bool needs_seek = false;  // resume from the local checkpoint
    std::deque<ChangelogRecord> pending;  // waiting for the owner's offset commit
    int64_t committed = -1;
    std::chrono::steady_clock::time_point committed_at{};
  };
  static constexpr size_t kMaxPending = 200000;

  // Where following starts: the local checkpoint, or the start of the log
  // after dropping what is here (stale, or from another life).
  int64_t StartOffset(uint32_t partition, Follower& f) {
    if (f.active) return RdKafka::Topic::OFFSET_END;  // skipped anyway; sought again on Deactivate
    auto checkpoint = store_.GetChangelogOffset(partition);
    if (checkpoint.ok() && *checkpoint) return **checkpoint;
    (void)store_.DropPartition(partition);
    return RdKafka::Topic::OFFSET_BEGINNING;
  }

  void Loop() {
    while (!stopping_) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
      std::lock_guard lock(mu_);
      if (msg->err() == RdKafka::ERR_NO_ERROR) Take(*msg);
      Seek();
      Apply();
    }
  }

  void Take(RdKafka::Message& msg) {
    auto it = followers_.find(static_cast<uint32_t>(msg.partition()));
    if (it == followers_.end() || it->second.active || it->second.needs_seek) return;
    Follower& f = it->second;
    ChangelogRecord record;
    if (!ReadRecord(msg, &record) || record.former_timer()) return;
    f.pending.push_back(std::move(record));
    if (f.pending.size() > kMaxPending) {  // the owner is not committing: read it again later
      f.pending.clear();
      f.needs_seek = true;
    }
  }

  void Seek() {
    for (auto& [partition, f] : followers_) {
      if (!f.needs_seek || f.active) continue;
      std::unique_ptr<RdKafka::TopicPartition> tp(
          RdKafka::TopicPartition::create(options_.topic, static_cast<int32_t>(partition), StartOffset(partition, f)));
      if (consumer_->seek(*tp, 1000) == RdKafka::ERR_NO_ERROR) {
        f.needs_seek = false;
        f.pending.clear();
      }
    }
  }

  void Apply() {
    const auto now = std::chrono::steady_clock::now();
    for (auto& [partition, f] : followers_) {
      if (f.pending.empty() || f.active) continue;
      if (now - f.committed_at > std::chrono::milliseconds(200)) {
        f.committed = committed_input_(static_cast<int32_t>(partition));
        f.committed_at = now;
      }
      changes_.clear();
      size_t n = 0;
      while (n < f.pending.size() && n < 4096) {
        const ChangelogRecord& r = f.pending[n];
        if (r.position && *r.position > f.committed) break;  // not committed by the owner yet
        changes_.push_back(r.change());
        ++n;
      }
      if (n == 0) continue;
      const int64_t next = f.pending[n - 1].offset + 1;
      if (Status s = store_.ApplyChanges(partition, changes_, next); !s.ok()) {
        options_.log("standby: applying " + options_.topic + "[" + std::to_string(partition) + "]: " + s.ToString());
        f.pending.clear();
        f.needs_seek = true;
        continue;
      }
      f.pending.erase(f.pending.begin(), f.pending.begin() + static_cast<std::ptrdiff_t>(n));
    }
  }

  StateStore& store_;
  ChangelogOptions options_;
  std::function<int64_t(int32_t)> committed_input_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::map<uint32_t, Follower> followers_;
  std::vector<StateChange> changes_;
};

Result<std::unique_ptr<StandbyReplicas>> StandbyReplicas::Start(StateStore& store, const ChangelogOptions& options,
                                                                const std::string& application_id,
                                                                int32_t partitions,
                                                                std::function<int64_t(int32_t)> committed_input) {
  auto impl = std::make_unique<Impl>(store, options, std::move(committed_input));
  if (Status s = impl->Start(application_id, partitions); !s.ok()) return s;
  return std::unique_ptr<StandbyReplicas>(new StandbyReplicas(std::move(impl)));
}

StandbyReplicas::StandbyReplicas(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StandbyReplicas::~StandbyReplicas() = default;
void StandbyReplicas::Activate(uint32_t partition) { impl_->Activate(partition); }
void StandbyReplicas::Deactivate(uint32_t partition) { impl_->Deactivate(partition); }

}  // namespace rapport::connectors

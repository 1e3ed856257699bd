#include "bench_kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "rapport/connectors/daemon.h"
#include "rapport/connectors/embedded_broker.h"
#include "rapport/rules/rule_set.h"

namespace rapport::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kEvents[] = "events";
constexpr char kActions[] = "actions";
// The longest a fetch that finds no data waits (see MeasureLatency).
constexpr char kFetchWaitMs[] = "5";

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// CPU seconds of this whole process: every thread, the mock brokers' included.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

// A reader's rate and the process CPU it took, over the same span.
struct Drain {
  double events_per_s = 0;
  double cpu_seconds = 0;
};

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The value of "key": in a flat JSON line from `rapport generate`: its start
// and length, quotes included for a string.
std::optional<std::pair<size_t, size_t>> FindValue(std::string_view line, std::string_view key) {
  std::string needle = "\"" + std::string(key) + "\":";
  size_t at = line.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  size_t start = at + needle.size();
  if (start >= line.size()) return std::nullopt;
  size_t end;
  if (line[start] == '"') {
    end = line.find('"', start + 1);
    if (end == std::string_view::npos) return std::nullopt;
    ++end;
  } else {
    end = line.find_first_of(",}", start);
    if (end == std::string_view::npos) return std::nullopt;
  }
  return std::make_pair(start, end - start);
}

std::string_view StringValue(std::string_view line, std::string_view key) {
  auto v = FindValue(line, key);
  if (!v || v->second < 2 || line[v->first] != '"') return {};
  return line.substr(v->first + 1, v->second - 2);
}

Result<std::vector<std::string>> ReadLines(const std::string& path, int64_t max_bytes, size_t max_lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read " + path);
  std::vector<std::string> lines;
  int64_t bytes = 0;
  std::string line;
  while (lines.size() < max_lines && bytes < max_bytes && std::getline(in, line)) {
    if (line.empty()) continue;
    bytes += static_cast<int64_t>(line.size());
    lines.push_back(line);
  }
  if (lines.empty()) return Status::InvalidArgument(path + " has no events");
  return lines;
}

std::unique_ptr<RdKafka::Conf> MakeConf(const std::map<std::string, std::string>& props, std::string* err) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [k, v] : props) {
    if (conf->set(k, v, *err) != RdKafka::Conf::CONF_OK) return nullptr;
  }
  return conf;
}

Result<std::unique_ptr<RdKafka::Producer>> MakeProducer(const std::string& bootstrap, const std::string& linger_ms) {
  std::string err;
  auto conf = MakeConf({{"bootstrap.servers", bootstrap},
                        {"linger.ms", linger_ms},
                        {"queue.buffering.max.messages", "2000000"},
                        {"queue.buffering.max.kbytes", "1048576"},
                        {"enable.idempotence", "true"}},
                       &err);
  if (!conf) return Status::InvalidArgument("bench producer: " + err);
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  if (!p) return Status::InvalidArgument("bench producer: " + err);
  return p;
}

Status Produce(RdKafka::Producer& producer, const std::string& topic, std::string_view value, std::string_view key,
               int64_t timestamp_ms) {
  for (;;) {
    RdKafka::ErrorCode e =
        producer.produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                         const_cast<char*>(value.data()), value.size(), key.data(), key.size(), timestamp_ms, nullptr);
    if (e == RdKafka::ERR_NO_ERROR) return Status::Ok();
    if (e != RdKafka::ERR__QUEUE_FULL) return Status::IoError(std::string("bench producer: ") + RdKafka::err2str(e));
    producer.poll(5);
  }
}

Result<std::map<int32_t, int64_t>> EndOffsets(RdKafka::Producer& producer, const std::string& topic, int partitions,
                                              bool require_nothing_dropped) {
  std::map<int32_t, int64_t> ends;
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    if (producer.query_watermark_offsets(topic, p, &low, &high, 10000) != RdKafka::ERR_NO_ERROR) {
      return Status::IoError("cannot read the end offsets of " + topic);
    }
    if (require_nothing_dropped && low > 0) {
      return Status::InvalidArgument("the mock broker dropped the start of " + topic + "[" + std::to_string(p) +
                                     "]: the data set is too large for it");
    }
    ends[p] = high;
  }
  return ends;
}

// Records when the group first assigned partitions, then assigns them.
class AssignTimer : public RdKafka::RebalanceCb {
 public:
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (!assigned) {
        assigned = Clock::now();
        cpu_at_assignment = ProcessCpuSeconds();
      }
      consumer->assign(partitions);
    } else {
      consumer->unassign();
    }
  }
  std::optional<Clock::time_point> assigned;
  double cpu_at_assignment = 0;
};

// The ceiling: a consumer that only counts the messages.
Result<Drain> CountingConsumer(const std::string& bootstrap, const std::string& group, uint64_t expected) {
  AssignTimer timer;
  std::string err;
  auto conf = MakeConf({{"bootstrap.servers", bootstrap},
                        {"group.id", group},
                        {"auto.offset.reset", "earliest"},
                        {"enable.auto.commit", "false"},
                        // The same fetch queue the daemon configures.
                        {"queued.min.messages", "1000000"}},
                       &err);
  if (!conf || conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(&timer), err) != RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("ceiling consumer: " + err);
  }
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) return Status::InvalidArgument("ceiling consumer: " + err);
  if (consumer->subscribe({kEvents}) != RdKafka::ERR_NO_ERROR) return Status::IoError("ceiling consumer: subscribe");
  uint64_t seen = 0;
  Clock::time_point last{};
  double cpu_at_last = 0;
  const auto give_up = Clock::now() + std::chrono::seconds(300);
  // Batches from the group's queue, as the daemon takes them: one clock
  // read per batch, not per message.
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue(
      rd_kafka_queue_get_consumer(consumer->c_ptr()), &rd_kafka_queue_destroy);
  std::array<rd_kafka_message_t*, 256> batch{};
  while (seen < expected && Clock::now() < give_up) {
    ssize_t n = rd_kafka_consume_batch_queue(queue.get(), 0, batch.data(), batch.size());
    if (n == 0) n = rd_kafka_consume_batch_queue(queue.get(), 100, batch.data(), 1);
    uint64_t counted = 0;
    for (ssize_t i = 0; i < n; ++i) {
      counted += batch[static_cast<size_t>(i)]->err == RD_KAFKA_RESP_ERR_NO_ERROR;
      rd_kafka_message_destroy(batch[static_cast<size_t>(i)]);
    }
    if (counted > 0) {
      seen += counted;
      last = Clock::now();
    }
  }
  cpu_at_last = ProcessCpuSeconds();
  queue.reset();
  consumer->close();
  if (seen < expected || !timer.assigned) {
    return Status::IoError("ceiling consumer saw " + std::to_string(seen) + " of " + std::to_string(expected) +
                           " messages");
  }
  return Drain{static_cast<double>(seen) / std::chrono::duration<double>(last - *timer.assigned).count(),
               cpu_at_last - timer.cpu_at_assignment};
}

Result<std::shared_ptr<const rules::RuleSet>> LoadRuleSet(const std::string& dir) {
  rules::LoadResult loaded = rules::LoadRules({dir});
  if (!loaded.rules) {
    std::string text;
    for (const auto& d : loaded.diagnostics) text += "\n  " + d.ToString();
    return Status::InvalidArgument("the rules in " + dir + " do not compile:" + text);
  }
  return std::shared_ptr<const rules::RuleSet>(loaded.rules);
}

connectors::RunConfig DaemonConfig(const std::string& bootstrap, const std::string& rules_dir,
                                   const std::string& state_dir, const std::string& group) {
  connectors::RunConfig config;
  config.rules = rules_dir;
  config.state_dir = state_dir;
  config.application_id = group;
  config.coupon_secret = "rapport-bench-secret";
  connectors::KafkaProperties kafka{{"bootstrap.servers", bootstrap}};
  // The mock's group coordinator lets a new member in only once the last
  // one's session has expired, LeaveGroup or not (a real broker takes the
  // leave at once): the takeover below would wait the default 45 s.
  connectors::KafkaProperties source = kafka;
  source["session.timeout.ms"] = "6000";
  source["heartbeat.interval.ms"] = "1000";
  config.kafka_source = connectors::KafkaSourceConfig{kEvents, source};
  connectors::SinkConfig sink;
  sink.kind = connectors::SinkConfig::Kind::kKafka;
  sink.kafka.properties = kafka;
  sink.kafka.topic = kActions;
  config.sinks.push_back(sink);
  return config;
}

// Passes the daemon's problems to stderr and notes when it was assigned.
struct DaemonLog {
  std::mutex mu;
  std::optional<Clock::time_point> assigned;
  double cpu_at_assignment = 0;
  uint64_t restored_records = 0;
  double restore_seconds = 0;
  connectors::LogFunction Function() {
    return [this](const std::string& line) {
      if (line.rfind("restored ", 0) == 0) {
        // "restored events[3] from changelog offsets 0..N: R records (...) in S s, ..."
        unsigned long long records = 0;
        double seconds = 0;
        const size_t colon = line.find(": ");
        if (colon != std::string::npos &&
            std::sscanf(line.c_str() + colon + 2, "%llu records (%*[0-9] of an unfinished commit skipped) in %lf s",
                        &records, &seconds) == 2) {
          std::lock_guard lock(mu);
          restored_records += records;
          restore_seconds += seconds;
        }
      } else if (line.rfind("assigned ", 0) == 0) {
        std::lock_guard lock(mu);
        if (!assigned) {
          assigned = Clock::now();
          cpu_at_assignment = ProcessCpuSeconds();
        }
      } else if (line.find("fail") != std::string::npos || line.find("fatal") != std::string::npos) {
        std::fprintf(stderr, "  [rapport] %s\n", line.c_str());
      }
    };
  }
  std::optional<Clock::time_point> WhenAssigned() {
    std::lock_guard lock(mu);
    return assigned;
  }
};

struct DaemonRun {
  double events_per_s = 0;
  double cpu_seconds = 0;  // of the process, from assignment to the last action acknowledged
  uint64_t commits = 0;
  uint64_t delivered = 0;
  uint64_t restored_records = 0;
  double restore_seconds = 0;
};

// events == 0: a takeover of an already consumed topic, which only restores.
Result<DaemonRun> RunDaemonOverTopic(const std::string& bootstrap, const std::string& rules_dir,
                                     const std::string& state_dir, const std::string& group,
                                     const std::map<int32_t, int64_t>& ends, uint64_t events) {
  auto rules = LoadRuleSet(rules_dir);
  if (!rules.ok()) return rules.status();
  connectors::RunConfig config = DaemonConfig(bootstrap, rules_dir, state_dir, group);
  config.clock = connectors::ClockMode::kEvent;
  DaemonLog log;
  connectors::DaemonOptions options;
  options.log = log.Function();
  auto daemon = connectors::Daemon::Open(config, *rules, options);
  if (!daemon.ok()) return daemon.status();
  (*daemon)->StopWhenConsumed(ends);

  // The last time the count of delivered actions moved is when the last one
  // was acknowledged by the sink.
  std::atomic<bool> done{false};
  uint64_t delivered = 0;
  Clock::time_point last_delivery{};
  double cpu_at_last_delivery = 0;
  std::thread monitor([&] {
    while (!done) {
      const connectors::DaemonStats now = (*daemon)->stats();
      if (now.delivered != delivered) {
        delivered = now.delivered;
        last_delivery = Clock::now();
        cpu_at_last_delivery = ProcessCpuSeconds();
      }
      // The last delivery follows the commit of the last event: until that
      // commit, wake up less often, since every wakeup takes a core from the
      // daemon for a moment (the ceiling has no such monitor).
      std::this_thread::sleep_for(std::chrono::milliseconds(now.events < events ? 5 : 1));
    }
  });
  Status run = (*daemon)->Run();
  done = true;
  monitor.join();
  if (!run.ok()) return run;
  connectors::DaemonStats stats = (*daemon)->stats();
  auto assigned = log.WhenAssigned();
  if (events == 0) {
    DaemonRun r;
    std::lock_guard lock(log.mu);
    r.restored_records = log.restored_records;
    r.restore_seconds = log.restore_seconds;
    if (stats.events != 0 || r.restored_records == 0) {
      return Status::IoError("the takeover consumed " + std::to_string(stats.events) + " events and restored " +
                             std::to_string(r.restored_records) + " records");
    }
    return r;
  }
  if (stats.events != events || !assigned || stats.delivered != delivered || delivered == 0) {
    return Status::IoError("the daemon consumed " + std::to_string(stats.events) + " of " + std::to_string(events) +
                           " events and delivered " + std::to_string(stats.delivered) + " actions");
  }
  DaemonRun r;
  r.delivered = delivered;
  r.events_per_s = static_cast<double>(events) / std::chrono::duration<double>(last_delivery - *assigned).count();
  std::lock_guard lock(log.mu);
  r.cpu_seconds = cpu_at_last_delivery - log.cpu_at_assignment;
  r.commits = stats.commits;
  return r;
}

struct ChangelogRecord {
  int32_t partition = 0;
  std::string key;
  std::string value;  // empty: a tombstone
  std::string position;
};

// Every record of `topic`, read from the start to `ends` (not timed).
Result<std::vector<ChangelogRecord>> ReadTopic(const std::string& bootstrap, const std::string& topic,
                                               const std::map<int32_t, int64_t>& ends) {
  std::string err;
  auto conf = MakeConf(
      {{"bootstrap.servers", bootstrap}, {"enable.auto.commit", "false"}, {"group.id", topic + "-reader"}}, &err);
  if (!conf) return Status::InvalidArgument("changelog reader: " + err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) return Status::InvalidArgument("changelog reader: " + err);
  std::vector<RdKafka::TopicPartition*> parts;
  uint64_t expected = 0;
  for (const auto& [p, end] : ends) {
    parts.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
    expected += static_cast<uint64_t>(end);
  }
  RdKafka::ErrorCode assigned = consumer->assign(parts);
  for (auto* tp : parts) delete tp;
  if (assigned != RdKafka::ERR_NO_ERROR) return Status::IoError("changelog reader: assign");
  std::vector<ChangelogRecord> records;
  records.reserve(expected);
  const auto give_up = Clock::now() + std::chrono::seconds(120);
  while (records.size() < expected && Clock::now() < give_up) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    ChangelogRecord r;
    r.partition = m->partition();
    if (m->key()) r.key = *m->key();
    if (m->payload() != nullptr) r.value.assign(static_cast<const char*>(m->payload()), m->len());
    if (RdKafka::Headers* h = m->headers()) {
      for (const auto& header : h->get_all()) {
        if (header.value() != nullptr) r.position.assign(static_cast<const char*>(header.value()), header.value_size());
      }
    }
    records.push_back(std::move(r));
  }
  consumer->close();
  if (records.size() < expected) {
    return Status::IoError("read " + std::to_string(records.size()) + " of " + std::to_string(expected) +
                           " records of " + topic);
  }
  return records;
}

// The writes the daemon's contract asks of it, without the daemon: the
// records of one run's changelog (every profile it changed, every outbox
// put and delete, as they were), in `groups` commit groups, written to a
// fresh RocksDB directory (a WriteBatch a group, in key order, write-ahead
// log on, no fsync, as the Kafka daemon writes; one column family, LZ4,
// RocksDB's defaults otherwise) and produced to a topic of their
// own with the changelog's producer settings (idempotent, acks=all,
// linger.ms=2, a position header, every group's records acknowledged
// before the next). CPU of the whole process, mock broker included.
Result<ContractWrites> MeasureContractWrites(connectors::EmbeddedBroker& broker, const std::string& bootstrap,
                                             const std::string& changelog, int partitions, uint64_t groups,
                                             const std::string& scratch_dir) {
  std::map<int32_t, int64_t> ends;
  {
    auto producer = MakeProducer(bootstrap, "0");
    if (!producer.ok()) return producer.status();
    auto e = EndOffsets(**producer, changelog, partitions, true);
    if (!e.ok()) return e.status();
    ends = *e;
  }
  auto records = ReadTopic(bootstrap, changelog, ends);
  if (!records.ok()) return records.status();
  groups = std::max<uint64_t>(groups, 1);
  const size_t per_group = (records->size() + groups - 1) / groups;
  ContractWrites result;
  result.records = records->size();

  const std::string db_dir = scratch_dir + "/contract-writes-db";
  std::filesystem::remove_all(db_dir);
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.compression = rocksdb::kLZ4Compression;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status opened = rocksdb::DB::Open(options, db_dir, &raw);
    if (!opened.ok()) return Status::IoError("contract writes: " + opened.ToString());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::vector<const ChangelogRecord*> order;
    const double cpu = ProcessCpuSeconds();
    for (size_t first = 0; first < records->size(); first += per_group) {
      const size_t last = std::min(records->size(), first + per_group);
      order.clear();
      for (size_t i = first; i < last; ++i) order.push_back(&(*records)[i]);
      std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->key < b->key; });
      rocksdb::WriteBatch batch;
      for (const ChangelogRecord* r : order) {
        rocksdb::Status s = r->value.empty() ? batch.Delete(r->key) : batch.Put(r->key, r->value);
        if (!s.ok()) return Status::IoError("contract writes: " + s.ToString());
      }
      rocksdb::Status written = db->Write(rocksdb::WriteOptions(), &batch);
      if (!written.ok()) return Status::IoError("contract writes: " + written.ToString());
    }
    result.rocksdb_cpu_seconds = ProcessCpuSeconds() - cpu;
  }
  std::filesystem::remove_all(db_dir);

  const std::string topic = "bench-contract-writes";
  if (Status s = broker.CreateTopic(topic, partitions); !s.ok()) return s;
  // Idempotent, so acks=all, with the changelog's linger.ms.
  auto made = MakeProducer(bootstrap, "2");
  if (!made.ok()) return made.status();
  std::unique_ptr<RdKafka::Producer> producer = std::move(*made);
  std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> handle(
      rd_kafka_topic_new(producer->c_ptr(), topic.c_str(), nullptr), &rd_kafka_topic_destroy);
  // The connection and the idempotent producer's id come first, as for the
  // daemon's changelog, which is up before the daemon's first event.
  if (producer->flush(10000) != RdKafka::ERR_NO_ERROR) return Status::IoError("contract writes: flush");
  const double cpu = ProcessCpuSeconds();
  for (size_t first = 0; first < records->size(); first += per_group) {
    const size_t last = std::min(records->size(), first + per_group);
    for (size_t i = first; i < last; ++i) {
      const ChangelogRecord& r = (*records)[i];
      for (;;) {
        rd_kafka_headers_t* headers = rd_kafka_headers_new(1);
        rd_kafka_header_add(headers, "rapport.position", -1, r.position.data(), r.position.size());
        rd_kafka_resp_err_t e = rd_kafka_producev(
            producer->c_ptr(), RD_KAFKA_V_RKT(handle.get()), RD_KAFKA_V_PARTITION(r.partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE(r.value.empty() ? nullptr : const_cast<char*>(r.value.data()), r.value.size()),
            RD_KAFKA_V_KEY(r.key.data(), r.key.size()), RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        rd_kafka_headers_destroy(headers);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          return Status::IoError(std::string("contract writes: ") + rd_kafka_err2str(e));
        }
        producer->poll(5);
      }
    }
    if (producer->flush(60000) != RdKafka::ERR_NO_ERROR) return Status::IoError("contract writes: flush");
  }
  result.changelog_cpu_seconds = ProcessCpuSeconds() - cpu;
  return result;
}

}  // namespace

Result<KafkaThroughput> MeasureKafkaThroughput(const KafkaThroughputOptions& o) {
  // Keys spread unevenly over partitions: fill to 85% of the mock's budget.
  auto lines = ReadLines(o.events_path, o.max_bytes_per_partition * o.partitions * 85 / 100, SIZE_MAX);
  if (!lines.ok()) return lines.status();
  auto broker = connectors::EmbeddedBroker::Start(1);
  if (!broker.ok()) return broker.status();
  if (Status s = (*broker)->CreateTopic(kEvents, o.partitions); !s.ok()) return s;
  if (Status s = (*broker)->CreateTopic(kActions, o.partitions); !s.ok()) return s;
  const std::string bootstrap = (*broker)->bootstrap_servers();
  std::map<int32_t, int64_t> ends;
  {
    auto producer = MakeProducer(bootstrap, "20");
    if (!producer.ok()) return producer.status();
    for (const std::string& line : *lines) {
      if (Status s = Produce(**producer, kEvents, line, StringValue(line, "customer_id"), 0); !s.ok()) return s;
      (*producer)->poll(0);
    }
    if ((*producer)->flush(120000) != RdKafka::ERR_NO_ERROR) return Status::IoError("bench producer: flush");
    auto e = EndOffsets(**producer, kEvents, o.partitions, true);
    if (!e.ok()) return e.status();
    ends = *e;
  }
  KafkaThroughput result;
  result.events = lines->size();
  // The same events as a file, for the replay that the bound is made of.
  result.prefix_path = o.scratch_dir + "/kafka-prefix.jsonl";
  {
    std::ofstream out(result.prefix_path, std::ios::binary | std::ios::trunc);
    for (const std::string& line : *lines) out << line << '\n';
    if (!out.flush()) return Status::IoError("cannot write " + result.prefix_path);
  }
  for (int run = 0; run < o.runs; ++run) {
    auto ceiling = CountingConsumer(bootstrap, "bench-ceiling-" + std::to_string(run), result.events);
    if (!ceiling.ok()) return ceiling.status();
    if (ceiling->events_per_s > result.ceiling_events_per_s) {
      result.ceiling_events_per_s = ceiling->events_per_s;
      result.ceiling_cpu_seconds = ceiling->cpu_seconds;
    }
    const std::string group = "rapport-bench-" + std::to_string(run);
    if (Status s = (*broker)->CreateTopic(group + "-changelog", o.partitions); !s.ok()) return s;
    auto daemon = RunDaemonOverTopic(bootstrap, o.rules_dir, o.scratch_dir + "/kafka-state-" + std::to_string(run),
                                     group, ends, result.events);
    if (!daemon.ok()) return daemon.status();
    if (daemon->events_per_s > result.daemon_events_per_s) {
      result.daemon_events_per_s = daemon->events_per_s;
      result.daemon_cpu_seconds = daemon->cpu_seconds;
    }
    result.actions = daemon->delivered;
    result.last_run_commits = daemon->commits;
    result.runs.push_back({ceiling->events_per_s, ceiling->cpu_seconds, daemon->events_per_s});
    std::fprintf(stderr,
                 "  kafka run %d: ceiling %.0f events/s (cpu %.2f s), rapport run %.0f events/s (cpu %.2f s, %llu "
                 "commits)\n",
                 run + 1, ceiling->events_per_s, ceiling->cpu_seconds, daemon->events_per_s, daemon->cpu_seconds,
                 static_cast<unsigned long long>(daemon->commits));
  }
  auto writes = MeasureContractWrites(**broker, bootstrap, "rapport-bench-" + std::to_string(o.runs - 1) + "-changelog",
                                      o.partitions, result.last_run_commits, o.scratch_dir);
  if (!writes.ok()) return writes.status();
  result.contract_writes = *writes;
  // A new instance of the first run's application takes every partition
  // over: it restores them from the changelog and has nothing left to read.
  std::filesystem::remove_all(o.scratch_dir + "/kafka-takeover-state");
  auto takeover =
      RunDaemonOverTopic(bootstrap, o.rules_dir, o.scratch_dir + "/kafka-takeover-state", "rapport-bench-0", ends, 0);
  if (!takeover.ok()) return takeover.status();
  result.restore_records = takeover->restored_records;
  result.restore_seconds = takeover->restore_seconds;
  return result;
}

// The latency floor on the same broker: a bare consumer of the events topic
// that answers each purchase at once with a record the action reader
// matches, produced by an idempotent producer as the daemon's sink is. No
// state, no commit: what is left is produce, broker and fetch.
class EchoPipe {
 public:
  static Result<std::unique_ptr<EchoPipe>> Start(const std::string& bootstrap, int partitions) {
    std::string err;
    auto consumer_conf = MakeConf(
        {{"bootstrap.servers", bootstrap}, {"group.id", "bench-latency-echo"}, {"fetch.wait.max.ms", kFetchWaitMs}},
        &err);
    std::unique_ptr<EchoPipe> pipe(new EchoPipe());
    if (consumer_conf) pipe->consumer_.reset(RdKafka::KafkaConsumer::create(consumer_conf.get(), err));
    if (!pipe->consumer_) return Status::IoError("echo consumer: " + err);
    auto producer = MakeProducer(bootstrap, "5");
    if (!producer.ok()) return producer.status();
    pipe->producer_ = std::move(*producer);
    std::vector<RdKafka::TopicPartition*> parts;
    for (int p = 0; p < partitions; ++p) {
      parts.push_back(RdKafka::TopicPartition::create(kEvents, p, RdKafka::Topic::OFFSET_BEGINNING));
    }
    RdKafka::ErrorCode e = pipe->consumer_->assign(parts);
    for (auto* tp : parts) delete tp;
    if (e != RdKafka::ERR_NO_ERROR) return Status::IoError(std::string("echo assign: ") + RdKafka::err2str(e));
    pipe->thread_ = std::thread([p = pipe.get()] { p->Loop(); });
    return pipe;
  }
  ~EchoPipe() { (void)Stop(); }

  uint64_t echoed() const { return echoed_.load(); }

  Status Stop() {
    if (!thread_.joinable()) return status_;
    running_ = false;
    thread_.join();
    producer_->flush(10000);
    consumer_->close();
    return status_;
  }

 private:
  EchoPipe() = default;
  void Loop() {
    std::string record;
    while (running_ && status_.ok()) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(50));
      producer_->poll(0);
      if (msg->err() != RdKafka::ERR_NO_ERROR) continue;
      std::string_view event(static_cast<const char*>(msg->payload()), msg->len());
      if (StringValue(event, "type") != "purchase") continue;
      record = "{\"campaign\":\"post-purchase-thank-you\",\"event_id\":\"";
      record += StringValue(event, "event_id");
      record += "\"}";
      std::string_view key(static_cast<const char*>(msg->key_pointer()), msg->key_len());
      status_ = Produce(*producer_, kActions, record, key, 0);
      ++echoed_;
    }
  }

  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::thread thread_;
  std::atomic<bool> running_{true};
  std::atomic<uint64_t> echoed_{0};
  Status status_;
};

Result<LatencyResult> MeasureLatency(const LatencyOptions& o) {
  const size_t warmup = static_cast<size_t>(std::llround(o.rate * o.warmup_seconds));
  const size_t total = warmup + static_cast<size_t>(std::llround(o.rate * o.seconds));
  auto lines = ReadLines(o.events_path, INT64_MAX, std::min<size_t>(total, 1000000));
  if (!lines.ok()) return lines.status();
  auto rules = LoadRuleSet(o.rules_dir);
  if (!rules.ok()) return rules.status();
  auto broker = connectors::EmbeddedBroker::Start(1);
  if (!broker.ok()) return broker.status();
  if (Status s = (*broker)->CreateTopic(kEvents, o.partitions); !s.ok()) return s;
  if (Status s = (*broker)->CreateTopic(kActions, o.partitions); !s.ok()) return s;
  if (Status s = (*broker)->CreateTopic("rapport-bench-latency-changelog", o.partitions); !s.ok()) return s;
  const std::string bootstrap = (*broker)->bootstrap_servers();

  // What answers the purchases: the daemon, or (bare_echo) the floor.
  Status run_status;
  std::unique_ptr<connectors::Daemon> daemon;
  std::unique_ptr<EchoPipe> echo;
  std::thread runner;
  if (o.bare_echo) {
    auto started = EchoPipe::Start(bootstrap, o.partitions);
    if (!started.ok()) return started.status();
    echo = std::move(*started);
  } else {
    connectors::RunConfig config =
        DaemonConfig(bootstrap, o.rules_dir, o.scratch_dir + "/latency-state", "rapport-bench-latency");
    config.clock = connectors::ClockMode::kWall;
    config.commit_interval = o.commit_interval;
    // The mock cluster answers a fetch that finds no data only after the whole
    // fetch.wait.max.ms (500 ms by default), even if data arrives meanwhile; a
    // real broker answers as soon as it has data. 5 ms stands in for that.
    config.kafka_source->properties["fetch.wait.max.ms"] = kFetchWaitMs;
    DaemonLog log;
    connectors::DaemonOptions options;
    options.log = log.Function();
    auto opened = connectors::Daemon::Open(config, *rules, options);
    if (!opened.ok()) return opened.status();
    daemon = std::move(*opened);
    runner = std::thread([&] { run_status = daemon->Run(); });
    // Events offered before the group has assigned the partitions would wait
    // for the join: start only once the daemon is consuming.
    const auto join_deadline = Clock::now() + std::chrono::seconds(60);
    while (!log.WhenAssigned() && Clock::now() < join_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!log.WhenAssigned()) {
      daemon->RequestStop();
      runner.join();
      return Status::IoError("the daemon was not assigned the events topic within 60 s");
    }
  }
  auto answered = [&]() -> uint64_t { return echo ? echo->echoed() : daemon->stats().delivered; };
  auto stop_daemon = [&]() {
    if (echo) {
      if (Status s = echo->Stop(); !s.ok() && run_status.ok()) run_status = s;
      return;
    }
    daemon->RequestStop();
    runner.join();
  };

  // Produce time of event i (ms since the epoch), read by the action reader.
  std::vector<std::atomic<int64_t>> sent_ms(total);
  std::atomic<uint64_t> expected{0}, sent_purchases{0};
  std::atomic<bool> producing{true}, reading{true};
  std::vector<double> latencies;
  std::string reader_error;
  std::thread reader([&] {
    std::string err;
    auto conf = MakeConf(
        {{"bootstrap.servers", bootstrap}, {"group.id", "bench-latency-reader"}, {"fetch.wait.max.ms", kFetchWaitMs}},
        &err);
    std::unique_ptr<RdKafka::KafkaConsumer> consumer(conf ? RdKafka::KafkaConsumer::create(conf.get(), err) : nullptr);
    if (!consumer) {
      reader_error = "action reader: " + err;
      return;
    }
    std::vector<RdKafka::TopicPartition*> parts;
    for (int p = 0; p < o.partitions; ++p) {
      parts.push_back(RdKafka::TopicPartition::create(kActions, p, RdKafka::Topic::OFFSET_BEGINNING));
    }
    consumer->assign(parts);
    for (auto* tp : parts) delete tp;
    while (reading) {
      std::unique_ptr<RdKafka::Message> msg(consumer->consume(50));
      if (msg->err() != RdKafka::ERR_NO_ERROR) continue;
      std::string_view action(static_cast<const char*>(msg->payload()), msg->len());
      if (StringValue(action, "campaign") != "post-purchase-thank-you") continue;
      std::string_view id = StringValue(action, "event_id");
      if (id.size() < 3 || id.substr(0, 2) != "l-") continue;
      size_t index = std::strtoull(std::string(id.substr(2)).c_str(), nullptr, 10);
      if (index < warmup || index >= total) continue;
      latencies.push_back(static_cast<double>(msg->timestamp().timestamp - sent_ms[index].load()));
    }
    consumer->close();
  });

  LatencyResult result;
  Status produce_status;
  {
    auto producer = MakeProducer(bootstrap, "1");
    if (!producer.ok()) {
      produce_status = producer.status();
    } else {
      const auto start = Clock::now();
      std::string line;
      size_t i = 0;
      while (i < total && produce_status.ok()) {
        // Catch up with the schedule, then yield briefly.
        const size_t due = std::min(total, static_cast<size_t>(Since(start) * o.rate) + 1);
        for (; i < due && produce_status.ok(); ++i) {
          line = (*lines)[i % lines->size()];
          const int64_t now_ms = WallMs();
          const bool purchase = StringValue(line, "type") == "purchase";
          std::string customer = purchase ? "lat-" + std::to_string(i) : std::string(StringValue(line, "customer_id"));
          auto replace = [&line](std::string_view key, const std::string& raw) {
            if (auto v = FindValue(line, key)) line.replace(v->first, v->second, raw);
          };
          replace("ts", std::to_string(now_ms));
          replace("customer_id", "\"" + customer + "\"");
          replace("event_id", "\"l-" + std::to_string(i) + "\"");
          sent_ms[i] = now_ms;
          if (purchase) {
            ++sent_purchases;
            if (i >= warmup) ++expected;
          }
          produce_status = Produce(**producer, kEvents, line, customer, now_ms);
        }
        (*producer)->poll(0);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      const double produce_seconds = Since(start);
      if (produce_status.ok() && (*producer)->flush(60000) != RdKafka::ERR_NO_ERROR) {
        produce_status = Status::IoError("bench producer: flush");
      }
      result.produced = i;
      result.achieved_rate = static_cast<double>(i) / produce_seconds;
    }
  }
  producing = false;
  // Wait for the actions: at most 60 s after the last event was offered.
  const auto drain_deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < drain_deadline) {
    if (answered() >= sent_purchases.load()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The reader may still be behind the delivery count by a poll or two.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  reading = false;
  reader.join();
  stop_daemon();
  if (!produce_status.ok()) return produce_status;
  if (!run_status.ok()) return run_status;
  if (!reader_error.empty()) return Status::IoError(reader_error);
  result.expected = expected;
  result.samples = latencies.size();
  if (latencies.empty()) return Status::IoError("no post-purchase-thank-you action came back");
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&latencies](double q) {
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(latencies.size())));
    return latencies[std::min(latencies.size(), std::max<size_t>(rank, 1)) - 1];
  };
  result.p50_ms = pct(0.50);
  result.p99_ms = pct(0.99);
  result.p999_ms = pct(0.999);
  return result;
}

}  // namespace rapport::bench

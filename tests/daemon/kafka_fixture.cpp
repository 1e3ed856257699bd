#include "kafka_fixture.h"

#include <fcntl.h>
#include <librdkafka/rdkafkacpp.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "rapport/connectors/replay.h"
#include "rapport/engine/event.h"
#include "rapport/engine/profile.h"
#include "rapport/engine/state_store.h"
#include "rapport/rules/rule_set.h"
#include "temp_dir.h"

extern char** environ;

namespace rapport::testing {

int32_t PartitionOf(const std::string& customer, int partitions) {
  uint32_t h = 2166136261u;
  for (unsigned char c : customer) h = (h ^ c) * 16777619u;
  return static_cast<int32_t>(h % static_cast<uint32_t>(partitions));
}

std::string CustomerOf(const std::string& line) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(line).get(doc) != simdjson::SUCCESS) return "";
  std::string_view id;
  if (doc["customer_id"].get(id) != simdjson::SUCCESS) return "";
  return std::string(id);
}

size_t CountRejected(const std::vector<std::string>& lines) {
  EventDecoder decoder;
  Event event;
  Rejection rejection;
  std::string padded;
  size_t rejected = 0;
  for (const std::string& line : lines) {
    padded.assign(line);
    padded.append(kEventPadding, '\0');
    rejected += !decoder.Decode(std::string_view(padded.data(), line.size()), &event, &rejection);
  }
  return rejected;
}

void ProduceLines(const std::string& bootstrap, const std::string& topic, const std::vector<std::string>& lines,
                  int partitions) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("enable.idempotence", "true", err);
  conf->set("linger.ms", "5", err);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  REQUIRE(producer);
  for (const std::string& line : lines) {
    std::string customer = CustomerOf(line);
    int32_t partition = customer.empty() ? 0 : PartitionOf(customer, partitions);
    for (;;) {
      RdKafka::ErrorCode e =
          producer->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(line.data()),
                            line.size(), customer.empty() ? nullptr : customer.data(), customer.size(), 0, nullptr);
      if (e == RdKafka::ERR_NO_ERROR) break;
      REQUIRE(e == RdKafka::ERR__QUEUE_FULL);
      producer->poll(10);
    }
  }
  REQUIRE(producer->flush(30000) == RdKafka::ERR_NO_ERROR);
}

std::vector<Message> ReadTopic(const std::string& bootstrap, const std::string& topic, int partitions,
                               const std::function<bool(const std::vector<Message>&)>& done,
                               std::chrono::seconds deadline) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", "test-reader", err);
  conf->set("enable.auto.commit", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(consumer);
  // assign(), not subscribe(): no group join to wait for.
  std::vector<RdKafka::TopicPartition*> tps;
  for (int p = 0; p < partitions; ++p) {
    tps.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  REQUIRE(consumer->assign(tps) == RdKafka::ERR_NO_ERROR);
  RdKafka::TopicPartition::destroy(tps);
  std::vector<Message> messages;
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!done(messages) && std::chrono::steady_clock::now() < end) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    Message out;
    out.partition = m->partition();
    out.offset = m->offset();
    if (m->key() != nullptr) out.key = *m->key();
    out.value.assign(static_cast<const char*>(m->payload()), m->len());
    messages.push_back(std::move(out));
  }
  consumer->close();
  return messages;
}

int64_t CommittedTotal(const std::string& bootstrap, const std::string& group, const std::string& topic,
                       int partitions) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", group, err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(consumer);
  std::vector<RdKafka::TopicPartition*> tps;
  for (int p = 0; p < partitions; ++p) tps.push_back(RdKafka::TopicPartition::create(topic, p));
  int64_t total = -1;
  if (consumer->committed(tps, 5000) == RdKafka::ERR_NO_ERROR) {
    for (auto* tp : tps) {
      if (tp->offset() >= 0) total = std::max<int64_t>(total, 0) + tp->offset();
    }
  }
  RdKafka::TopicPartition::destroy(tps);
  consumer->close();
  return total;
}

std::set<std::string> ActionIds(const std::vector<std::string>& action_lines) {
  std::set<std::string> ids;
  simdjson::dom::parser parser;
  for (const std::string& line : action_lines) {
    simdjson::dom::element doc;
    REQUIRE(parser.parse(line).get(doc) == simdjson::SUCCESS);
    std::string_view id;
    REQUIRE(doc["action_id"].get(id) == simdjson::SUCCESS);
    ids.emplace(id);
  }
  return ids;
}

std::set<std::string> ActionIds(const std::vector<Message>& messages) {
  std::vector<std::string> lines;
  for (const Message& m : messages) lines.push_back(m.value);
  return ActionIds(lines);
}

Child::Child(const std::string& config_path, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  std::string binary = RapportBinary();
  std::vector<char*> argv = {binary.data(), const_cast<char*>("run"), const_cast<char*>("--config"),
                             const_cast<char*>(config_path.c_str()), nullptr};
  int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
}

Child::~Child() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
}

void Child::Kill(int signal) { ::kill(pid_, signal); }

int Child::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

namespace {
std::string Canonical(const Profile& p, StateStore& store, uint32_t partition) {
  std::map<std::string, std::string> parts;
  for (const TypeStats& t : p.types) {
    parts["type " + store.SymbolName(partition, SymbolKind::kEventType, t.type)] =
        std::to_string(t.count) + "@" + std::to_string(t.last_ms);
  }
  for (const CampaignState& c : p.campaigns) {
    std::string recent;
    for (int64_t r : c.recent_ms) recent += std::to_string(r) + ",";
    parts["campaign " + store.SymbolName(partition, SymbolKind::kCampaign, c.campaign)] =
        std::to_string(c.armed_due_ms) + "/" + std::to_string(c.fired) + "/" + std::to_string(c.last_fired_ms) + "/" +
        recent;
  }
  for (const AggregateState& a : p.aggregates) {
    std::string window;
    for (auto [t, v] : a.window) window += std::to_string(t) + ":" + std::to_string(v) + ",";
    parts["aggregate " + store.SymbolName(partition, SymbolKind::kAggregate, a.aggregate)] =
        std::to_string(static_cast<int>(a.kind)) + "/" + std::to_string(a.number) + "/" + a.text + "/" +
        std::to_string(a.boolean) + "/" + window;
  }
  std::string out = std::to_string(p.first_seen_ms) + " " + std::to_string(p.last_seen_ms) + " " +
                    std::to_string(p.total_spent_cents) + " stage " + std::to_string(p.stage);
  for (const auto& [k, v] : parts) out += "; " + k + "=" + v;
  return out;
}
}  // namespace

std::string KafkaRunConfig(const TempDir& dir, const std::string& name, const std::string& bootstrap,
                           const std::string& application_id, const std::string& coupon_secret,
                           const std::string& extra) {
  const std::string path = dir.File(name + ".yaml");
  WriteFile(path, "rules: " + SourcePath("rules/packs/relationship") + "\n" + "state_dir: " + dir.File(name + "-state") +
                      "\n" + "application_id: " + application_id + "\n" +
                      "clock: event\n"
                      "commit_interval: 100ms\n"
                      "commit_max_events: 400\n"
                      "coupon_secret: " +
                      coupon_secret +
                      "\n"
                      "kafka:\n"
                      "  bootstrap.servers: " +
                      bootstrap +
                      "\n"
                      // Rebalances and failure detection at test speed.
                      "  session.timeout.ms: 6000\n"
                      "  heartbeat.interval.ms: 300\n"
                      "source:\n"
                      "  kafka:\n"
                      "    topic: events\n"
                      "sinks:\n"
                      "  - kafka:\n"
                      "      topic: actions\n"
                      "dead_letter:\n"
                      "  kafka:\n"
                      "    topic: events-dead\n" +
                      extra);
  return path;
}

std::map<std::string, std::string> DumpProfiles(const std::string& state_dir, int partitions) {
  auto store = StateStore::Open(state_dir, StateStoreOptions{});
  REQUIRE(store.ok());
  std::map<std::string, std::string> out;
  for (int p = 0; p < partitions; ++p) {
    Status s =
        (*store)->ForEachProfile(static_cast<uint32_t>(p), [&](std::string_view customer, std::string_view bytes) {
          Profile profile;
          REQUIRE(DecodeProfile(bytes, &profile).ok());
          out[std::string(customer)] = Canonical(profile, **store, static_cast<uint32_t>(p));
        });
    REQUIRE(s.ok());
  }
  return out;
}

namespace {
class CollectingSink : public ActionSink {
 public:
  void Deliver(const FiredAction& a) override { lines.emplace_back(a.json); }
  std::vector<std::string> lines;
};
}  // namespace

std::vector<std::string> ReplayPerPartition(const std::string& rules_path, const std::vector<std::string>& lines,
                                            int partitions, const std::string& work_dir,
                                            const std::string& coupon_secret,
                                            std::map<std::string, std::string>* profiles) {
  rules::LoadResult loaded = rules::LoadRules({rules_path});
  REQUIRE(loaded.rules);
  std::vector<std::string> split(partitions);
  for (const std::string& line : lines) {
    std::string customer = CustomerOf(line);
    split[customer.empty() ? 0 : PartitionOf(customer, partitions)] += line + "\n";
  }
  CollectingSink sink;
  for (int p = 0; p < partitions; ++p) {
    const std::string events = work_dir + "/partition-" + std::to_string(p) + ".jsonl";
    const std::string state = work_dir + "/state-" + std::to_string(p);
    WriteFile(events, split[p]);
    connectors::ReplayOptions options;
    options.events_path = events;
    options.state_dir = state;
    options.coupon_secret = coupon_secret;
    auto summary = connectors::RunReplay(options, loaded.rules, sink);
    REQUIRE(summary.ok());
    if (profiles != nullptr) {
      for (auto& [customer, text] : DumpProfiles(state, 1)) (*profiles)[customer] = text;
    }
  }
  return sink.lines;
}

}  // namespace rapport::testing

// `rapport run` against librdkafka's mock cluster on loopback: the real
// binary as a child process, real RocksDB state, real topics.
//
// The reference for every comparison is a file replay of each partition's
// events on its own (the daemon keeps one clock per partition), done in the
// test with the same rules and coupon secret.
#include <httplib.h>
#include <signal.h>
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "kafka_fixture.h"
#include "rapport/connectors/daemon.h"
#include "rapport/connectors/store_simulator.h"
#include "rapport/rules/rule_set.h"
#include "temp_dir.h"

namespace rapport::testing {
namespace {

constexpr int kPartitions = 4;
constexpr char kSecret[] = "daemon-test-secret";

std::vector<std::string> StoreLines(uint64_t customers, int64_t days, uint64_t seed, double bad_rate) {
  connectors::StoreSimulatorOptions options;
  options.customers = customers;
  options.days = days;
  options.seed = seed;
  options.bad_rate = bad_rate;
  auto sim = connectors::StoreSimulator::Create(options);
  REQUIRE(sim.ok());
  std::vector<std::string> lines;
  connectors::SimulatedLine line;
  while ((*sim)->Next(&line)) lines.emplace_back(line.text);
  return lines;
}

struct Cluster {
  std::unique_ptr<connectors::EmbeddedBroker> broker;
  std::string bootstrap;
  explicit Cluster(int brokers = 1) {
    auto b = connectors::EmbeddedBroker::Start(brokers);
    REQUIRE(b.ok());
    broker = std::move(*b);
    bootstrap = broker->bootstrap_servers();
    REQUIRE(broker->CreateTopic("events", kPartitions).ok());
    REQUIRE(broker->CreateTopic("actions", kPartitions).ok());
    REQUIRE(broker->CreateTopic("events-dead", 1).ok());
  }
};

// A run of the standard pack from the "events" topic to actions.jsonl in `dir`.
connectors::RunConfig FileSinkRunConfig(const TempDir& dir, const std::string& bootstrap,
                                        const std::string& application_id, connectors::ClockMode clock) {
  connectors::RunConfig config;
  config.rules = SourcePath("rules/packs/relationship");
  config.state_dir = dir.File("state");
  config.application_id = application_id;
  config.clock = clock;
  connectors::KafkaProperties kafka{{"bootstrap.servers", bootstrap}};
  config.kafka_source = connectors::KafkaSourceConfig{"events", kafka};
  connectors::SinkConfig sink;
  sink.kind = connectors::SinkConfig::Kind::kFile;
  sink.file.path = dir.File("actions.jsonl");
  config.sinks.push_back(sink);
  return config;
}

std::string KafkaConfig(const TempDir& dir, const std::string& name, const std::string& bootstrap,
                        const std::string& group) {
  return KafkaRunConfig(dir, name, bootstrap, group, kSecret);
}

// Reads the actions topic until it holds every id in `expected`.
std::vector<Message> AwaitActions(const std::string& bootstrap, const std::set<std::string>& expected) {
  return ReadTopic(bootstrap, "actions", kPartitions, [&](const std::vector<Message>& got) {
    if (got.size() < expected.size()) return false;
    std::set<std::string> ids = ActionIds(got);
    return std::includes(ids.begin(), ids.end(), expected.begin(), expected.end());
  });
}

// Waits (bounded) until `path` contains `needle`: the child said it happened.
bool AwaitLog(const std::string& path, const std::string& needle, int occurrences = 1,
              std::chrono::seconds deadline = std::chrono::seconds(60)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    std::string text = ReadFile(path);
    int n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    if (n >= occurrences) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the child's log, not waiting for time
  }
  return false;
}

bool AwaitCommitted(const std::string& bootstrap, const std::string& group, int64_t at_least) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < end) {
    if (CommittedTotal(bootstrap, group, "events", kPartitions) >= at_least) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("run: events produced to Kafka give the actions of a file replay, and bad ones go to the dead-letter topic",
          "[daemon][kafka]") {
  TempDir dir;
  Cluster cluster;
  std::vector<std::string> lines = StoreLines(300, 60, 11, 0.01);
  std::map<std::string, std::string> expected_profiles;
  std::vector<std::string> expected = ReplayPerPartition(SourcePath("rules/packs/relationship"), lines, kPartitions,
                                                         dir.path().string(), kSecret, &expected_profiles);
  const std::set<std::string> expected_ids = ActionIds(expected);
  REQUIRE(expected_ids.size() > 50);
  const size_t malformed = CountRejected(lines);
  REQUIRE(malformed > 0);

  ProduceLines(cluster.bootstrap, "events", lines, kPartitions);
  const std::string log = dir.File("run.log");
  Child child(KafkaConfig(dir, "run", cluster.bootstrap, "rapport-a"), log);
  std::vector<Message> actions = AwaitActions(cluster.bootstrap, expected_ids);
  child.Kill(SIGTERM);
  REQUIRE(child.Wait() == 0);
  INFO(ReadFile(log));

  CHECK(ActionIds(actions) == expected_ids);
  for (const Message& m : actions) CHECK(m.value.find("\"customer_id\":\"" + m.key + "\"") != std::string::npos);
  CHECK(DumpProfiles(dir.File("run-state"), kPartitions) == expected_profiles);

  std::vector<Message> dead = ReadTopic(cluster.bootstrap, "events-dead", 1,
                                        [&](const std::vector<Message>& got) { return got.size() >= malformed; });
  REQUIRE(dead.size() >= malformed);
  simdjson::dom::parser parser;
  for (const Message& m : dead) {
    simdjson::dom::element letter;
    REQUIRE(parser.parse(m.value).get(letter) == simdjson::SUCCESS);
    std::string_view reason, topic;
    int64_t partition = -1, offset = -1;
    CHECK(letter["reason"].get(reason) == simdjson::SUCCESS);
    CHECK(!reason.empty());
    CHECK(letter["topic"].get(topic) == simdjson::SUCCESS);
    CHECK(topic == "events");
    CHECK(letter["partition"].get(partition) == simdjson::SUCCESS);
    CHECK(letter["offset"].get(offset) == simdjson::SUCCESS);
    CHECK(partition >= 0);
    CHECK(partition < kPartitions);
    CHECK(offset >= 0);
  }
}

TEST_CASE("run: SIGKILL mid-stream and a restart lose nothing and add nothing", "[daemon][kafka][crash]") {
  TempDir dir;
  Cluster cluster;
  std::vector<std::string> lines = StoreLines(400, 90, 23, 0.0);
  std::map<std::string, std::string> expected_profiles;
  const std::set<std::string> expected_ids = ActionIds(ReplayPerPartition(
      SourcePath("rules/packs/relationship"), lines, kPartitions, dir.path().string(), kSecret, &expected_profiles));
  const size_t half = lines.size() / 2;
  std::vector<std::string> first(lines.begin(), lines.begin() + half), second(lines.begin() + half, lines.end());

  const std::string config = KafkaConfig(dir, "crash", cluster.bootstrap, "rapport-crash");
  const std::string log = dir.File("crash.log");
  ProduceLines(cluster.bootstrap, "events", first, kPartitions);
  {
    Child child(config, log);
    // Kill it once some, not all, of the stream is committed.
    REQUIRE(AwaitCommitted(cluster.bootstrap, "rapport-crash", static_cast<int64_t>(half / 4)));
    child.Kill(SIGKILL);
    REQUIRE(child.Wait() == 128 + SIGKILL);
  }
  const int64_t committed_at_kill = CommittedTotal(cluster.bootstrap, "rapport-crash", "events", kPartitions);
  INFO("committed at the kill: " << committed_at_kill << " of " << lines.size());
  ProduceLines(cluster.bootstrap, "events", second, kPartitions);
  Child restarted(config, log);
  std::vector<Message> actions = AwaitActions(cluster.bootstrap, expected_ids);
  restarted.Kill(SIGTERM);
  REQUIRE(restarted.Wait() == 0);
  // Everything the engine will ever send is out now; read it all.
  actions = ReadTopic(cluster.bootstrap, "actions", kPartitions,
                      [&](const std::vector<Message>& got) { return got.size() >= actions.size(); });
  INFO(ReadFile(log));

  const std::set<std::string> got = ActionIds(actions);
  std::vector<std::string> lost, extra;
  std::set_difference(expected_ids.begin(), expected_ids.end(), got.begin(), got.end(), std::back_inserter(lost));
  std::set_difference(got.begin(), got.end(), expected_ids.begin(), expected_ids.end(), std::back_inserter(extra));
  // Reported on every run: the figures of the crash test.
  WARN("crash test: killed with " << committed_at_kill << " of " << lines.size() << " events committed; actions: "
                                  << expected_ids.size() << " expected, " << actions.size() << " messages, "
                                  << got.size() << " distinct, " << lost.size() << " lost, " << extra.size()
                                  << " extra");
  CHECK(lost.empty());
  CHECK(extra.empty());
  CHECK(DumpProfiles(dir.File("crash-state"), kPartitions) == expected_profiles);
}

TEST_CASE("run: a broker taken down and brought back loses nothing", "[daemon][kafka]") {
  TempDir dir;
  Cluster cluster(3);
  std::vector<std::string> lines = StoreLines(300, 60, 31, 0.0);
  const std::set<std::string> expected_ids = ActionIds(ReplayPerPartition(
      SourcePath("rules/packs/relationship"), lines, kPartitions, dir.path().string(), kSecret, nullptr));
  const size_t half = lines.size() / 2;
  std::vector<std::string> first(lines.begin(), lines.begin() + half), second(lines.begin() + half, lines.end());
  const std::string log = dir.File("down.log");
  ProduceLines(cluster.bootstrap, "events", first, kPartitions);
  Child child(KafkaConfig(dir, "down", cluster.bootstrap, "rapport-down"), log);
  REQUIRE(AwaitCommitted(cluster.bootstrap, "rapport-down", 1));
  for (int b = 1; b <= 3; ++b) REQUIRE(cluster.broker->SetBrokerDown(b).ok());
  // The engine has seen the outage when librdkafka reports it.
  REQUIRE(AwaitLog(log, "kafka: "));
  for (int b = 1; b <= 3; ++b) REQUIRE(cluster.broker->SetBrokerUp(b).ok());
  ProduceLines(cluster.bootstrap, "events", second, kPartitions);
  std::vector<Message> actions = AwaitActions(cluster.bootstrap, expected_ids);
  child.Kill(SIGTERM);
  CHECK(child.Wait() == 0);
  INFO(ReadFile(log));
  CHECK(ActionIds(actions) == expected_ids);
}

TEST_CASE("run: two instances in one group split the partitions and together send the right actions",
          "[daemon][kafka]") {
  TempDir dir;
  Cluster cluster;
  std::vector<std::string> lines = StoreLines(300, 60, 47, 0.0);
  std::map<std::string, std::string> expected_profiles;
  const std::set<std::string> expected_ids = ActionIds(ReplayPerPartition(
      SourcePath("rules/packs/relationship"), lines, kPartitions, dir.path().string(), kSecret, &expected_profiles));
  const std::string log_a = dir.File("a.log"), log_b = dir.File("b.log");
  Child a(KafkaConfig(dir, "a", cluster.bootstrap, "rapport-pair"), log_a);
  REQUIRE(AwaitLog(log_a, "assigned events["));
  Child b(KafkaConfig(dir, "b", cluster.bootstrap, "rapport-pair"), log_b);
  // Cooperative rebalancing: the first gives up some partitions, the second takes them.
  REQUIRE(AwaitLog(log_b, "assigned events["));
  REQUIRE(AwaitLog(log_a, "revoked events["));
  ProduceLines(cluster.bootstrap, "events", lines, kPartitions);
  std::vector<Message> actions = AwaitActions(cluster.bootstrap, expected_ids);
  a.Kill(SIGTERM);
  b.Kill(SIGTERM);
  CHECK(a.Wait() == 0);
  CHECK(b.Wait() == 0);
  INFO(ReadFile(log_a) << ReadFile(log_b));
  CHECK(ActionIds(actions) == expected_ids);
  std::map<std::string, std::string> profiles = DumpProfiles(dir.File("a-state"), kPartitions);
  std::map<std::string, std::string> from_b = DumpProfiles(dir.File("b-state"), kPartitions);
  CHECK(!profiles.empty());
  CHECK(!from_b.empty());
  for (const auto& [customer, text] : from_b) CHECK(profiles.emplace(customer, text).second);
  CHECK(profiles == expected_profiles);
}

TEST_CASE("run: a webhook that fails for a while still receives every action", "[daemon][webhook]") {
  TempDir dir;
  std::vector<std::string> lines = StoreLines(200, 45, 5, 0.0);
  std::string events;
  for (const auto& l : lines) events += l + "\n";
  WriteFile(dir.File("events.jsonl"), events);
  // A webhook does not send held-out firings.
  std::vector<std::string> delivered;
  for (const std::string& a :
       ReplayPerPartition(SourcePath("rules/packs/relationship"), lines, 1, dir.path().string(), kSecret, nullptr)) {
    if (a.find("\"held_out\":false") != std::string::npos) delivered.push_back(a);
  }
  const std::set<std::string> expected_ids = ActionIds(delivered);
  REQUIRE(!expected_ids.empty());

  httplib::Server server;
  std::mutex mu;
  std::vector<std::string> received;
  int refused = 0;
  server.Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    if (refused < 8) {
      ++refused;
      res.status = 503;
      return;
    }
    received.push_back(req.body);
    res.status = 204;
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread serving([&] { server.listen_after_bind(); });

  const std::string config = dir.File("hook.yaml");
  WriteFile(config, "rules: " + SourcePath("rules/packs/relationship") + "\n" + "state_dir: " + dir.File("hook-state") +
                        "\n" +
                        "clock: event\n"
                        "coupon_secret: " +
                        kSecret +
                        "\n"
                        "source:\n"
                        "  file:\n"
                        "    path: " +
                        dir.File("events.jsonl") +
                        "\n"
                        "sinks:\n"
                        "  - webhook:\n"
                        "      url: http://127.0.0.1:" +
                        std::to_string(port) +
                        "/hook\n"
                        "      timeout: 2s\n"
                        "      retry_for: 50ms\n");
  Child child(config, dir.File("hook.log"));
  // A file source ends at the end of its input, once the outbox is delivered.
  CHECK(child.Wait() == 0);
  server.stop();
  serving.join();
  INFO(ReadFile(dir.File("hook.log")));
  CHECK(refused == 8);
  CHECK(ActionIds(received) == expected_ids);
}

}  // namespace rapport::testing

namespace rapport::testing {

TEST_CASE("run: in wall mode an idle partition follows the wall clock, so inactivity timers fire without traffic",
          "[daemon][kafka][clock]") {
  TempDir dir;
  Cluster cluster;
  const int64_t t0 = 1767225600000;  // 2026-01-01T00:00:00Z
  const int64_t day = 86400000;
  ProduceLines(cluster.bootstrap, "events",
               {R"({"type":"visit","customer_id":"c-1","ts":1767225600000})",
                R"({"type":"visit","customer_id":"c-1","ts":1767229200000})"},
               kPartitions);

  connectors::RunConfig config =
      FileSinkRunConfig(dir, cluster.bootstrap, "rapport-wall", connectors::ClockMode::kWall);
  config.commit_interval = std::chrono::milliseconds(50);
  rules::LoadResult loaded = rules::LoadRules({config.rules});
  REQUIRE(loaded.rules);

  std::atomic<int64_t> wall{t0 + day};
  connectors::DaemonOptions options;
  options.wall_clock = [&wall] { return EventTime{wall.load()}; };
  auto daemon = connectors::Daemon::Open(config, loaded.rules, options);
  REQUIRE(daemon.ok());
  Status result;
  std::thread running([&] { result = (*daemon)->Run(); });
  const int32_t partition = PartitionOf("c-1", kPartitions);
  auto consumed = [&] {
    auto positions = (*daemon)->stats().positions;
    return positions.count(partition) && positions[partition] >= 2;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!consumed() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the daemon's progress
  }
  REQUIRE(consumed());
  CHECK(ReadFile(dir.File("actions.jsonl")).empty());  // a day of silence is not a lapse

  wall = t0 + 31 * day + 3600000;
  std::vector<std::string> actions;
  const auto fired_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (actions.empty() && std::chrono::steady_clock::now() < fired_by) {
    std::string text = ReadFile(dir.File("actions.jsonl"));
    if (text.find('\n') != std::string::npos)
      actions.push_back(text.substr(0, text.find('\n')));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the sink's file
  }
  (*daemon)->RequestStop();
  running.join();
  REQUIRE(result.ok());
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].find("\"campaign\":\"lapsed-visitor\"") != std::string::npos);
  // The timer's due time: the last visit plus 30 days.
  CHECK(actions[0].find("\"ts\":\"2026-01-31T01:00:00.000Z\"") != std::string::npos);
}

TEST_CASE("run: an action is committed and delivered as soon as the input is drained, not after the interval",
          "[daemon][kafka][latency]") {
  TempDir dir;
  Cluster cluster;
  // Visits of other customers, in other partitions, fire nothing.
  std::vector<std::string> lines;
  std::set<int32_t> quiet_partitions;
  const int32_t purchase_partition = PartitionOf("c-7", kPartitions);
  for (int i = 0; i < 6; ++i) {
    const std::string customer = "c-" + std::to_string(i);
    if (PartitionOf(customer, kPartitions) == purchase_partition) continue;
    quiet_partitions.insert(PartitionOf(customer, kPartitions));
    lines.push_back(R"({"type":"visit","customer_id":")" + customer + R"(","ts":1767225600000})");
  }
  REQUIRE(!quiet_partitions.empty());
  lines.push_back(R"({"type":"visit","customer_id":"c-7","ts":1767225600000})");
  lines.push_back(R"({"type":"purchase","customer_id":"c-7","ts":1767225660000,"amount":40,"order_id":"o-1"})");
  ProduceLines(cluster.bootstrap, "events", lines, kPartitions);

  connectors::RunConfig config =
      FileSinkRunConfig(dir, cluster.bootstrap, "rapport-drained", connectors::ClockMode::kEvent);
  // Neither the interval nor the budget can cause a commit during the test.
  config.commit_interval = std::chrono::hours(1);
  config.commit_max_events = 1000000;
  rules::LoadResult loaded = rules::LoadRules({config.rules});
  REQUIRE(loaded.rules);

  auto daemon = connectors::Daemon::Open(config, loaded.rules, {});
  REQUIRE(daemon.ok());
  Status result;
  std::thread running([&] { result = (*daemon)->Run(); });
  std::string delivered;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (delivered.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    delivered = ReadFile(dir.File("actions.jsonl"));
    if (delivered.find('\n') == std::string::npos) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the sink's file
    }
  }
  const connectors::DaemonStats running_stats = (*daemon)->stats();
  (*daemon)->RequestStop();
  running.join();
  REQUIRE(result.ok());
  REQUIRE(delivered.find('\n') != std::string::npos);
  CHECK(delivered.find("\"campaign\":\"post-purchase-thank-you\"") != std::string::npos);
  CHECK(delivered.find("\"customer_id\":\"c-7\"") != std::string::npos);
  // Delivered after a commit made while running, not the one at shutdown:
  // a commit of the purchase's partition alone, the others wait for the
  // interval.
  CHECK(running_stats.commits >= 1);
  CHECK(running_stats.positions.at(purchase_partition) == 2);
  for (int32_t quiet : quiet_partitions) {
    auto it = running_stats.positions.find(quiet);
    CHECK((it == running_stats.positions.end() || it->second < 0));
  }
}

TEST_CASE("run: SIGHUP reloads the rules, refusing a set with errors and keeping the running one",
          "[daemon][kafka][reload]") {
  TempDir dir;
  Cluster cluster;
  std::filesystem::create_directories(dir.File("rules"));
  for (const auto& entry : std::filesystem::directory_iterator(SourcePath("rules/packs/relationship"))) {
    if (entry.path().extension() == ".yaml") {
      std::filesystem::copy_file(entry.path(), dir.path() / "rules" / entry.path().filename());
    }
  }
  std::string config = KafkaConfig(dir, "hup", cluster.bootstrap, "rapport-hup");
  std::string text = ReadFile(config);
  text.replace(text.find("rules: "), text.find('\n') + 1, "rules: " + dir.File("rules") + "\n");
  WriteFile(config, text);
  const std::string log = dir.File("hup.log");
  Child child(config, log);
  REQUIRE(AwaitLog(log, "started: 3 campaigns"));

  WriteFile(dir.File("rules/probe.yaml"),
            "version: 1\ncampaigns:\n  - id: reload-probe\n    trigger: { evnt: purchase }\n");
  child.Kill(SIGHUP);
  REQUIRE(AwaitLog(log, "reload refused"));
  CHECK(ReadFile(log).find("probe.yaml:4:") != std::string::npos);

  WriteFile(dir.File("rules/probe.yaml"),
            "version: 1\ncampaigns:\n  - id: reload-probe\n    trigger: { event: purchase }\n"
            "    actions:\n      - { channel: email, template: probe }\n");
  child.Kill(SIGHUP);
  REQUIRE(AwaitLog(log, "reloaded rules: 4 campaigns"));
  ProduceLines(cluster.bootstrap, "events",
               {R"({"type":"purchase","customer_id":"c-9","ts":1767225600000,"amount":12.5})"}, kPartitions);
  std::vector<Message> actions = ReadTopic(cluster.bootstrap, "actions", kPartitions, [](const auto& got) {
    for (const Message& m : got) {
      if (m.value.find("\"campaign\":\"reload-probe\"") != std::string::npos) return true;
    }
    return false;
  });
  child.Kill(SIGTERM);
  CHECK(child.Wait() == 0);
  INFO(ReadFile(log));
  bool probe_fired = false;
  for (const Message& m : actions) probe_fired |= m.value.find("\"campaign\":\"reload-probe\"") != std::string::npos;
  CHECK(probe_fired);
}

}  // namespace rapport::testing

// rapport demo: a simulated store's traffic through Kafka and the standard
// campaigns, with nothing to install. librdkafka's mock cluster runs
// in-process as the broker; a producer thread plays about 90 days of store
// traffic into it; the engine runs exactly as `rapport run` does (consumer
// group, RocksDB state, outbox, Kafka sink) and the demo ends when everything
// produced has been consumed and its actions delivered.
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include "commands.h"
#include "rapport/connectors/daemon.h"
#include "rapport/connectors/embedded_broker.h"
#include "rapport/connectors/replay.h"
#include "rapport/connectors/store_simulator.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

struct DemoArgs {
  std::string rules = "rules/packs/relationship";
  uint64_t customers = 5000;
  int64_t days = 90;
  uint64_t seed = 7;
  int partitions = 4;
  size_t show = 15;
};

constexpr char kEventsTopic[] = "events";
constexpr char kActionsTopic[] = "actions";
constexpr char kDeadTopic[] = "events-dead";

// Prints the first actions as they fire, then a line every ten store days.
class DemoPrinter : public ActionSink {
 public:
  explicit DemoPrinter(size_t show) : show_(show) {}
  void Deliver(const FiredAction& a) override {
    ++seen_;
    if (seen_ <= show_) {
      std::printf("  %s  %-24s %-8s %-6s%s\n", FormatRfc3339(a.ts).c_str(), a.campaign->id.c_str(),
                  std::string(a.customer_id).c_str(),
                  a.campaign->actions.empty() ? "" : a.campaign->actions[0].channel.c_str(),
                  a.held_out ? " (held out)" : "");
      if (seen_ == show_) std::printf("  ...\n");
    }
    const int64_t day = a.ts.ms / 86400000;
    if (first_day_ < 0) first_day_ = day;
    if (seen_ > show_ && day - first_day_ >= next_report_) {
      std::printf("  store day %3lld: %llu actions so far\n", static_cast<long long>(day - first_day_),
                  static_cast<unsigned long long>(seen_));
      next_report_ = day - first_day_ + 10;
    }
  }

 private:
  size_t show_;
  uint64_t seen_ = 0;
  int64_t first_day_ = -1, next_report_ = 10;
};

struct ProducerResult {
  Status status;
  uint64_t events = 0, malformed = 0, bytes = 0;
  std::map<int32_t, int64_t> end_offsets;
};

// Plays the simulated store into the events topic, keyed by customer.
ProducerResult Produce(const std::string& bootstrap, const connectors::StoreSimulatorOptions& sim, int partitions) {
  ProducerResult r;
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("enable.idempotence", "true", err);
  conf->set("linger.ms", "20", err);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) {
    r.status = Status::IoError("demo producer: " + err);
    return r;
  }
  auto simulator = connectors::StoreSimulator::Create(sim);
  if (!simulator.ok()) {
    r.status = simulator.status();
    return r;
  }
  connectors::SimulatedLine line;
  while ((*simulator)->Next(&line)) {
    for (;;) {
      // Keyless lines (the malformed ones) go to partition 0 so that runs repeat exactly.
      RdKafka::ErrorCode e = producer->produce(
          kEventsTopic, line.customer_id.empty() ? 0 : RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
          const_cast<char*>(line.text.data()), line.text.size(),
          line.customer_id.empty() ? nullptr : line.customer_id.data(), line.customer_id.size(), 0, nullptr);
      if (e == RdKafka::ERR_NO_ERROR) break;
      if (e != RdKafka::ERR__QUEUE_FULL) {
        r.status = Status::IoError(std::string("demo producer: ") + RdKafka::err2str(e));
        return r;
      }
      producer->poll(10);
    }
    producer->poll(0);
    r.bytes += line.text.size();
    ++(line.malformed ? r.malformed : r.events);
  }
  if (producer->flush(60000) != RdKafka::ERR_NO_ERROR) {
    r.status = Status::IoError("demo producer: could not deliver every event");
    return r;
  }
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    if (producer->query_watermark_offsets(kEventsTopic, p, &low, &high, 10000) != RdKafka::ERR_NO_ERROR) {
      r.status = Status::IoError("demo producer: cannot read the end offsets");
      return r;
    }
    r.end_offsets[p] = high;
  }
  return r;
}

int RunDemo(const DemoArgs& args) {
  rules::LoadResult loaded = rules::LoadRules({args.rules});
  for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
  if (!loaded.rules) {
    std::cerr << "rapport demo: cannot load " << args.rules << " (run it from the repository root, or pass --rules)\n";
    return 1;
  }
  constexpr const char* kApplicationId = "rapport-demo";
  auto dir = connectors::ScratchDirectory::Create("rapport-demo");
  if (!dir.ok()) {
    std::cerr << "rapport demo: " << dir.status().message() << '\n';
    return 2;
  }
  auto broker = connectors::EmbeddedBroker::Start(3);
  Status topics = broker.ok() ? (*broker)->CreateTopic(kEventsTopic, args.partitions) : broker.status();
  if (topics.ok()) topics = (*broker)->CreateTopic(kActionsTopic, args.partitions);
  if (topics.ok()) topics = (*broker)->CreateTopic(kDeadTopic, 1);
  // A real cluster gets the changelog topic from the daemon; the mock cluster
  // has no CreateTopics.
  if (topics.ok()) topics = (*broker)->CreateTopic(std::string(kApplicationId) + "-changelog", args.partitions);
  if (!topics.ok()) {
    std::cerr << "rapport demo: " << topics.ToString() << '\n';
    return 2;
  }
  const std::string bootstrap = (*broker)->bootstrap_servers();
  std::printf(
      "Rapport demo\n"
      "  broker    librdkafka's mock cluster, in-process: 3 brokers at %s\n"
      "  topics    %s (%d partitions) -> rapport -> %s, rejected events -> %s\n"
      "  store     %llu simulated customers, %lld days of traffic, 0.1%% malformed\n"
      "  campaigns %zu from %s\n\n"
      "Actions as they fire:\n",
      bootstrap.c_str(), kEventsTopic, args.partitions, kActionsTopic, kDeadTopic,
      static_cast<unsigned long long>(args.customers), static_cast<long long>(args.days),
      loaded.rules->campaigns.size(), args.rules.c_str());
  std::fflush(stdout);

  connectors::RunConfig config;
  config.rules = args.rules;
  config.state_dir = (*dir)->path() + "/state";
  config.application_id = kApplicationId;
  config.clock = connectors::ClockMode::kEvent;
  config.commit_interval = std::chrono::milliseconds(200);
  config.coupon_secret = "rapport-demo-secret";
  connectors::KafkaProperties kafka{{"bootstrap.servers", bootstrap}};
  config.kafka_source = connectors::KafkaSourceConfig{kEventsTopic, kafka};
  connectors::SinkConfig sink;
  sink.kind = connectors::SinkConfig::Kind::kKafka;
  sink.kafka.properties = kafka;
  sink.kafka.topic = kActionsTopic;
  config.sinks.push_back(sink);
  config.dead_letter.kind = connectors::DeadLetterConfig::Kind::kKafka;
  config.dead_letter.topic_or_path = kDeadTopic;
  config.dead_letter.properties = kafka;

  DemoPrinter printer(args.show);
  connectors::DaemonOptions options;
  options.observer = &printer;
  options.log = [](const std::string& line) {
    // The demo keeps its output readable: only problems are shown.
    if (line.find("kafka") != std::string::npos || line.find("fail") != std::string::npos) {
      std::fprintf(stderr, "  [engine] %s\n", line.c_str());
    }
  };
  auto daemon = connectors::Daemon::Open(config, loaded.rules, options);
  if (!daemon.ok()) {
    std::cerr << "rapport demo: " << daemon.status().ToString() << '\n';
    return 2;
  }
  connectors::StoreSimulatorOptions sim;
  sim.customers = args.customers;
  sim.days = args.days;
  sim.seed = args.seed;
  sim.bad_rate = 0.001;

  const auto start = std::chrono::steady_clock::now();
  ProducerResult produced;
  std::thread producer([&] {
    produced = Produce(bootstrap, sim, args.partitions);
    if (produced.status.ok()) {
      (*daemon)->StopWhenConsumed(produced.end_offsets);
    } else {
      (*daemon)->RequestStop();
    }
  });
  Status run = (*daemon)->Run();
  producer.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!produced.status.ok()) {
    std::cerr << "rapport demo: " << produced.status.ToString() << '\n';
    return 2;
  }
  if (!run.ok()) {
    std::cerr << "rapport demo: " << run.ToString() << '\n';
    return 2;
  }
  connectors::DaemonStats stats = (*daemon)->stats();
  std::printf("\nSummary (%.1f s, including the consumer group's first join)\n", seconds);
  std::printf("  events produced      %10llu  (+%llu malformed lines)\n",
              static_cast<unsigned long long>(produced.events), static_cast<unsigned long long>(produced.malformed));
  std::printf("  events consumed      %10llu  (%llu rejected -> %s)\n", static_cast<unsigned long long>(stats.events),
              static_cast<unsigned long long>(stats.rejected), kDeadTopic);
  std::printf("  throughput           %10.0f  events/s through Kafka, first event to last commit\n",
              stats.busy_seconds > 0 ? stats.events / stats.busy_seconds : 0.0);
  std::printf("  commits              %10llu  (state, offsets and actions in one RocksDB batch each)\n",
              static_cast<unsigned long long>(stats.commits));
  std::printf("  actions delivered    %10llu  -> %s\n\n", static_cast<unsigned long long>(stats.delivered),
              kActionsTopic);
  std::printf("  %-28s %8s %9s\n", "campaign", "actions", "held out");
  for (const auto& c : loaded.rules->campaigns) {
    auto it = stats.campaigns.find(c.id);
    uint64_t fired = it == stats.campaigns.end() ? 0 : it->second.fired;
    uint64_t held = it == stats.campaigns.end() ? 0 : it->second.held_out;
    std::printf("  %-28s %8llu %9llu\n", c.id.c_str(), static_cast<unsigned long long>(fired),
                static_cast<unsigned long long>(held));
  }
  std::printf(
      "\nNext: `rapport run --config deploy/rapport.yaml` against your cluster (docs/running.md),\n"
      "or dry-run campaigns over past events with `rapport replay` (README.md).\n");
  return 0;
}

}  // namespace

void AddDemoCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* cmd =
      app.add_subcommand("demo", "Run a simulated store through an embedded Kafka broker and the standard campaigns");
  cmd->add_option("--rules", args->rules, "Rule files or directory (default: rules/packs/relationship)");
  cmd->add_option("--customers", args->customers, "Simulated customers (default 5000)");
  cmd->add_option("--days", args->days, "Simulated days of traffic (default 90)");
  cmd->add_option("--seed", args->seed, "Random seed (default 7)");
  cmd->add_option("--partitions", args->partitions, "Partitions of the events topic (default 4)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--show", args->show, "How many actions to print in full as they fire (default 15)");
  cmd->callback([args, exit_code] { *exit_code = RunDemo(*args); });
}

}  // namespace rapport::cli

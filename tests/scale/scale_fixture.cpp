#include "scale_fixture.h"

#include <librdkafka/rdkafkacpp.h>
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "rapport/connectors/store_simulator.h"
#include "rapport/engine/state_store.h"

namespace rapport::testing {
namespace {

constexpr char kSecret[] = "scale-test-secret";
constexpr char kRules[] = "rules/packs/relationship";

// Between two looks at a child's log or the group's offsets: polling what
// the children do, not waiting for time to pass.
void Poll() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

std::unique_ptr<RdKafka::KafkaConsumer> Consumer(const std::string& bootstrap, const std::string& group) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", group, err);
  conf->set("enable.auto.commit", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(consumer);
  return consumer;
}

}  // namespace

std::string RestoredLine(int32_t partition) { return "restored events[" + std::to_string(partition) + "]"; }

std::vector<std::string> StoreLines(uint64_t customers, int64_t days, uint64_t seed) {
  connectors::StoreSimulatorOptions options;
  options.customers = customers;
  options.days = days;
  options.seed = seed;
  auto sim = connectors::StoreSimulator::Create(options);
  REQUIRE(sim.ok());
  std::vector<std::string> lines;
  connectors::SimulatedLine line;
  while ((*sim)->Next(&line)) lines.emplace_back(line.text);
  return lines;
}

ScaleCluster::ScaleCluster(int brokers, int partitions_) : partitions(partitions_) {
  auto b = connectors::EmbeddedBroker::Start(brokers);
  REQUIRE(b.ok());
  broker = std::move(*b);
  bootstrap = broker->bootstrap_servers();
  REQUIRE(broker->CreateTopic("events", partitions).ok());
  REQUIRE(broker->CreateTopic("actions", partitions).ok());
  REQUIRE(broker->CreateTopic("events-dead", 1).ok());
}

void ScaleCluster::AddApplication(const std::string& application_id) {
  REQUIRE(broker->CreateTopic(application_id + "-changelog", partitions).ok());
}

std::string ScaleConfig(const TempDir& dir, const std::string& name, const std::string& bootstrap,
                        const std::string& application_id, const std::string& extra) {
  return KafkaRunConfig(dir, name, bootstrap, application_id, kSecret, extra);
}

Instance::Instance(const TempDir& dir, const std::string& name_, const std::string& bootstrap,
                   const std::string& application_id, const std::string& extra)
    : name(name_),
      config(ScaleConfig(dir, name_, bootstrap, application_id, extra)),
      log(dir.File(name_ + ".log")),
      state_dir(dir.File(name_ + "-state")),
      child(std::make_unique<Child>(config, log)) {}

std::string Instance::Log() const { return std::filesystem::exists(log) ? ReadFile(log) : std::string(); }

int Instance::Stop() {
  child->Kill(SIGTERM);
  return child->Wait();
}

void Instance::Restart() {
  child.reset();
  log = std::filesystem::path(log).replace_filename(name + "-" + std::to_string(++runs) + ".log").string();
  child = std::make_unique<Child>(config, log);
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<std::string> LinesWith(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

std::string Before(const std::string& text, const std::string& marker) { return text.substr(0, text.find(marker)); }

bool AwaitLog(const std::string& path, const std::function<bool(const std::string&)>& done,
              std::chrono::seconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (std::filesystem::exists(path) && done(ReadFile(path))) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    Poll();
  }
}

bool AwaitLog(const std::string& path, const std::string& needle, int occurrences, std::chrono::seconds deadline) {
  return AwaitLog(
      path, [&](const std::string& text) { return Count(text, needle) >= occurrences; }, deadline);
}

std::set<int32_t> OwnedPartitions(const std::string& log) {
  std::set<int32_t> owned;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    for (const char* verb : {"assigned events[", "revoked events[", "lost events["}) {
      const size_t at = line.find(verb);
      if (at == std::string::npos) continue;
      const size_t from = at + std::string(verb).size(), to = line.find(']', from);
      REQUIRE(to != std::string::npos);
      std::istringstream list(line.substr(from, to - from));
      for (std::string p; std::getline(list, p, ',');) {
        if (verb[0] == 'a') {
          owned.insert(std::stoi(p));
        } else {
          owned.erase(std::stoi(p));
        }
      }
    }
  }
  return owned;
}

std::set<int32_t> MissingRestores(const std::string& log, const std::set<int32_t>& wanted) {
  std::set<int32_t> missing;
  for (int32_t p : wanted) {
    if (log.find(RestoredLine(p)) == std::string::npos) missing.insert(p);
  }
  return missing;
}

std::set<int32_t> AllPartitions(int partitions) {
  std::set<int32_t> all;
  for (int32_t p = 0; p < partitions; ++p) all.insert(p);
  return all;
}

std::vector<int64_t> CommittedOffsets(const std::string& bootstrap, const std::string& group, const std::string& topic,
                                      int partitions) {
  auto consumer = Consumer(bootstrap, group);
  std::vector<RdKafka::TopicPartition*> tps;
  for (int p = 0; p < partitions; ++p) tps.push_back(RdKafka::TopicPartition::create(topic, p));
  std::vector<int64_t> offsets(partitions, -1);
  if (consumer->committed(tps, 5000) == RdKafka::ERR_NO_ERROR) {
    for (auto* tp : tps) offsets[tp->partition()] = tp->offset() >= 0 ? tp->offset() : -1;
  }
  RdKafka::TopicPartition::destroy(tps);
  consumer->close();
  return offsets;
}

std::vector<int64_t> StatePositions(const std::string& state_dir, int partitions) {
  std::vector<int64_t> positions(partitions, -1);
  if (!std::filesystem::exists(std::filesystem::path(state_dir) / "CURRENT")) return positions;
  StateStoreOptions options;
  options.read_only = true;
  auto store = StateStore::Open(state_dir, options);
  if (!store.ok()) return positions;  // caught mid-creation; the next look sees it
  for (int p = 0; p < partitions; ++p) {
    auto position = (*store)->GetPosition(static_cast<uint32_t>(p));
    // A Kafka position is the next offset in decimal; anything else counts as none.
    if (!position.ok() || position->empty()) continue;
    char* end = nullptr;
    const long long offset = std::strtoll(position->c_str(), &end, 10);
    if (end == position->c_str() + position->size()) positions[p] = offset;
  }
  return positions;
}

std::vector<int64_t> ProcessedOffsets(const std::string& bootstrap, const std::string& group,
                                      const std::vector<std::string>& state_dirs, int partitions) {
  std::vector<int64_t> offsets =
      group.empty() ? std::vector<int64_t>(partitions, -1) : CommittedOffsets(bootstrap, group, "events", partitions);
  for (const std::string& dir : state_dirs) {
    const std::vector<int64_t> positions = StatePositions(dir, partitions);
    for (int p = 0; p < partitions; ++p) offsets[p] = std::max(offsets[p], positions[p]);
  }
  return offsets;
}

bool AwaitProcessed(const std::string& bootstrap, const std::string& group, const std::vector<std::string>& state_dirs,
                    int partitions, const std::function<bool(const std::vector<int64_t>&)>& done,
                    std::vector<int64_t>* last, std::chrono::seconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    std::vector<int64_t> offsets = ProcessedOffsets(bootstrap, group, state_dirs, partitions);
    const bool finished = done(offsets);
    if (last != nullptr) *last = std::move(offsets);
    if (finished) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    Poll();
  }
}

std::vector<int64_t> EndOffsets(const std::vector<std::string>& lines, int partitions) {
  std::vector<int64_t> ends(partitions, 0);
  for (const std::string& line : lines) {
    const std::string customer = CustomerOf(line);
    ++ends[customer.empty() ? 0 : PartitionOf(customer, partitions)];
  }
  return ends;
}

bool AwaitProcessedEnds(const std::string& bootstrap, const std::string& group,
                        const std::vector<std::string>& state_dirs, const std::vector<int64_t>& ends,
                        std::vector<int64_t>* last, std::chrono::seconds deadline) {
  return AwaitProcessed(
      bootstrap, group, state_dirs, static_cast<int>(ends.size()),
      [&](const std::vector<int64_t>& offsets) {
        for (size_t p = 0; p < ends.size(); ++p) {
          if (offsets[p] < ends[p]) return false;
        }
        return true;
      },
      last, deadline);
}

std::string Join(const std::vector<int64_t>& offsets) {
  std::string s;
  for (int64_t o : offsets) s += (s.empty() ? "" : " ") + std::to_string(o);
  return s;
}

std::vector<std::pair<int64_t, int64_t>> Watermarks(const std::string& bootstrap, const std::string& topic,
                                                    int partitions) {
  auto consumer = Consumer(bootstrap, "scale-test-watermarks");
  std::vector<std::pair<int64_t, int64_t>> marks(partitions);
  for (int p = 0; p < partitions; ++p) {
    REQUIRE(consumer->query_watermark_offsets(topic, p, &marks[p].first, &marks[p].second, 5000) ==
            RdKafka::ERR_NO_ERROR);
  }
  consumer->close();
  return marks;
}

std::vector<Message> ReadWholeTopic(const std::string& bootstrap, const std::string& topic, int partitions) {
  const auto marks = Watermarks(bootstrap, topic, partitions);
  for (int p = 0; p < partitions; ++p) {
    INFO(topic << "[" << p << "] starts at " << marks[p].first << ": the mock dropped old messages");
    REQUIRE(marks[p].first == 0);
  }
  std::vector<Message> messages = ReadTopic(bootstrap, topic, partitions, [&](const std::vector<Message>& got) {
    std::vector<int64_t> next(partitions, 0);
    for (const Message& m : got) next[m.partition] = std::max(next[m.partition], m.offset + 1);
    for (int p = 0; p < partitions; ++p) {
      if (next[p] < marks[p].second) return false;
    }
    return true;
  });
  size_t expected = 0;
  for (const auto& [low, high] : marks) expected += static_cast<size_t>(high - low);
  // Idempotent producers' messages only; nothing transactional, so offsets are dense.
  REQUIRE(messages.size() == expected);
  return messages;
}

std::vector<Message> AwaitActions(const std::string& bootstrap, int partitions, const std::set<std::string>& expected,
                                  std::chrono::seconds deadline) {
  return ReadTopic(
      bootstrap, "actions", partitions,
      [&](const std::vector<Message>& got) {
        if (got.size() < expected.size()) return false;
        std::set<std::string> ids = ActionIds(got);
        return std::includes(ids.begin(), ids.end(), expected.begin(), expected.end());
      },
      deadline);
}

ActionTally TallyActions(const std::set<std::string>& expected, const std::vector<Message>& messages) {
  ActionTally t;
  const std::set<std::string> got = ActionIds(messages);
  t.expected = expected.size();
  t.messages = messages.size();
  t.distinct = got.size();
  t.duplicates = t.messages - t.distinct;
  std::set_difference(expected.begin(), expected.end(), got.begin(), got.end(), std::back_inserter(t.lost));
  std::set_difference(got.begin(), got.end(), expected.begin(), expected.end(), std::back_inserter(t.extra));
  return t;
}

std::string ActionTally::Summary() const {
  std::string s = std::to_string(expected) + " expected, " + std::to_string(messages) + " messages, " +
                  std::to_string(distinct) + " distinct, " + std::to_string(lost.size()) + " lost, " +
                  std::to_string(extra.size()) + " extra, " + std::to_string(duplicates) + " duplicates";
  if (!lost.empty()) s += "; first lost " + lost.front();
  if (!extra.empty()) s += "; first extra " + extra.front();
  return s;
}

std::string ProfileDifference(const std::map<std::string, std::string>& expected,
                              const std::map<std::string, std::string>& got) {
  size_t missing = 0, extra = 0, different = 0;
  std::string examples;
  int shown = 0;
  auto example = [&](const std::string& text) {
    if (shown++ < 3) examples += "\n  " + text;
  };
  for (const auto& [customer, text] : expected) {
    auto it = got.find(customer);
    if (it == got.end()) {
      ++missing;
      example("missing " + customer);
    } else if (it->second != text) {
      ++different;
      example(customer + ": expected " + text + "\n    got      " + it->second);
    }
  }
  for (const auto& [customer, text] : got) {
    if (!expected.count(customer)) {
      ++extra;
      example("extra " + customer);
    }
  }
  if (missing + extra + different == 0) return "";
  return "of " + std::to_string(expected.size()) + " profiles: " + std::to_string(missing) + " missing, " +
         std::to_string(extra) + " extra, " + std::to_string(different) + " different" + examples;
}

std::map<std::string, std::string> ProfilesOf(const std::string& state_dir, const std::set<int32_t>& partitions,
                                              int partition_count) {
  std::map<std::string, std::string> out;
  for (auto& [customer, text] : DumpProfiles(state_dir, partition_count)) {
    if (partitions.count(PartitionOf(customer, partition_count))) out.emplace(customer, std::move(text));
  }
  return out;
}

Reference ReferenceRun(const std::vector<std::string>& lines, int partitions, const TempDir& dir) {
  const std::string work = dir.File("reference");
  std::filesystem::create_directories(work);
  Reference r;
  r.action_ids = ActionIds(ReplayPerPartition(SourcePath(kRules), lines, partitions, work, kSecret, &r.profiles));
  return r;
}

}  // namespace rapport::testing

// Scaling `rapport run` out and in (issue 6): several instances of one
// application share the partitions of the events topic; every state change
// also goes to the changelog topic `<application_id>-changelog`, so a
// partition that moves (a crash, a new instance, one that leaves) continues
// on its new owner from where the old one was, and its pending actions are
// delivered by whoever owns it.
//
// Each test runs the real binary as child processes against the mock cluster
// and compares what is left with the reference: each partition's events
// replayed on its own (scale_fixture.h). A fresh instance with an empty state
// directory, restoring every partition from the changelog, must end with the
// reference's profiles; the actions topic must hold exactly the reference's
// action_ids (an id may come twice, none may be missing or extra).
#include <signal.h>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "rapport/connectors/run_config.h"
#include "scale_fixture.h"

namespace rapport::testing {
namespace {

constexpr int kPartitions = 6;
// What scale_fixture.cpp writes into every config.
constexpr int kSessionTimeoutMs = 6000;

std::vector<std::string> Slice(const std::vector<std::string>& lines, size_t from, size_t to) {
  return std::vector<std::string>(lines.begin() + from, lines.begin() + to);
}

std::vector<std::string> StateDirs(const std::vector<std::unique_ptr<Instance>>& instances) {
  std::vector<std::string> dirs;
  for (const auto& i : instances) dirs.push_back(i->state_dir);
  return dirs;
}

// A log without librdkafka's warnings about the consumer properties that the
// producers are given too: noise in a failure message.
std::string Quiet(const std::string& log) {
  std::string text;
  for (const std::string& line : LinesWith(log, "")) {
    if (line.find("CONFWARN") == std::string::npos) text += line + "\n";
  }
  return text;
}

std::string Logs(const std::vector<const Instance*>& instances) {
  std::string text;
  for (const Instance* i : instances) text += "--- " + i->name + " ---\n" + Quiet(i->Log());
  return text;
}

// Starts an instance of `application_id` with an empty state directory,
// alone in its group: it must take every partition from the changelog,
// then find nothing new to process. Returns the profiles it holds.
std::map<std::string, std::string> RestoreFresh(const TempDir& dir, const ScaleCluster& cluster,
                                                const std::string& application_id, const std::string& name) {
  Instance fresh(dir, name, cluster.bootstrap, application_id);
  const bool restored = AwaitLog(
      fresh.log, [](const std::string& log) { return MissingRestores(log, AllPartitions(kPartitions)).empty(); },
      std::chrono::seconds(45));
  CHECK(fresh.Stop() == 0);
  const std::string log = fresh.Log();
  INFO("log of the fresh instance:\n" << Quiet(log));
  CHECK(restored);
  CHECK(MissingRestores(log, AllPartitions(kPartitions)).empty());
  for (int32_t p = 0; p < kPartitions; ++p) {
    for (const std::string& line : LinesWith(log, RestoredLine(p))) {
      CHECK(line.find("records/s") != std::string::npos);
    }
  }
  // The changelog brought it to the group's position: nothing left to read.
  CHECK(Count(log, "stopped: 0 events") == 1);
  return DumpProfiles(fresh.state_dir, kPartitions);
}

// The changelog must have kept everything: the mock keeps about 5 MiB per
// partition and does not compact, so a stream too large would fail here
// rather than as a wrong profile.
void CheckChangelogComplete(const ScaleCluster& cluster, const std::string& application_id) {
  int64_t records = 0;
  auto marks = Watermarks(cluster.bootstrap, application_id + "-changelog", kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    INFO("changelog partition " << p << " starts at " << marks[p].first
                                << ": the mock dropped records; make the stream smaller");
    CHECK(marks[p].first == 0);
    records += marks[p].second;
  }
  WARN(application_id << "-changelog: " << records << " records");
}

}  // namespace

TEST_CASE("three instances, one killed by SIGKILL mid-stream", "[scale][kafka]") {
  TempDir dir;
  ScaleCluster cluster(3, kPartitions);
  const std::string app = "rapport-three";
  cluster.AddApplication(app);
  const std::vector<std::string> lines = StoreLines(300, 60, 61);
  const Reference reference = ReferenceRun(lines, kPartitions, dir);
  REQUIRE(reference.action_ids.size() > 50);
  const size_t half = lines.size() / 2;

  std::vector<std::unique_ptr<Instance>> instances;
  for (const char* name : {"a", "b", "c"}) {
    instances.push_back(std::make_unique<Instance>(dir, name, cluster.bootstrap, app));
  }
  Instance& victim = *instances[1];
  for (const auto& i : instances) {
    const bool assigned = AwaitLog(i->log, "assigned events[");
    INFO(i->name << ":\n" << Quiet(i->Log()));
    REQUIRE(assigned);
  }
  ProduceLines(cluster.bootstrap, "events", Slice(lines, 0, half), kPartitions);
  // Kill it once it has committed on each of its partitions, before the end of the stream.
  const std::set<int32_t> victim_partitions = OwnedPartitions(victim.Log());
  REQUIRE(!victim_partitions.empty());
  REQUIRE(AwaitProcessed(cluster.bootstrap, "", {victim.state_dir}, kPartitions, [&](const std::vector<int64_t>& at) {
    for (int32_t p : victim_partitions) {
      if (at[p] <= 0) return false;
    }
    return true;
  }));
  const std::set<int32_t> owned_at_kill = OwnedPartitions(victim.Log());
  victim.child->Kill(SIGKILL);
  REQUIRE(victim.child->Wait() == 128 + SIGKILL);
  const std::vector<int64_t> victim_at_kill = StatePositions(victim.state_dir, kPartitions);
  std::map<std::string, size_t> log_at_kill;
  for (const auto& i : instances) log_at_kill[i->name] = i->Log().size();

  // Failover: from the kill until the survivors have restored every
  // partition the killed instance owned (the group notices the death after
  // session.timeout.ms).
  const auto killed_at = std::chrono::steady_clock::now();
  const auto taken_over_all = [&] {
    for (int32_t p : owned_at_kill) {
      bool found = false;
      for (const Instance* survivor : {instances[0].get(), instances[2].get()}) {
        found |= survivor->Log().find(RestoredLine(p), log_at_kill[survivor->name]) != std::string::npos;
      }
      if (!found) return false;
    }
    return true;
  };
  const auto failover_deadline = killed_at + std::chrono::seconds(60);
  while (!taken_over_all() && std::chrono::steady_clock::now() < failover_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the logs, not waiting for an effect
  }
  const double failover_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  REQUIRE(taken_over_all());

  ProduceLines(cluster.bootstrap, "events", Slice(lines, half, lines.size()), kPartitions);
  {
    std::vector<int64_t> processed;
    const std::vector<int64_t> ends = EndOffsets(lines, kPartitions);
    const bool all = AwaitProcessedEnds(cluster.bootstrap, app, StateDirs(instances), ends, &processed);
    INFO(Logs({instances[0].get(), instances[2].get()}) << "processed " << Join(processed) << " of " << Join(ends));
    REQUIRE(all);
  }
  AwaitActions(cluster.bootstrap, kPartitions, reference.action_ids);
  CHECK(instances[0]->Stop() == 0);
  CHECK(instances[2]->Stop() == 0);
  INFO(Logs({instances[0].get(), instances[1].get(), instances[2].get()}));
  // Between them the survivors own every partition, the killed one's taken
  // over from the changelog, and hold the reference's profiles.
  std::set<int32_t> taken_over;
  std::map<std::string, std::string> survivors_profiles;
  std::set<int32_t> survivors_partitions;
  for (const Instance* survivor : {instances[0].get(), instances[2].get()}) {
    const std::string after_kill = survivor->Log().substr(log_at_kill[survivor->name]);
    for (int32_t p : owned_at_kill) {
      if (after_kill.find(RestoredLine(p)) != std::string::npos) taken_over.insert(p);
    }
    const std::set<int32_t> owned = OwnedPartitions(Before(survivor->Log(), "SIGTERM:"));
    survivors_partitions.insert(owned.begin(), owned.end());
    survivors_profiles.merge(ProfilesOf(survivor->state_dir, owned, kPartitions));
  }
  CHECK(survivors_partitions == AllPartitions(kPartitions));
  CHECK(ProfileDifference(reference.profiles, survivors_profiles) == "");

  const std::map<std::string, std::string> profiles = RestoreFresh(dir, cluster, app, "fresh");
  CHECK(ProfileDifference(reference.profiles, profiles) == "");

  const ActionTally tally =
      TallyActions(reference.action_ids, ReadWholeTopic(cluster.bootstrap, "actions", kPartitions));
  std::string killed_partitions;
  for (int32_t p : owned_at_kill) killed_partitions += std::to_string(p) + " ";
  WARN("three instances, one killed: " << lines.size() << " events; killed instance owned partitions "
                                       << killed_partitions << "(" << taken_over.size()
                                       << " restored by the survivors); its positions at the kill "
                                       << Join(victim_at_kill) << "; failover (kill to restored) "
                                       << failover_s << " s with session.timeout.ms " << kSessionTimeoutMs
                                       << "; actions: " << tally.Summary());
  CHECK(tally.lost.empty());
  CHECK(tally.extra.empty());
  CheckChangelogComplete(cluster, app);
}

TEST_CASE("scaling from one instance to three and back to one mid-stream", "[scale][kafka]") {
  TempDir dir;
  ScaleCluster cluster(3, kPartitions);
  const std::string app = "rapport-elastic";
  cluster.AddApplication(app);
  const std::vector<std::string> lines = StoreLines(300, 60, 62);
  const Reference reference = ReferenceRun(lines, kPartitions, dir);
  REQUIRE(reference.action_ids.size() > 50);
  const size_t third = lines.size() / 3;

  Instance a(dir, "a", cluster.bootstrap, app);
  REQUIRE(AwaitLog(a.log, "assigned events["));
  ProduceLines(cluster.bootstrap, "events", Slice(lines, 0, third), kPartitions);
  REQUIRE(AwaitProcessedEnds(cluster.bootstrap, app, {a.state_dir}, EndOffsets(Slice(lines, 0, third), kPartitions)));

  // Out to three: cooperative rebalancing moves some of a's partitions.
  auto b = std::make_unique<Instance>(dir, "b", cluster.bootstrap, app);
  auto c = std::make_unique<Instance>(dir, "c", cluster.bootstrap, app);
  {
    // Revoked, or lost when the group refused a's commit made during the
    // rebalance (librdkafka then drops the whole assignment): either way
    // the partitions move and a no longer writes them.
    const bool moved =
        AwaitLog(b->log, "assigned events[") && AwaitLog(c->log, "assigned events[") &&
        AwaitLog(a.log, [](const std::string& text) {
          return text.find("revoked events[") != std::string::npos || text.find("lost events[") != std::string::npos;
        });
    INFO(Logs({&a, b.get(), c.get()}));
    REQUIRE(moved);
  }
  ProduceLines(cluster.bootstrap, "events", Slice(lines, third, 2 * third), kPartitions);
  {
    std::vector<int64_t> processed;
    const std::vector<int64_t> ends = EndOffsets(Slice(lines, 0, 2 * third), kPartitions);
    const bool two_thirds =
        AwaitProcessedEnds(cluster.bootstrap, app, {a.state_dir, b->state_dir, c->state_dir}, ends, &processed);
    INFO(Logs({&a, b.get(), c.get()}) << "processed " << Join(processed) << " of " << Join(ends));
    REQUIRE(two_thirds);
  }

  // Back to one: b and c leave gracefully and their partitions return to a,
  // whose local state of them stopped a third of the stream ago.
  const size_t a_log_at_scale_in = a.Log().size();
  CHECK(b->Stop() == 0);
  CHECK(c->Stop() == 0);
  std::set<int32_t> moved_back;
  for (const Instance* i : {b.get(), c.get()}) {
    for (int32_t p : OwnedPartitions(Before(i->Log(), "SIGTERM:"))) moved_back.insert(p);
  }
  REQUIRE(!moved_back.empty());
  ProduceLines(cluster.bootstrap, "events", Slice(lines, 2 * third, lines.size()), kPartitions);
  {
    // Only a is left: its state must reach the end of every partition.
    std::vector<int64_t> processed;
    const std::vector<int64_t> ends = EndOffsets(lines, kPartitions);
    const bool all = AwaitProcessedEnds(cluster.bootstrap, "", {a.state_dir}, ends, &processed);
    INFO(Logs({&a, b.get(), c.get()}) << "a has processed " << Join(processed) << " of " << Join(ends)
                                      << "; the group has committed "
                                      << Join(CommittedOffsets(cluster.bootstrap, app, "events", kPartitions)));
    REQUIRE(all);
  }
  AwaitActions(cluster.bootstrap, kPartitions, reference.action_ids);
  CHECK(a.Stop() == 0);
  INFO(Logs({&a, b.get(), c.get()}));

  const std::string a_log = a.Log();
  CHECK(OwnedPartitions(Before(a_log, "SIGTERM:")) == AllPartitions(kPartitions));
  CHECK(MissingRestores(a_log.substr(a_log_at_scale_in), moved_back).empty());
  CHECK(ProfileDifference(reference.profiles, DumpProfiles(a.state_dir, kPartitions)) == "");
  CHECK(ProfileDifference(reference.profiles, RestoreFresh(dir, cluster, app, "fresh")) == "");

  const ActionTally tally =
      TallyActions(reference.action_ids, ReadWholeTopic(cluster.bootstrap, "actions", kPartitions));
  std::string moved;
  for (int32_t p : moved_back) moved += std::to_string(p) + " ";
  WARN("one to three and back: " << lines.size() << " events; partitions back to the first instance " << moved
                                 << "; actions: " << tally.Summary());
  CHECK(tally.lost.empty());
  CHECK(tally.extra.empty());
  CheckChangelogComplete(cluster, app);
}

TEST_CASE("a restarted instance whose state is current does not restore", "[scale][kafka]") {
  TempDir dir;
  ScaleCluster cluster(1, kPartitions);
  const std::string app = "rapport-current";
  cluster.AddApplication(app);
  const std::vector<std::string> lines = StoreLines(100, 30, 63);

  Instance only(dir, "only", cluster.bootstrap, app);
  REQUIRE(AwaitLog(only.log, "assigned events["));
  ProduceLines(cluster.bootstrap, "events", lines, kPartitions);
  REQUIRE(AwaitProcessedEnds(cluster.bootstrap, app, {only.state_dir}, EndOffsets(lines, kPartitions)));
  REQUIRE(only.Stop() == 0);

  only.Restart();
  // One "is current" per partition, then it has decided for all of them.
  const bool current = AwaitLog(only.log, kIsCurrent, kPartitions, std::chrono::seconds(30));
  CHECK(only.Stop() == 0);
  const std::string log = only.Log();
  INFO("log of the restart:\n" << Quiet(log));
  CHECK(current);
  CHECK(Count(log, "restored events[") == 0);
  CHECK(Count(log, "stopped: 0 events") == 1);
}

TEST_CASE("with standby_replicas a failover after SIGKILL restores only the tail of the changelog",
          "[scale][kafka][standby]") {
  TempDir dir;
  ScaleCluster cluster(3, kPartitions);
  const std::string app = "rapport-standby";
  cluster.AddApplication(app);
  const auto refused = connectors::LoadRunConfig(
      ScaleConfig(dir, "refused", cluster.bootstrap, app, "standby_replicas: many\n"), connectors::ProcessEnvironment);
  REQUIRE(!refused.ok());
  CHECK(refused.status().message().find("standby_replicas") != std::string::npos);

  const std::vector<std::string> lines = StoreLines(300, 60, 63);
  const Reference reference = ReferenceRun(lines, kPartitions, dir);
  const size_t half = lines.size() / 2;
  Instance a(dir, "a", cluster.bootstrap, app, "standby_replicas: 1\n");
  Instance b(dir, "b", cluster.bootstrap, app, "standby_replicas: 1\n");
  REQUIRE(AwaitLog(a.log, "assigned events["));
  REQUIRE(AwaitLog(b.log, "assigned events["));
  REQUIRE(AwaitLog(a.log, "standby: following"));
  ProduceLines(cluster.bootstrap, "events", Slice(lines, 0, half), kPartitions);
  const std::vector<int64_t> half_ends = EndOffsets(Slice(lines, 0, half), kPartitions);
  REQUIRE(AwaitProcessedEnds(cluster.bootstrap, app, {a.state_dir, b.state_dir}, half_ends));

  // a follows b's partitions: once its copy has b's positions, kill b.
  const std::set<int32_t> b_partitions = OwnedPartitions(b.Log());
  REQUIRE_FALSE(b_partitions.empty());
  const bool warm = AwaitProcessed(cluster.bootstrap, "", {a.state_dir}, kPartitions, [&](const std::vector<int64_t>& at) {
    for (int32_t p : b_partitions) {
      if (at[p] < half_ends[p]) return false;
    }
    return true;
  });
  INFO(Quiet(a.Log()));
  REQUIRE(warm);
  const size_t a_log_at_kill = a.Log().size();
  b.child->Kill(SIGKILL);
  REQUIRE(b.child->Wait() == 128 + SIGKILL);

  // a takes b's partitions over: its copy is current, or a restore reads
  // only what it had not applied yet, never the log from its start.
  const auto current_line = [](int32_t p) { return "state of events[" + std::to_string(p) + "] is current"; };
  const bool taken_over = AwaitLog(a.log, [&](const std::string& text) {
    const std::string after = text.substr(std::min(a_log_at_kill, text.size()));
    for (int32_t p : b_partitions) {
      if (after.find(RestoredLine(p)) == std::string::npos && after.find(current_line(p)) == std::string::npos) {
        return false;
      }
    }
    return true;
  });
  const std::string after_kill = a.Log().substr(a_log_at_kill);
  INFO(Quiet(after_kill));
  REQUIRE(taken_over);
  size_t current = 0;
  for (int32_t p : b_partitions) {
    current += after_kill.find(current_line(p)) != std::string::npos;
    for (const std::string& line : LinesWith(after_kill, RestoredLine(p))) {
      INFO(line);
      const size_t at = line.find("changelog offsets ");
      REQUIRE(at != std::string::npos);
      CHECK(std::stoll(line.substr(at + 18)) > 0);  // incremental: the standby copy was there
    }
  }

  ProduceLines(cluster.bootstrap, "events", Slice(lines, half, lines.size()), kPartitions);
  REQUIRE(AwaitProcessedEnds(cluster.bootstrap, app, {a.state_dir}, EndOffsets(lines, kPartitions)));
  AwaitActions(cluster.bootstrap, kPartitions, reference.action_ids);
  CHECK(a.Stop() == 0);
  INFO(Quiet(a.Log()));
  CHECK(ProfileDifference(reference.profiles, ProfilesOf(a.state_dir, AllPartitions(kPartitions), kPartitions)) ==
        "");
  const ActionTally tally =
      TallyActions(reference.action_ids, ReadWholeTopic(cluster.bootstrap, "actions", kPartitions));
  WARN("standby failover: b owned " << b_partitions.size() << " partitions, " << current
                                     << " of them current on a without any restore; actions: " << tally.Summary());
  CHECK(tally.lost.empty());
  CHECK(tally.extra.empty());
}

}  // namespace rapport::testing

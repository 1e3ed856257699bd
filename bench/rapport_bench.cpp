// rapport_bench: the harness behind `make bench` (and `make bench-quick`).
//
// It generates (or reuses, from --data) store traffic with `rapport
// generate`, measures the released `rapport` binary and the Python and Node
// baselines in bench/peers/ on it, and prints one table, also written as
// Markdown to --out (bench/results.md). What each figure is, and how it was
// taken, is in the table's notes; bench/README.md says more.
//
// Every run is a real one: replays commit their state to RocksDB in a state
// directory, the Kafka figures use librdkafka's mock cluster with the daemon
// as `rapport run` runs it, the peers write their state to LevelDB. Speed is
// never asserted; what is checked is that the runs succeed and that each
// peer fires exactly Rapport's actions (campaign, customer_id, ts) on the
// data set they share, and a mismatch fails the harness (exit 1).
#include <simdjson.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_kafka.h"
#include "bench_process.h"
#include "rapport/engine/state_store.h"

namespace fs = std::filesystem;

namespace rapport::bench {
namespace {

struct Preset {
  std::string name;
  uint64_t customers;
  uint64_t days;
  int runs;  // replay figures are the best of this many runs
};

// Days per preset: chosen so that the whole `make bench` stays under about
// 30 minutes on a 2-core machine (bench/README.md has the timings).
const Preset kPresets[] = {
    {"100k", 100000, 90, 3},
    {"1M", 1000000, 60, 2},
    {"5M", 5000000, 20, 1},
};
constexpr uint64_t kSeed = 1;
// The peers and the fifty-campaign replay run on presets up to this size.
constexpr double kSmallPresetEvents = 2'000'000;

struct Args {
  std::vector<std::string> presets{"100k", "1M", "5M"};
  std::set<std::string> parts{"a", "a2", "b", "c", "d", "e"};
  std::string repo = ".";
  std::string rapport = "build-release/rapport";
  std::string data;  // default <repo>/bench/data
  std::string out;   // default <repo>/bench/results.md
  std::string python = "/usr/bin/python3";
  std::string node = "node";
  int peer_runs = 2;
  bool quick = false;  // one run of everything (make bench-quick)
};

struct Row {
  std::string figure, data, value, notes;
};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string Fixed(double v, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

std::string Rate(double events_per_s) { return Grouped(events_per_s) + " events/s"; }

void Note(const std::string& line) {
  std::fprintf(stderr, "bench: %s\n", line.c_str());
  std::fflush(stderr);
}

Status Fail(const std::string& what, const ProcessResult& r) {
  return Status::IoError(what + " exited with " + std::to_string(r.exit_code) + ":\n" + r.stderr_tail);
}

struct Dataset {
  const Preset* preset;
  std::string path;
  uint64_t events = 0;
};

// Generates the preset's events, or reuses them: files are keyed by the
// generator's arguments, written under a temporary name and renamed, so an
// interrupted run never leaves a file that looks complete.
Result<Dataset> EnsureDataset(const Args& args, const Preset& p) {
  Dataset d{&p, "", 0};
  const std::string stem = args.data + "/events-c" + std::to_string(p.customers) + "-d" + std::to_string(p.days) +
                           "-s" + std::to_string(kSeed);
  d.path = stem + ".jsonl";
  const std::string meta = stem + ".events";
  if (fs::exists(d.path) && fs::exists(meta)) {
    std::ifstream in(meta);
    if (in >> d.events && d.events > 0) {
      Note("reusing " + d.path + " (" + Grouped(static_cast<double>(d.events)) + " events)");
      return d;
    }
  }
  Note("generating " + p.name + ": " + Grouped(static_cast<double>(p.customers)) + " customers, " +
       std::to_string(p.days) + " days -> " + d.path);
  ProcessSpec spec;
  spec.argv = {args.rapport,  "generate",
               "--customers", std::to_string(p.customers),
               "--days",      std::to_string(p.days),
               "--seed",      std::to_string(kSeed),
               "--out",       d.path + ".tmp"};
  spec.on_stderr_line = [&d](std::string_view line, double) {
    unsigned long long events = 0, customers = 0;
    if (std::sscanf(std::string(line).c_str(), "wrote %llu events for %llu customers", &events, &customers) == 2) {
      d.events = events;
    }
  };
  auto r = RunProcess(spec);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0 || d.events == 0) {
    fs::remove(d.path + ".tmp");
    return Fail("rapport generate", *r);
  }
  fs::rename(d.path + ".tmp", d.path);
  std::ofstream(meta) << d.events << '\n';
  return d;
}

// `rapport replay --help` names the option the lead adds for parallel
// partitions, if this build has it.
std::vector<std::string> ParallelReplayFlags(const Args& args) {
  std::string help_path = args.data + "/scratch/replay-help.txt";
  ProcessSpec spec;
  spec.argv = {args.rapport, "replay", "--help"};
  spec.stdout_path = help_path;
  auto r = RunProcess(spec);
  std::ifstream in(help_path);
  std::string help((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cores = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  if (help.find("--threads") != std::string::npos) return {"--threads", cores};
  if (help.find("--partitions") != std::string::npos) return {"--partitions", cores};
  return {};
}

struct ReplayResult {
  double events_per_s = 0;  // best run
  double cpu_seconds = 0;   // of the best run
  int64_t max_rss = 0;      // of the best run
  std::string actions_path;
  std::string state_dir;
};

Result<ReplayResult> Replay(const Args& args, const Dataset& d, const std::string& rules, bool pinned,
                            const std::vector<std::string>& extra, const std::string& tag, int runs) {
  const std::string scratch = args.data + "/scratch";
  ReplayResult best;
  best.actions_path = scratch + "/actions-" + tag + ".jsonl";
  best.state_dir = scratch + "/state-" + tag;
  for (int run = 0; run < runs; ++run) {
    fs::remove_all(best.state_dir);
    ProcessSpec spec;
    if (pinned) spec.argv = {"taskset", "-c", "0"};
    for (const std::string& a :
         {args.rapport, std::string("replay"), std::string("--rules"), rules, std::string("--events"), d.path,
          std::string("--out"), best.actions_path, std::string("--state"), best.state_dir, std::string("--quiet")}) {
      spec.argv.push_back(a);
    }
    spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
    auto r = RunProcess(spec);
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) return Fail("rapport replay", *r);
    const double rate = static_cast<double>(d.events) / r->seconds;
    Note("  replay " + tag + " run " + std::to_string(run + 1) + ": " + Fixed(r->seconds, 1) + " s (cpu " +
         Fixed(r->cpu_seconds, 1) + " s), " + Rate(rate) + ", peak RSS " +
         HumanBytes(static_cast<double>(r->max_rss_bytes)));
    if (rate > best.events_per_s) {
      best.events_per_s = rate;
      best.cpu_seconds = r->cpu_seconds;
      best.max_rss = r->max_rss_bytes;
    }
  }
  return best;
}

// (campaign, customer_id, ts) of each action, sorted: a multiset.
Result<std::vector<std::string>> ActionKeys(const std::string& path) {
  simdjson::ondemand::parser parser;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read " + path);
  std::vector<std::string> keys;
  std::string line;
  uint64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    simdjson::padded_string padded(line);
    simdjson::ondemand::document doc;
    std::string_view campaign, customer, ts;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS || doc["campaign"].get_string().get(campaign) ||
        doc["customer_id"].get_string().get(customer) || doc["ts"].get_string().get(ts)) {
      return Status::InvalidArgument(path + ":" + std::to_string(number) +
                                     ": not an action with campaign, "
                                     "customer_id and ts");
    }
    keys.push_back(std::string(campaign) + " " + std::string(customer) + " " + std::string(ts));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Empty when equal; otherwise what differs, with a few examples each way.
Result<std::string> CompareActions(const std::string& rapport_path, const std::string& peer_path) {
  auto want = ActionKeys(rapport_path);
  if (!want.ok()) return want.status();
  auto got = ActionKeys(peer_path);
  if (!got.ok()) return got.status();
  if (*want == *got) return std::string();
  std::vector<std::string> missing, extra;
  std::set_difference(want->begin(), want->end(), got->begin(), got->end(), std::back_inserter(missing));
  std::set_difference(got->begin(), got->end(), want->begin(), want->end(), std::back_inserter(extra));
  std::string text = "Rapport fired " + std::to_string(want->size()) + " actions, the peer " +
                     std::to_string(got->size()) + "; " + std::to_string(missing.size()) + " missing, " +
                     std::to_string(extra.size()) + " extra";
  for (size_t i = 0; i < std::min<size_t>(3, missing.size()); ++i) text += "\n    missing: " + missing[i];
  for (size_t i = 0; i < std::min<size_t>(3, extra.size()); ++i) text += "\n    extra:   " + extra[i];
  return text;
}

struct PeerResult {
  double events_per_s = 0;
  double cpu_seconds = 0;
  int64_t max_rss = 0;
  std::string mismatch;  // empty when the actions equal Rapport's
  uint64_t actions = 0;
};

Result<PeerResult> RunPeer(const Args& args, const std::string& name, const Dataset& d,
                           const std::string& rapport_actions) {
  const std::string scratch = args.data + "/scratch";
  const std::string out = scratch + "/actions-" + name + "-" + d.preset->name + ".jsonl";
  const std::string state = scratch + "/state-" + name;
  PeerResult best;
  for (int run = 0; run < args.peer_runs; ++run) {
    ProcessSpec spec;
    spec.argv = {"taskset", "-c", "0"};
    if (name == "python") {
      spec.argv.push_back(args.python);
      spec.argv.push_back(args.repo + "/bench/peers/python/peer.py");
    } else {
      spec.argv.push_back(args.node);
      spec.argv.push_back(args.repo + "/bench/peers/node/peer.js");
    }
    for (const std::string& a : {std::string("--events"), d.path, std::string("--state"), state, std::string("--fresh"),
                                 std::string("--out"), out}) {
      spec.argv.push_back(a);
    }
    auto r = RunProcess(spec);
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) return Fail(name + " peer", *r);
    const double rate = static_cast<double>(d.events) / r->seconds;
    Note("  " + name + " peer run " + std::to_string(run + 1) + ": " + Fixed(r->seconds, 1) + " s (cpu " +
         Fixed(r->cpu_seconds, 1) + " s), " + Rate(rate));
    if (rate > best.events_per_s) {
      best.events_per_s = rate;
      best.cpu_seconds = r->cpu_seconds;
      best.max_rss = r->max_rss_bytes;
    }
  }
  auto diff = CompareActions(rapport_actions, out);
  if (!diff.ok()) return diff.status();
  best.mismatch = *diff;
  auto keys = ActionKeys(out);
  if (keys.ok()) best.actions = keys->size();
  return best;
}

// du of a state directory once its memtables are flushed to SST files.
Result<int64_t> FlushedStateBytes(const std::string& dir) {
  {
    auto store = StateStore::Open(dir, StateStoreOptions{});
    if (!store.ok()) return store.status();
    if (Status s = (*store)->Flush(); !s.ok()) return s;
  }
  return DiskUsageBytes(dir);
}

// `rapport run` with a file source: builds a state directory as a daemon
// would (its positions are byte offsets), then restarts on it.
struct RestartResult {
  double build_events_per_s = 0;
  double median_seconds = 0;
  std::vector<double> seconds;
};

Result<RestartResult> MeasureRestart(const Args& args, const Dataset& d, const std::string& rules) {
  const std::string scratch = fs::absolute(args.data + "/scratch").string();
  const std::string state = scratch + "/run-state";
  fs::remove_all(state);
  auto config = [&](const std::string& source, const std::string& name) {
    const std::string path = scratch + "/" + name;
    std::ofstream(path) << "rules: " << fs::absolute(rules).string() << "\n"
                        << "state_dir: " << state << "\n"
                        << "clock: event\n"
                        << "coupon_secret: rapport-bench-secret\n"
                        << "source:\n  file:\n    path: \"" << source << "\"\n"
                        << "sinks:\n  - file:\n      path: " << scratch << "/run-actions.jsonl\n";
    return path;
  };
  RestartResult result;
  {
    ProcessSpec spec;
    spec.argv = {args.rapport, "run", "--config", config(fs::absolute(d.path).string(), "run-build.yaml")};
    auto r = RunProcess(spec);
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) return Fail("rapport run (building the state)", *r);
    result.build_events_per_s = static_cast<double>(d.events) / r->seconds;
    Note("  rapport run over " + d.preset->name + ": " + Fixed(r->seconds, 1) + " s, " +
         Rate(result.build_events_per_s));
  }
  // A few events of known customers, fed on stdin: at or before the stored
  // clock, so they fire nothing and the run ends right after them.
  const std::string tail = scratch + "/restart-events.jsonl";
  {
    std::ifstream in(d.path);
    std::ofstream out(tail);
    std::string line;
    for (int i = 0; i < 100 && std::getline(in, line); ++i) out << line << '\n';
  }
  const std::string restart_config = config("-", "run-restart.yaml");
  for (int run = 0; run < 3; ++run) {
    ProcessSpec spec;
    spec.argv = {args.rapport, "run", "--config", restart_config};
    spec.stdin_path = tail;
    std::optional<double> first;
    spec.on_stderr_line = [&first](std::string_view line, double t) {
      if (!first && line.find("first event processed") != std::string_view::npos) first = t;
    };
    auto r = RunProcess(spec);
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) return Fail("rapport run (restart)", *r);
    if (!first) {
      return Status::InvalidArgument(
          "rapport run never logged \"first event processed\" (a build without the "
          "log line in connectors/src/daemon/daemon.cpp?)");
    }
    Note("  restart " + std::to_string(run + 1) + ": first event after " + Fixed(*first, 3) + " s");
    result.seconds.push_back(*first);
  }
  std::vector<double> sorted = result.seconds;
  std::sort(sorted.begin(), sorted.end());
  result.median_seconds = sorted[sorted.size() / 2];
  return result;
}

std::string MarkdownTable(const std::vector<Row>& rows) {
  std::string md = "| figure | data | value | notes |\n|---|---|---|---|\n";
  for (const Row& r : rows) md += "| " + r.figure + " | " + r.data + " | " + r.value + " | " + r.notes + " |\n";
  return md;
}

std::string TextTable(const std::vector<Row>& rows) {
  size_t w[3] = {6, 4, 5};
  for (const Row& r : rows) {
    w[0] = std::max(w[0], r.figure.size());
    w[1] = std::max(w[1], r.data.size());
    w[2] = std::max(w[2], r.value.size());
  }
  auto line = [&w](const std::string& a, const std::string& b, const std::string& c, const std::string& d) {
    std::string s = a + std::string(w[0] - a.size() + 2, ' ') + b + std::string(w[1] - b.size() + 2, ' ') + c +
                    std::string(w[2] - c.size() + 2, ' ') + d;
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  std::string text = line("figure", "data", "value", "notes");
  text += std::string(w[0] + w[1] + w[2] + 16, '-') + "\n";
  for (const Row& r : rows) text += line(r.figure, r.data, r.value, r.notes);
  return text;
}

std::string Version(const Args& args) {
  const std::string path = args.data + "/scratch/version.txt";
  ProcessSpec spec;
  spec.argv = {args.rapport, "--version"};
  spec.stdout_path = path;
  auto r = RunProcess(spec);
  std::ifstream in(path);
  std::string v;
  std::getline(in, v);
  return v.empty() ? "rapport (unknown version)" : v;
}

int Main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "rapport_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--presets") {
      args.presets = Split(value(), ',');
    } else if (a == "--parts") {
      auto parts = Split(value(), ',');
      args.parts = std::set<std::string>(parts.begin(), parts.end());
    } else if (a == "--repo") {
      args.repo = value();
    } else if (a == "--rapport") {
      args.rapport = value();
    } else if (a == "--data") {
      args.data = value();
    } else if (a == "--out") {
      args.out = value();
    } else if (a == "--python") {
      args.python = value();
    } else if (a == "--node") {
      args.node = value();
    } else if (a == "--quick") {
      args.quick = true;
    } else if (a == "--peer-runs") {
      args.peer_runs = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: rapport_bench [--presets 100k,1M,5M] [--parts a,a2,b,c,d,e] [--repo DIR] [--rapport BIN]\n"
          "                     [--data DIR] [--out FILE] [--python BIN] [--node BIN] [--peer-runs N] [--quick]\n"
          "--quick takes every figure from one run, and latency at a 10 ms commit interval only.\n"
          "Run from the repository root by `make bench` / `make bench-quick`; see bench/README.md.\n");
      return 0;
    } else {
      std::fprintf(stderr, "rapport_bench: unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (args.data.empty()) args.data = args.repo + "/bench/data";
  if (args.quick) args.peer_runs = 1;
  if (args.out.empty()) args.out = args.repo + "/bench/results.md";
  std::vector<const Preset*> presets;
  for (const std::string& name : args.presets) {
    const Preset* found = nullptr;
    for (const Preset& p : kPresets) {
      if (p.name == name) found = &p;
    }
    if (!found) {
      std::fprintf(stderr, "rapport_bench: unknown preset %s (100k, 1M, 5M)\n", name.c_str());
      return 2;
    }
    presets.push_back(found);
  }
  std::error_code ec;
  fs::create_directories(args.data + "/scratch", ec);
  if (ec) {
    std::fprintf(stderr, "rapport_bench: cannot create %s/scratch: %s\n", args.data.c_str(), ec.message().c_str());
    return 2;
  }
  if (!fs::exists(args.rapport)) {
    std::fprintf(stderr, "rapport_bench: no rapport binary at %s (make bench builds it)\n", args.rapport.c_str());
    return 2;
  }
  const std::string relationship = args.repo + "/rules/packs/relationship";
  const std::string fifty = args.repo + "/bench/packs/fifty";
  const auto started = std::chrono::steady_clock::now();
  const std::string machine = DescribeMachine(args.data);
  const std::string version = Version(args);
  std::printf("Rapport benchmark: %s\nmachine: %s\n\n", version.c_str(), machine.c_str());
  std::fflush(stdout);

  std::vector<Row> rows;
  bool failed = false;
  auto fail = [&failed](const std::string& what, const Status& s) {
    std::fprintf(stderr, "rapport_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
    failed = true;
  };
  const std::vector<std::string> parallel = ParallelReplayFlags(args);
  const std::string parallel_text = parallel.empty()
                                        ? "unpinned; this build's replay has no --threads/--partitions, so one thread"
                                        : "unpinned, " + parallel[0] + " " + parallel[1];
  std::map<std::string, Dataset> datasets;
  std::map<std::string, ReplayResult> one_core;  // by preset: relationship on one core

  for (const Preset* p : presets) {
    auto d = EnsureDataset(args, *p);
    if (!d.ok()) {
      fail("data set " + p->name, d.status());
      continue;
    }
    datasets[p->name] = *d;
    const std::string data = p->name + " (" + Grouped(static_cast<double>(d->events)) + " ev)";
    const int runs = args.quick ? 1 : p->runs;
    const std::string best = runs > 1 ? "best of " + std::to_string(runs) : "1 run";
    if (!args.parts.count("a") && !args.parts.count("a2") && !args.parts.count("d")) continue;

    Note("replay " + p->name + ": relationship pack, one core");
    auto pinned = Replay(args, *d, relationship, true, {}, "rel-1core-" + p->name, runs);
    if (!pinned.ok()) {
      fail("replay " + p->name, pinned.status());
      continue;
    }
    one_core[p->name] = *pinned;
    rows.push_back({"a. replay, 3 campaigns, 1 core", data, Rate(pinned->events_per_s),
                    "taskset -c 0; " + best + "; cpu " + Fixed(pinned->cpu_seconds, 1) + " s; --state on disk"});
    if (!args.parts.count("a") && !args.parts.count("d")) continue;
    Note("replay " + p->name + ": relationship pack, whole machine");
    auto wide = Replay(args, *d, relationship, false, parallel, "rel-all-" + p->name, runs);
    if (!wide.ok()) {
      fail("replay " + p->name, wide.status());
      continue;
    }
    rows.push_back({"a. replay, 3 campaigns, all cores", data, Rate(wide->events_per_s),
                    parallel_text + "; " + best + "; cpu " + Fixed(wide->cpu_seconds, 1) + " s"});
    // Fifty campaigns fire about twelve times the actions of three: on the
    // small preset only, or it alone would take most of the half hour.
    if (args.parts.count("a") && static_cast<double>(d->events) <= kSmallPresetEvents) {
      Note("replay " + p->name + ": fifty campaigns, one core");
      const int fifty_runs = runs;
      const std::string fifty_best = fifty_runs > 1 ? "best of " + std::to_string(fifty_runs) : "1 run";
      auto many = Replay(args, *d, fifty, true, {}, "fifty-1core-" + p->name, fifty_runs);
      if (!many.ok()) {
        fail("replay fifty " + p->name, many.status());
      } else {
        rows.push_back({"a. replay, 50 campaigns, 1 core", data, Rate(many->events_per_s),
                        "bench/packs/fifty; " + Fixed(pinned->events_per_s / many->events_per_s, 1) +
                            "x the time of 3 campaigns; " + fifty_best + "; cpu " + Fixed(many->cpu_seconds, 1) +
                            " s; 100k preset only"});
      }
      Note("replay " + p->name + ": fifty campaigns, whole machine");
      auto many_wide = Replay(args, *d, fifty, false, parallel, "fifty-all-" + p->name, fifty_runs);
      if (!many_wide.ok()) {
        fail("replay fifty " + p->name, many_wide.status());
      } else {
        rows.push_back({"a. replay, 50 campaigns, all cores", data, Rate(many_wide->events_per_s),
                        "bench/packs/fifty; " + Fixed(wide->events_per_s / many_wide->events_per_s, 1) +
                            "x the time of 3 campaigns; " + parallel_text + "; " + fifty_best + "; cpu " +
                            Fixed(many_wide->cpu_seconds, 1) + " s"});
      }
    }
    if (args.parts.count("d") && p->customers >= 1000000) {
      auto bytes = FlushedStateBytes(wide->state_dir);
      if (!bytes.ok()) {
        fail("state size " + p->name, bytes.status());
      } else {
        rows.push_back({"d. peak RSS, replay", data, HumanBytes(static_cast<double>(wide->max_rss)),
                        "3 campaigns, all cores; --cache-capacity 1048576 (the default)"});
        rows.push_back({"d. state on disk per customer", data,
                        Fixed(static_cast<double>(*bytes) / static_cast<double>(p->customers), 0) + " bytes",
                        "du after the final commit and a flush: " + HumanBytes(static_cast<double>(*bytes)) + " / " +
                            Grouped(static_cast<double>(p->customers)) + " customers"});
      }
    }
  }

  if (args.parts.count("a2")) {
    for (const auto& [name, d] : datasets) {
      if (!one_core.count(name) || static_cast<double>(d.events) > kSmallPresetEvents) continue;
      const std::string data = name + " (" + Grouped(static_cast<double>(d.events)) + " ev)";
      for (const std::string peer : {"python", "node"}) {
        Note(peer + " peer on " + name);
        auto r = RunPeer(args, peer, d, one_core[name].actions_path);
        if (!r.ok()) {
          fail(peer + " peer", r.status());
          continue;
        }
        std::string check = r->mismatch.empty()
                                ? "actions equal Rapport's (" + Grouped(static_cast<double>(r->actions)) + ")"
                                : "ACTIONS DIFFER from Rapport's";
        if (!r->mismatch.empty()) {
          std::fprintf(stderr, "rapport_bench: the %s peer's actions differ on %s: %s\n", peer.c_str(), name.c_str(),
                       r->mismatch.c_str());
          failed = true;
        }
        rows.push_back({std::string("a2. ") + (peer == "python" ? "Python" : "Node") + " peer, 1 core", data,
                        Rate(r->events_per_s),
                        "Rapport " + Fixed(one_core[name].events_per_s / r->events_per_s, 1) + "x faster; " + check +
                            "; best of " + std::to_string(args.peer_runs) + "; cpu " + Fixed(r->cpu_seconds, 1) +
                            " s"});
      }
    }
    for (const auto& [name, d] : datasets) {
      if (static_cast<double>(d.events) > kSmallPresetEvents) {
        rows.push_back({"a2. Python and Node peers", name, "not run", "too slow for this preset: run on 100k only"});
      }
    }
  }

  const Dataset* base = datasets.count("100k") ? &datasets["100k"] : nullptr;
  if (args.parts.count("b") && base) {
    Note("kafka end to end on the mock cluster");
    KafkaThroughputOptions o;
    o.events_path = base->path;
    o.rules_dir = relationship;
    o.scratch_dir = args.data + "/scratch";
    if (args.quick) o.runs = 1;
    for (int run = 0; run < o.runs; ++run) fs::remove_all(o.scratch_dir + "/kafka-state-" + std::to_string(run));
    auto r = MeasureKafkaThroughput(o);
    if (!r.ok()) {
      fail("kafka throughput", r.status());
    } else {
      const std::string data = "100k prefix (" + Grouped(static_cast<double>(r->events)) + " ev)";
      // CPU per event over all threads, and the cores that kept busy.
      auto cpu = [&r](double cpu_seconds, double events_per_s) {
        const double events = static_cast<double>(r->events);
        return "cpu " + Fixed(cpu_seconds * 1e6 / events, 1) + " us/event, " +
               Fixed(cpu_seconds / (events / events_per_s), 1) + " cores (all threads, mock broker included)";
      };
      rows.push_back({"b. Kafka -> rapport run -> Kafka", data, Rate(r->daemon_events_per_s),
                      std::to_string(o.partitions) +
                          " partitions, event clock, commit 1s/50k; assignment to last "
                          "action acked (" +
                          Grouped(static_cast<double>(r->actions)) + "); best of " + std::to_string(o.runs) + "; " +
                          cpu(r->daemon_cpu_seconds, r->daemon_events_per_s)});
      // The goal compares the two in the same run; the ceiling varies most
      // between runs, so the runs' ratios are summed up by their median.
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.empty() ? 0.0 : v[(v.size() - 1) / 2];  // the lower middle of an even count
      };
      auto percents = [](const std::vector<double>& v) {
        std::string text;
        for (double x : v) text += (text.empty() ? "" : ", ") + Fixed(100.0 * x, 0) + "%";
        return text;
      };
      std::vector<double> ratios;
      for (const auto& run : r->runs) ratios.push_back(run.daemon_events_per_s / run.ceiling_events_per_s);
      rows.push_back({"b. bare librdkafka consumer (ceiling)", data, Rate(r->ceiling_events_per_s),
                      "counts messages only; rapport run reaches " + Fixed(100.0 * median(ratios), 0) +
                          "% of it in the same run (median of the runs: " + percents(ratios) + "; best over best " +
                          Fixed(100.0 * r->daemon_events_per_s / r->ceiling_events_per_s, 0) + "%); " +
                          cpu(r->ceiling_cpu_seconds, r->ceiling_events_per_s)});
      // What the machine's cores allow the daemon at most: per event, what
      // the ceiling spends consuming it (the same run's CPU, mock broker
      // included), what the fastest path spends processing it (a one-core
      // replay of the same events into a fresh state directory), and the
      // writes its contract asks for (the run's changelog records written
      // to RocksDB and produced to Kafka again, without the daemon).
      const Dataset prefix{base->preset, r->prefix_path, r->events};
      auto replay = Replay(args, prefix, relationship, true, {}, "kafka-prefix", o.runs);
      if (!replay.ok()) {
        fail("replay of the kafka prefix", replay.status());
      } else {
        const double events = static_cast<double>(r->events);
        const double cores = std::max(1u, std::thread::hardware_concurrency());
        const double replay_us = replay->cpu_seconds * 1e6 / events;
        const double rocksdb_us = r->contract_writes.rocksdb_cpu_seconds * 1e6 / events;
        const double changelog_us = r->contract_writes.changelog_cpu_seconds * 1e6 / events;
        std::vector<double> of_ceiling, reached;
        double best_bound = 0;
        for (const auto& run : r->runs) {
          const double consume_us = run.ceiling_cpu_seconds * 1e6 / events;
          const double bound = cores * 1e6 / (consume_us + replay_us + rocksdb_us + changelog_us);
          of_ceiling.push_back(bound / run.ceiling_events_per_s);
          reached.push_back(run.daemon_events_per_s / bound);
          best_bound = std::max(best_bound, bound);
        }
        rows.push_back(
            {"b. bound: consume + replay + the writes, " + Fixed(cores, 0) + " cores", data, Rate(best_bound),
             "cpu per event: the ceiling's consume (" + Fixed(r->ceiling_cpu_seconds * 1e6 / events, 2) +
                 " us in its best run) + a one-core replay of the same events (" + Fixed(replay_us, 2) +
                 " us, best of " + std::to_string(o.runs) + ") + the last run's " +
                 Grouped(static_cast<double>(r->contract_writes.records)) + " changelog records written to RocksDB (" +
                 Fixed(rocksdb_us, 2) + " us) and produced to Kafka (" + Fixed(changelog_us, 2) +
                 " us) again, spread over every core: " + Fixed(100.0 * median(of_ceiling), 0) +
                 "% of the same run's ceiling (median of the runs: " + percents(of_ceiling) +
                 "); rapport run reaches " + Fixed(100.0 * median(reached), 0) + "% of it (" + percents(reached) +
                 ")"});
      }
      rows.push_back({"b. restore from the changelog", data,
                      Grouped(static_cast<double>(r->restore_records) / r->restore_seconds) + " records/s",
                      "a fresh instance takes all " + std::to_string(o.partitions) +
                          " partitions over: " + Grouped(static_cast<double>(r->restore_records)) + " records in " +
                          Fixed(r->restore_seconds, 2) + " s of restores"});
    }
  }
  if (args.parts.count("c") && base) {
    // Interval 0 is the floor: the same offer answered by a bare echo.
    std::vector<int> intervals = args.quick ? std::vector<int>{10, 0} : std::vector<int>{1000, 10, 0};
    for (int interval : intervals) {
      for (double rate : {10000.0, 100000.0}) {
        const bool floor = interval == 0;
        Note("latency at " + Grouped(rate) + " events/s, " +
             (floor ? std::string("bare echo") : "commit_interval " + std::to_string(interval) + " ms"));
        LatencyOptions o;
        o.events_path = base->path;
        o.rules_dir = relationship;
        o.scratch_dir = args.data + "/scratch";
        o.rate = rate;
        o.seconds = 3;
        o.commit_interval = std::chrono::milliseconds(interval);
        o.bare_echo = floor;
        // A 3-second window's p99 is its 23rd-worst purchase at 10k/s: one
        // stall of this VM decides it. The row is the run of median p99 of
        // three, and the notes list each run's.
        const int latency_runs = args.quick ? 1 : 3;
        std::vector<LatencyResult> results;
        Status failed;
        for (int run = 0; run < latency_runs && failed.ok(); ++run) {
          fs::remove_all(o.scratch_dir + "/latency-state");
          auto one = MeasureLatency(o);
          if (!one.ok()) {
            failed = one.status();
          } else {
            Note("  p50/p99/p99.9 " + Fixed(one->p50_ms, 0) + " / " + Fixed(one->p99_ms, 0) + " / " +
                 Fixed(one->p999_ms, 0) + " ms");
            results.push_back(*one);
          }
        }
        if (!failed.ok()) {
          fail("latency", failed);
          continue;
        }
        std::string each;
        for (const LatencyResult& one : results) each += (each.empty() ? "" : ", ") + Fixed(one.p99_ms, 0);
        std::sort(results.begin(), results.end(),
                  [](const LatencyResult& a, const LatencyResult& b) { return a.p99_ms < b.p99_ms; });
        const LatencyResult* r = &results[results.size() / 2];
        std::string value = Fixed(r->p50_ms, 0) + " / " + Fixed(r->p99_ms, 0) + " / " + Fixed(r->p999_ms, 0) + " ms";
        std::string offered =
            "achieved " + Grouped(r->achieved_rate) + "/s for " + Fixed(o.seconds, 0) + " s after " +
            Fixed(o.warmup_seconds, 0) + " s of warm-up; " + Grouped(static_cast<double>(r->samples)) + " of " +
            Grouped(static_cast<double>(r->expected)) + " purchases matched; " +
            (results.size() > 1 ? "median p99 of " + std::to_string(results.size()) + " runs (p99 " + each + " ms); "
                                : std::string());
        if (floor) {
          rows.push_back({"c. latency floor p50/p99/p99.9 @ " + Grouped(rate) + "/s", "100k mix", value,
                          offered + "a bare consumer answers each purchase at once (no state, no commit): the "
                                    "broker's and librdkafka's share of the rows above"});
        } else {
          rows.push_back(
              {"c. latency p50/p99/p99.9 @ " + Grouped(rate) + "/s, commit " + std::to_string(interval) + " ms",
               "100k mix", value, offered + "action CreateTime - event CreateTime; wall clock"});
        }
      }
    }
  }
  // On 1M customers; `make bench-quick` has only the 100k preset.
  const std::string restart_preset = datasets.count("1M") ? "1M" : "100k";
  if (args.parts.count("e") && datasets.count(restart_preset)) {
    Note("restart on the " + restart_preset + " state directory");
    const Dataset& d = datasets[restart_preset];
    auto r = MeasureRestart(args, d, relationship);
    if (!r.ok()) {
      fail("restart", r.status());
    } else {
      const std::string data = restart_preset + " (" + Grouped(static_cast<double>(d.events)) + " ev)";
      rows.push_back({"e. rapport run, file source", data, Rate(r->build_events_per_s),
                      "builds the state for e.; fsync per commit (1s/50k)"});
      std::string all;
      for (double s : r->seconds) all += (all.empty() ? "" : ", ") + Fixed(s, 2);
      rows.push_back({"e. restart: start to first event", data, Fixed(r->median_seconds, 2) + " s",
                      "median of 3 (" + all + " s): open RocksDB, load timers, first event"});
    }
  }

  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() / 60;
  std::printf("%s\n", TextTable(rows).c_str());
  // CPU time of the harness and every process it ran: on a busy machine the
  // wall time says more about the neighbours than about the benchmark.
  double cpu_minutes = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    getrusage(who, &u);
    cpu_minutes += (static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                    static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6) /
                   60;
  }
  std::printf("(%.1f minutes, %.1f minutes of CPU; events/s = events / wall time of the whole process unless noted)\n",
              minutes, cpu_minutes);
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  std::ofstream md(args.out);
  md << "# Rapport benchmark results\n\n"
     << "Produced by `make bench` (bench/rapport_bench.cpp) on " << date << " with " << version << ".\n\n"
     << "Machine: " << machine << ".\n\n"
     << MarkdownTable(rows) << "\n"
     << "Presets run: ";
  for (size_t i = 0; i < args.presets.size(); ++i) md << (i ? ", " : "") << args.presets[i];
  md << ". Total time " << Fixed(minutes, 1) << " minutes (" << Fixed(cpu_minutes, 1)
     << " minutes of CPU). events/s = events / wall time of the whole process "
     << "(start, replay, final commit, exit) unless noted. See bench/README.md for what each figure measures.\n";
  if (!md) {
    std::fprintf(stderr, "rapport_bench: cannot write %s\n", args.out.c_str());
    return 2;
  }
  std::printf("written to %s\n", args.out.c_str());
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace rapport::bench

int main(int argc, char** argv) { return rapport::bench::Main(argc, argv); }

// rapport replay: run past events through campaigns, deterministically.
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "commands.h"
#include "rapport/connectors/replay.h"
#include "rapport/connectors/report.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

// The cores this process may run on: `taskset -c 0 rapport replay` runs one
// processor, not one per core of the machine fighting over that one.
unsigned UsableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

struct ReplayArgs {
  std::vector<std::string> rules;
  std::string events;
  std::string until;
  std::string out = "-";
  std::string state;
  std::string dead_letter;
  std::string coupon_secret;
  std::string report;
  uint64_t commit_every = 1000000;
  size_t cache_capacity = 1 << 20;
  unsigned threads = UsableCores();
  bool quiet = false;
};

int RunReplayCommand(const ReplayArgs& args) {
  rules::LoadResult loaded = rules::LoadRules(args.rules);
  for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
  if (!loaded.rules) {
    std::cerr << "rapport replay: the rules have errors; nothing was replayed\n";
    return 1;
  }
  connectors::ReplayOptions options;
  options.events_path = args.events;
  options.state_dir = args.state;
  options.dead_letter_path = args.dead_letter;
  options.commit_every = std::max<uint64_t>(1, args.commit_every);
  options.cache_capacity = std::max<size_t>(1, args.cache_capacity);
  options.threads = std::max(1u, args.threads);
  if (!args.until.empty()) {
    auto t = ParseRfc3339(args.until);
    if (!t) {
      std::cerr << "rapport replay: --until `" << args.until << "` is not an RFC 3339 time with a zone "
                << "(e.g. 2026-06-01T00:00:00Z)\n";
      return 2;
    }
    options.until = t;
  }
  options.coupon_secret = args.coupon_secret;
  if (options.coupon_secret.empty()) {
    const char* env = std::getenv("RAPPORT_COUPON_SECRET");
    if (env != nullptr && *env != '\0') {
      options.coupon_secret = env;
    } else {
      options.coupon_secret = "rapport-replay-default-secret";
      if (!args.quiet) {
        std::cerr << "note: coupon codes use a built-in secret; set RAPPORT_COUPON_SECRET or --coupon-secret for "
                     "codes nobody else can compute\n";
      }
    }
  }
  auto sink = connectors::JsonlActionSink::Open(args.out);
  if (!sink.ok()) {
    std::cerr << "rapport replay: " << sink.status().message() << '\n';
    return 2;
  }
  // The report's tracer is only there when a report is asked for: other
  // replays run without one.
  std::unique_ptr<connectors::ReportCollector> collector;
  std::ofstream report;
  if (!args.report.empty()) {
    // Opened first, so that a bad path fails before a long replay.
    report.open(args.report, std::ios::binary | std::ios::trunc);
    if (!report) {
      std::cerr << "rapport replay: cannot write the report " << args.report << ": " << std::strerror(errno) << '\n';
      return 2;
    }
    collector = std::make_unique<connectors::ReportCollector>(loaded.rules);
    options.tracer = collector.get();
  }
  auto summary = connectors::RunReplay(options, loaded.rules, **sink);
  Status flushed = (*sink)->Flush();
  if (!summary.ok()) {
    std::cerr << "rapport replay: " << summary.status().ToString() << '\n';
    return 2;
  }
  if (!flushed.ok()) {
    std::cerr << "rapport replay: " << flushed.ToString() << '\n';
    return 2;
  }
  if (!args.quiet) std::cerr << connectors::FormatReplaySummary(*summary, *loaded.rules);
  if (collector) {
    connectors::ReportContext context;
    for (const std::string& r : args.rules) context.rules += (context.rules.empty() ? "" : ", ") + r;
    context.events = args.events == "-" ? "stdin" : args.events;
    report << connectors::RenderHtmlReport(collector->Data(), *summary, *loaded.rules, context);
    report.close();
    if (!report) {
      std::cerr << "rapport replay: cannot write the report " << args.report << ": " << std::strerror(errno) << '\n';
      return 2;
    }
    if (!args.quiet) std::cerr << "report written to " << args.report << '\n';
  }
  return 0;
}

}  // namespace

void AddReplayCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ReplayArgs>();
  CLI::App* cmd = app.add_subcommand("replay", "Run events from a file through campaigns and print the actions");
  cmd->footer(
      "Actions are written as JSON lines to stdout (or --out); a summary goes to stderr.\n"
      "Replays are deterministic: the same rules and events give the same bytes, whatever --threads.\n"
      "A replay into a new or empty --state directory (or the temporary one) is a bulk load: it writes\n"
      "without RocksDB's write-ahead log and flushes and compacts the state at the end, so the state is\n"
      "durable only once the replay has finished; after a crash, delete the directory and replay again.\n"
      "Example: rapport replay --rules rules/packs/relationship --events events.jsonl --out actions.jsonl");
  cmd->add_option("--rules", args->rules, "Rule files or directories (repeatable)")->required();
  cmd->add_option("--events", args->events, "Events as JSON lines; - reads stdin")->required();
  cmd->add_option("--until", args->until,
                  "Fire timers due up to this time at the end (RFC 3339); default: the last event's time");
  cmd->add_option("--out", args->out, "Write actions here instead of stdout");
  cmd->add_option("--state", args->state,
                  "Keep customer state in this directory (kept afterwards); default: a temporary one");
  cmd->add_option("--dead-letter", args->dead_letter, "Write rejected events here as JSON lines, with the reason");
  cmd->add_option("--coupon-secret", args->coupon_secret, "Secret for coupon codes (default: $RAPPORT_COUPON_SECRET)");
  cmd->add_option("--commit-every", args->commit_every,
                  "Events per state commit group when --state already holds state (default 1000000); a bulk load "
                  "writes changes back when the cache is full, and commits at the end");
  cmd->add_option("--cache-capacity", args->cache_capacity,
                  "Customer profiles kept in memory between commits, in total: --threads share it (default 1048576)");
  cmd->add_option("--threads", args->threads,
                  "Processors running in parallel, customers split between them (default: the cores this process may use, " +
                      std::to_string(args->threads) +
                      " here); the output is the same bytes. A --state directory that already holds state, "
                      "or --report, runs on one thread");
  cmd->add_option("--report", args->report,
                  "Also write an HTML report (actions per day, conversion lift, ladder, suppressions) to this file");
  cmd->add_flag("--quiet", args->quiet, "Do not print the summary");
  cmd->callback([args, exit_code] { *exit_code = RunReplayCommand(*args); });
}

}  // namespace rapport::cli

// rapport demo: a simulated store's traffic through the standard campaigns.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "rapport/connectors/replay.h"
#include "rapport/connectors/store_simulator.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

struct DemoArgs {
  std::string rules = "rules/packs/relationship";
  uint64_t customers = 20000;
  int64_t days = 120;
  uint64_t seed = 7;
  size_t show = 12;
};

// Prints the first few actions readably and counts the rest.
class DemoSink : public ActionSink {
 public:
  explicit DemoSink(size_t show) : show_(show) {}
  void Deliver(const FiredAction& a) override {
    if (++seen_ <= show_) {
      std::printf("  %s  %-24s %-10s %s%s\n", FormatRfc3339(a.ts).c_str(), a.campaign->id.c_str(),
                  std::string(a.customer_id).c_str(), a.campaign->actions.empty() ? "" : a.campaign->actions[0].channel.c_str(),
                  a.held_out ? " (held out)" : "");
    } else if (seen_ == show_ + 1) {
      std::printf("  ... (the rest are counted below)\n");
    }
  }

 private:
  size_t show_;
  size_t seen_ = 0;
};

int RunDemo(const DemoArgs& args) {
  rules::LoadResult loaded = rules::LoadRules({args.rules});
  for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
  if (!loaded.rules) {
    std::cerr << "rapport demo: cannot load " << args.rules << " (run it from the repository root, or pass --rules)\n";
    return 1;
  }
  auto dir = connectors::ScratchDirectory::Create("rapport-demo");
  if (!dir.ok()) {
    std::cerr << "rapport demo: " << dir.status().message() << '\n';
    return 2;
  }
  const std::string events = (*dir)->path() + "/events.jsonl";
  connectors::StoreSimulatorOptions sim;
  sim.customers = args.customers;
  sim.days = args.days;
  sim.seed = args.seed;
  sim.bad_rate = 0.001;
  std::printf("Rapport demo: a simulated store with %llu customers over %lld days, with 0.1%% malformed lines,\n"
              "replayed through the campaigns in %s.\n\n",
              static_cast<unsigned long long>(args.customers), static_cast<long long>(args.days), args.rules.c_str());
  std::FILE* out = std::fopen(events.c_str(), "wb");
  if (out == nullptr) {
    std::cerr << "rapport demo: cannot write " << events << '\n';
    return 2;
  }
  connectors::GenerateStats stats;
  Status written = connectors::WriteStoreEvents(sim, out, &stats);
  std::fclose(out);
  if (!written.ok()) {
    std::cerr << "rapport demo: " << written.ToString() << '\n';
    return 2;
  }
  std::printf("Generated %llu events (%llu malformed lines mixed in).\n\nFirst actions:\n",
              static_cast<unsigned long long>(stats.events), static_cast<unsigned long long>(stats.malformed));
  connectors::ReplayOptions options;
  options.events_path = events;
  options.coupon_secret = "rapport-demo-secret";
  options.dead_letter_path = (*dir)->path() + "/dead-letters.jsonl";
  DemoSink sink(args.show);
  auto summary = connectors::RunReplay(options, loaded.rules, sink);
  if (!summary.ok()) {
    std::cerr << "rapport demo: " << summary.status().ToString() << '\n';
    return 2;
  }
  std::printf("\n%s", connectors::FormatReplaySummary(*summary, *loaded.rules).c_str());
  std::printf("\nNext: write your own campaign (README.md, \"Your first campaign\") and run\n"
              "  rapport replay --rules rules/packs/relationship --events events.jsonl\n");
  return 0;
}

}  // namespace

void AddDemoCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand("demo", "Run a simulated store through the standard campaigns and summarise");
  cmd->add_option("--rules", args->rules, "Rule files or directory (default: rules/packs/relationship)");
  cmd->add_option("--customers", args->customers, "Simulated customers (default 20000)");
  cmd->add_option("--days", args->days, "Simulated days (default 120)");
  cmd->add_option("--seed", args->seed, "Random seed (default 7)");
  cmd->add_option("--show", args->show, "How many actions to print as they fire (default 12)");
  cmd->callback([args, exit_code] { *exit_code = RunDemo(*args); });
}

}  // namespace rapport::cli

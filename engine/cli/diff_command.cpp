// rapport diff: what a change to the rules would change, on real traffic.
//
// Replays the same events through the old and the new rule set, each in a
// scratch state directory of its own, and compares the actions. An action is
// identified by (campaign, customer, ts): the action_id also digests the
// event and the action's position, which a rule change can move without
// changing what the customer gets. Held-out actions count like the others, as
// in the replay summary. The same customer, campaign and time may fire more
// than once; such actions are compared by count.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <unordered_map>

#include "commands.h"
#include "rapport/connectors/replay.h"
#include "rapport/engine/json_writer.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

struct DiffArgs {
  std::vector<std::string> rules;
  std::string events;
  std::string until;
  size_t samples = 5;
  std::string format = "text";
};

// "campaign \x1f customer \x1f ts" -> how many actions have that key.
using ActionCounts = std::unordered_map<std::string, int64_t>;

class CountingSink : public ActionSink {
 public:
  explicit CountingSink(ActionCounts* counts) : counts_(counts) {}
  void Deliver(const FiredAction& a) override {
    key_.assign(a.campaign->id);
    key_.push_back('\x1f');
    key_.append(a.customer_id);
    key_.push_back('\x1f');
    key_.append(std::to_string(a.ts.ms));
    ++(*counts_)[key_];
  }

 private:
  ActionCounts* counts_;
  std::string key_;
};

struct Change {
  std::string customer;
  int64_t ts_ms;
  int64_t count;
  bool operator<(const Change& o) const { return std::tie(ts_ms, customer) < std::tie(o.ts_ms, o.customer); }
};

struct CampaignDiff {
  uint64_t old_actions = 0, new_actions = 0, added = 0, removed = 0;
  std::vector<Change> added_list, removed_list;
  bool in_old = false, in_new = false;
};

// Up to `n` distinct customers, earliest change first.
std::vector<const Change*> Samples(std::vector<Change>& changes, size_t n) {
  std::sort(changes.begin(), changes.end());
  std::vector<const Change*> out;
  std::set<std::string> seen;
  for (const Change& c : changes) {
    if (out.size() >= n) break;
    if (seen.insert(c.customer).second) out.push_back(&c);
  }
  return out;
}

std::string Thousands(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// Replays `events` through `rules` into *counts, in a scratch state directory.
Result<connectors::ReplaySummary> Replay(const std::string& events, std::optional<EventTime> until,
                                         std::shared_ptr<const rules::RuleSet> rules, ActionCounts* counts) {
  connectors::ReplayOptions options;
  options.events_path = events;
  options.until = until;
  // Coupon codes do not take part in the comparison.
  options.coupon_secret = "rapport-diff";
  CountingSink sink(counts);
  return connectors::RunReplay(options, std::move(rules), sink);
}

int RunDiffCommand(const DiffArgs& args) {
  if (args.rules.size() != 2) {
    std::cerr << "rapport diff: give --rules twice, the old rules then the new ones (each a file or a directory)\n";
    return 2;
  }
  if (args.format != "text" && args.format != "json") {
    std::cerr << "rapport diff: --format must be text or json, not `" << args.format << "`\n";
    return 2;
  }
  std::optional<EventTime> until;
  if (!args.until.empty()) {
    until = ParseRfc3339(args.until);
    if (!until) {
      std::cerr << "rapport diff: --until `" << args.until << "` is not an RFC 3339 time with a zone "
                << "(e.g. 2026-06-01T00:00:00Z)\n";
      return 2;
    }
  }
  std::shared_ptr<const rules::RuleSet> sets[2];
  const char* names[2] = {"old", "new"};
  bool errors = false;
  for (int i = 0; i < 2; ++i) {
    rules::LoadResult loaded = rules::LoadRules({args.rules[i]});
    for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
    if (!loaded.rules) {
      std::cerr << "rapport diff: the " << names[i] << " rules (" << args.rules[i] << ") have errors\n";
      errors = true;
    }
    sets[i] = loaded.rules;
  }
  if (errors) return 1;

  // Both replays read the events: keep stdin in a scratch file.
  std::unique_ptr<connectors::ScratchDirectory> scratch;
  std::string events = args.events;
  if (events == "-") {
    auto dir = connectors::ScratchDirectory::Create("rapport-diff");
    if (!dir.ok()) {
      std::cerr << "rapport diff: " << dir.status().message() << '\n';
      return 2;
    }
    scratch = std::move(*dir);
    events = scratch->path() + "/events.jsonl";
    std::ofstream copy(events, std::ios::binary);
    copy << std::cin.rdbuf();
    if (!copy.flush()) {
      std::cerr << "rapport diff: cannot keep stdin in " << events << ": " << std::strerror(errno) << '\n';
      return 2;
    }
  }

  ActionCounts counts[2];
  uint64_t accepted = 0, rejected = 0;
  for (int i = 0; i < 2; ++i) {
    auto summary = Replay(events, until, sets[i], &counts[i]);
    if (!summary.ok()) {
      std::cerr << "rapport diff: replaying the " << names[i] << " rules: " << summary.status().ToString() << '\n';
      return 2;
    }
    accepted = summary->accepted;
    rejected = summary->rejected;
  }

  std::map<std::string, CampaignDiff> campaigns;
  for (const rules::Campaign& c : sets[0]->campaigns) campaigns[c.id].in_old = true;
  for (const rules::Campaign& c : sets[1]->campaigns) campaigns[c.id].in_new = true;
  auto split = [](const std::string& key, std::string* campaign, Change* change) {
    const size_t a = key.find('\x1f'), b = key.rfind('\x1f');
    *campaign = key.substr(0, a);
    change->customer = key.substr(a + 1, b - a - 1);
    change->ts_ms = std::stoll(key.substr(b + 1));
  };
  std::string campaign;
  for (int i = 0; i < 2; ++i) {
    for (const auto& [key, n] : counts[i]) {
      Change change{};
      split(key, &campaign, &change);
      CampaignDiff& d = campaigns[campaign];
      (i == 0 ? d.old_actions : d.new_actions) += static_cast<uint64_t>(n);
      auto other = counts[1 - i].find(key);
      const int64_t delta = n - (other == counts[1 - i].end() ? 0 : other->second);
      if (delta <= 0) continue;
      change.count = delta;
      (i == 0 ? d.removed : d.added) += static_cast<uint64_t>(delta);
      (i == 0 ? d.removed_list : d.added_list).push_back(std::move(change));
    }
  }
  uint64_t total[4] = {};
  for (const auto& [id, d] : campaigns) {
    total[0] += d.old_actions;
    total[1] += d.new_actions;
    total[2] += d.added;
    total[3] += d.removed;
  }

  if (args.format == "json") {
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("old_rules");
    w.String(args.rules[0]);
    w.Key("new_rules");
    w.String(args.rules[1]);
    w.Key("events");
    w.Int(static_cast<int64_t>(accepted));
    w.Key("rejected");
    w.Int(static_cast<int64_t>(rejected));
    w.Key("changed");
    w.Bool(total[2] + total[3] > 0);
    w.Key("campaigns");
    w.BeginArray();
    for (auto& [id, d] : campaigns) {
      w.BeginObject();
      w.Key("campaign");
      w.String(id);
      w.Key("in_old");
      w.Bool(d.in_old);
      w.Key("in_new");
      w.Bool(d.in_new);
      w.Key("old_actions");
      w.Int(static_cast<int64_t>(d.old_actions));
      w.Key("new_actions");
      w.Int(static_cast<int64_t>(d.new_actions));
      w.Key("added");
      w.Int(static_cast<int64_t>(d.added));
      w.Key("removed");
      w.Int(static_cast<int64_t>(d.removed));
      for (int side = 0; side < 2; ++side) {
        w.Key(side == 0 ? "added_samples" : "removed_samples");
        w.BeginArray();
        for (const Change* c : Samples(side == 0 ? d.added_list : d.removed_list, args.samples)) {
          w.BeginObject();
          w.Key("customer_id");
          w.String(c->customer);
          w.Key("ts");
          w.String(FormatRfc3339(EventTime{c->ts_ms}));
          w.EndObject();
        }
        w.EndArray();
      }
      w.EndObject();
    }
    w.EndArray();
    w.Key("total");
    w.BeginObject();
    const char* keys[4] = {"old_actions", "new_actions", "added", "removed"};
    for (int k = 0; k < 4; ++k) {
      w.Key(keys[k]);
      w.Int(static_cast<int64_t>(total[k]));
    }
    w.EndObject();
    w.EndObject();
    std::cout << out << '\n';
    return 0;
  }

  std::cout << "old rules: " << args.rules[0] << "\nnew rules: " << args.rules[1] << "\nevents: " << args.events << " ("
            << Thousands(accepted) << " accepted, " << Thousands(rejected) << " rejected)\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-32s %10s %10s %10s %10s\n", "campaign", "old", "new", "added", "removed");
  std::cout << line;
  for (auto& [id, d] : campaigns) {
    std::string name = id + (!d.in_old ? " (new)" : !d.in_new ? " (removed)" : "");
    std::snprintf(line, sizeof line, "%-32s %10s %10s %10s %10s\n", name.c_str(), Thousands(d.old_actions).c_str(),
                  Thousands(d.new_actions).c_str(), ("+" + Thousands(d.added)).c_str(),
                  ("-" + Thousands(d.removed)).c_str());
    std::cout << line;
    for (int side = 0; side < 2; ++side) {
      auto samples = Samples(side == 0 ? d.added_list : d.removed_list, args.samples);
      if (samples.empty()) continue;
      std::cout << "    " << (side == 0 ? "added for  " : "removed for");
      for (const Change* c : samples)
        std::cout << ' ' << c->customer << " (" << FormatRfc3339(EventTime{c->ts_ms}) << ')';
      std::cout << '\n';
    }
  }
  std::snprintf(line, sizeof line, "%-32s %10s %10s %10s %10s\n", "total", Thousands(total[0]).c_str(),
                Thousands(total[1]).c_str(), ("+" + Thousands(total[2])).c_str(), ("-" + Thousands(total[3])).c_str());
  std::cout << line;
  std::cout << (total[2] + total[3] == 0 ? "\nno change: both rule sets fire the same actions\n" : "");
  return 0;
}

}  // namespace

void AddDiffCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<DiffArgs>();
  CLI::App* cmd = app.add_subcommand("diff", "Compare the actions of two rule sets on the same events");
  cmd->footer(
      "Replays the events through the old and the new rules (each in a scratch state directory) and reports,\n"
      "per campaign, the actions added and removed, matched by (campaign, customer, ts), with sample customers.\n"
      "Exit 0 whether or not anything changed. Example:\n"
      "  rapport diff --rules rules/packs/relationship --rules my-pack --events events.jsonl --samples 3");
  cmd->add_option("--rules", args->rules, "The old rules, then the new rules: give it twice (a file or directory)")
      ->required();
  cmd->add_option("--events", args->events, "Events as JSON lines; - reads stdin")->required();
  cmd->add_option("--until", args->until, "Fire timers due up to this time at the end (RFC 3339)");
  cmd->add_option("--samples", args->samples, "Sample customers listed per campaign and direction (default 5)");
  cmd->add_option("--format", args->format, "text (default) or json");
  cmd->callback([args, exit_code] { *exit_code = RunDiffCommand(*args); });
}

}  // namespace rapport::cli

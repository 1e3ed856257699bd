// rapport state get|stats: look inside a state directory.
//
// Both open the store read-only: they never change it and take no lock, so
// they work on the directory of a running rapport (they see its state as of
// their start).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include "commands.h"
#include "rapport/engine/json_writer.h"
#include "rapport/engine/profile.h"
#include "rapport/engine/profile_json.h"
#include "rapport/engine/state_store.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

struct GetArgs {
  std::string customer;
  std::string state;
  std::optional<uint32_t> partition;
  std::vector<std::string> rules;
  bool compact = false;
};

struct StatsArgs {
  std::string state;
  std::vector<std::string> rules;
  std::string format = "text";
};

// Re-indents compact JSON (as JsonWriter writes it) two spaces a level. An
// array or object holding no array or object stays on one line.
std::string Pretty(std::string_view json) {
  std::string out;
  int depth = 0;
  auto newline = [&out, &depth] {
    out.push_back('\n');
    out.append(static_cast<size_t>(depth) * 2, ' ');
  };
  // Where the container opened at i closes, or npos when it holds another.
  auto flat_end = [json](size_t i) {
    bool in_string = false;
    for (size_t j = i + 1; j < json.size(); ++j) {
      const char c = json[j];
      if (in_string) {
        if (c == '\\')
          ++j;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        return std::string_view::npos;
      } else if (c == '}' || c == ']') {
        return j;
      }
    }
    return std::string_view::npos;
  };
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < json.size())
        out.push_back(json[++i]);
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out.push_back(c);
        break;
      case '{':
      case '[': {
        const size_t end = flat_end(i);
        if (end != std::string_view::npos) {
          bool quoted = false;
          for (size_t j = i; j <= end; ++j) {
            const char d = json[j];
            out.push_back(d);
            if (quoted) {
              if (d == '\\')
                out.push_back(json[++j]);
              else if (d == '"')
                quoted = false;
            } else if (d == '"') {
              quoted = true;
            } else if (d == ',' || d == ':') {
              out.push_back(' ');
            }
          }
          i = end;
          break;
        }
        out.push_back(c);
        ++depth;
        newline();
        break;
      }
      case '}':
      case ']':
        --depth;
        newline();
        out.push_back(c);
        break;
      case ',':
        out.push_back(c);
        newline();
        break;
      case ':': out.append(": "); break;
      default: out.push_back(c);
    }
  }
  return out;
}

// "1,234,567"
std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Padded(std::string s, size_t width, bool right) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

// Loads --rules when given; prints the diagnostics of a set with errors.
// Returns false when the rules were given and have errors.
bool LoadOptionalRules(const std::vector<std::string>& paths, const char* command,
                       std::shared_ptr<const rules::RuleSet>* out) {
  if (paths.empty()) return true;
  rules::LoadResult loaded = rules::LoadRules(paths);
  if (!loaded.rules) {
    for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
    std::cerr << "rapport state " << command << ": the rules have errors\n";
    return false;
  }
  *out = loaded.rules;
  return true;
}

Result<std::unique_ptr<StateStore>> OpenReadOnly(const std::string& dir) {
  StateStoreOptions options;
  options.read_only = true;
  options.block_cache_bytes = 8 << 20;
  return StateStore::Open(dir, options);
}

int RunGet(const GetArgs& args) {
  std::shared_ptr<const rules::RuleSet> rules;
  if (!LoadOptionalRules(args.rules, "get", &rules)) return 1;
  auto store = OpenReadOnly(args.state);
  if (!store.ok()) {
    std::cerr << "rapport state get: " << store.status().message() << '\n';
    return 2;
  }
  std::vector<uint32_t> partitions;
  if (args.partition) {
    partitions.push_back(*args.partition);
  } else {
    auto all = (*store)->Partitions();
    if (!all.ok()) {
      std::cerr << "rapport state get: " << all.status().ToString() << '\n';
      return 2;
    }
    partitions = std::move(*all);
  }

  std::vector<std::string> found;  // one JSON object per partition that has the customer
  for (uint32_t partition : partitions) {
    std::string encoded;
    bool present = false;
    if (Status s = (*store)->GetProfile(partition, args.customer, &encoded, &present); !s.ok()) {
      std::cerr << "rapport state get: " << s.ToString() << '\n';
      return 2;
    }
    if (!present) continue;
    Profile profile;
    if (Status s = DecodeProfile(encoded, &profile); !s.ok()) {
      std::cerr << "rapport state get: customer `" << args.customer << "` in partition " << partition << ": "
                << s.message() << '\n';
      return 2;
    }
    auto clock = (*store)->GetClock(partition);
    if (!clock.ok()) {
      std::cerr << "rapport state get: " << clock.status().ToString() << '\n';
      return 2;
    }
    ProfileJsonOptions options;
    StateStore* raw = store->get();
    options.symbol_name = [raw, partition](SymbolKind kind, uint32_t id) { return raw->SymbolName(partition, kind, id); };
    options.rules = rules.get();
    options.partition = partition;
    // Windowed aggregates as a rule would read them now: at the stream clock.
    if (*clock) options.now = **clock;
    found.push_back(ProfileToJson(args.customer, profile, options));
  }

  if (found.empty()) {
    std::string where;
    for (uint32_t p : partitions) where += (where.empty() ? "" : ", ") + std::to_string(p);
    std::cerr << "rapport state get: no customer `" << args.customer << "` in " << args.state;
    if (partitions.empty()) {
      std::cerr << " (the state holds no partition yet)";
    } else {
      std::cerr << (partitions.size() == 1 ? " (partition " : " (partitions ") << where << ")";
    }
    std::cerr << '\n';
    return 1;
  }
  // A customer whose events went to several partitions has a profile in each.
  std::string json;
  if (found.size() == 1) {
    json = found[0];
  } else {
    json = "[";
    for (size_t i = 0; i < found.size(); ++i) json += (i > 0 ? "," : "") + found[i];
    json += "]";
  }
  std::cout << (args.compact ? json : Pretty(json)) << '\n';
  return 0;
}

struct PartitionStats {
  uint32_t partition = 0;
  uint64_t customers = 0;
  uint64_t encoded_bytes = 0;  // keys and values of its profiles
  uint64_t timers = 0;  // armed, counted in the profiles (a timer key is per customer)
  uint64_t outbox = 0;
  uint64_t undecodable = 0;
  std::optional<EventTime> clock;
  std::string position;
  std::map<uint32_t, uint64_t> stages;  // stage index -> customers
};

std::string StageName(const rules::RuleSet* rules, uint32_t stage) {
  if (rules == nullptr) return std::to_string(stage);
  if (stage < rules->ladder.size()) return rules->ladder[stage].name;
  return "#" + std::to_string(stage) + " (not in the ladder)";
}

int RunStats(const StatsArgs& args) {
  std::shared_ptr<const rules::RuleSet> rules;
  if (!LoadOptionalRules(args.rules, "stats", &rules)) return 1;
  auto opened = OpenReadOnly(args.state);
  if (!opened.ok()) {
    std::cerr << "rapport state stats: " << opened.status().message() << '\n';
    return 2;
  }
  StateStore& store = **opened;
  auto fail = [](const Status& s) {
    std::cerr << "rapport state stats: " << s.ToString() << '\n';
    return 2;
  };
  auto partitions = store.Partitions();
  if (!partitions.ok()) return fail(partitions.status());

  std::map<uint32_t, PartitionStats> by_partition;
  for (uint32_t p : *partitions) {
    PartitionStats& ps = by_partition[p];
    ps.partition = p;
    Profile profile;
    Status s = store.ForEachProfile(p, [&](std::string_view customer, std::string_view encoded) {
      ++ps.customers;
      ps.encoded_bytes += 4 + customer.size() + encoded.size();
      if (DecodeProfile(encoded, &profile).ok()) {
        ++ps.stages[profile.stage];
        for (const CampaignState& c : profile.campaigns) ps.timers += c.armed_due_ms != kNoTime;
      } else {
        ++ps.undecodable;
      }
    });
    if (!s.ok()) return fail(s);
    auto clock = store.GetClock(p);
    if (!clock.ok()) return fail(clock.status());
    ps.clock = *clock;
    auto position = store.GetPosition(p);
    if (!position.ok()) return fail(position.status());
    ps.position = std::move(*position);
  }
  // The outbox in one pass: records are few (delivered ones are deleted).
  auto count = [&by_partition](const StateStore::OutboxEntry& e) {
    by_partition[e.partition].partition = e.partition;
    ++by_partition[e.partition].outbox;
  };
  auto scanned = store.ScanOutbox(0, 0, SIZE_MAX, StateStore::OutboxScope::kOnward, count);
  if (!scanned.ok()) return fail(scanned.status());

  PartitionStats total;
  for (const auto& [p, ps] : by_partition) {
    total.customers += ps.customers;
    total.encoded_bytes += ps.encoded_bytes;
    total.timers += ps.timers;
    total.outbox += ps.outbox;
    total.undecodable += ps.undecodable;
    for (const auto& [stage, n] : ps.stages) total.stages[stage] += n;
  }
  const StateStore::FamilyBytes bytes = store.ApproximateBytes();
  uint64_t directory_bytes = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(args.state, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) directory_bytes += it->file_size(size_ec);
  }
  const double per_customer =
      total.customers == 0 ? 0 : static_cast<double>(bytes.profiles) / static_cast<double>(total.customers);
  const double encoded_per_customer =
      total.customers == 0 ? 0 : static_cast<double>(total.encoded_bytes) / static_cast<double>(total.customers);

  if (args.format == "json") {
    std::string out;
    JsonWriter w(&out);
    auto stages = [&w, &rules](const std::map<uint32_t, uint64_t>& counts) {
      w.BeginObject();
      for (const auto& [stage, n] : counts) {
        w.Key(StageName(rules.get(), stage));
        w.Int(static_cast<int64_t>(n));
      }
      w.EndObject();
    };
    w.BeginObject();
    w.Key("state");
    w.String(args.state);
    w.Key("customers");
    w.Int(static_cast<int64_t>(total.customers));
    w.Key("pending_timers");
    w.Int(static_cast<int64_t>(total.timers));
    w.Key("outbox_waiting");
    w.Int(static_cast<int64_t>(total.outbox));
    w.Key("undecodable_profiles");
    w.Int(static_cast<int64_t>(total.undecodable));
    w.Key("stages");
    stages(total.stages);
    w.Key("bytes");
    w.BeginObject();
    w.Key("profiles");
    w.Int(static_cast<int64_t>(bytes.profiles));
    w.Key("outbox");
    w.Int(static_cast<int64_t>(bytes.outbox));
    w.Key("meta");
    w.Int(static_cast<int64_t>(bytes.meta));
    w.Key("directory");
    w.Int(static_cast<int64_t>(directory_bytes));
    w.EndObject();
    w.Key("profile_bytes_per_customer");
    w.Number(per_customer);
    w.Key("encoded_bytes_per_customer");
    w.Number(encoded_per_customer);
    w.Key("partitions");
    w.BeginArray();
    for (const auto& [p, ps] : by_partition) {
      w.BeginObject();
      w.Key("partition");
      w.Int(p);
      w.Key("customers");
      w.Int(static_cast<int64_t>(ps.customers));
      w.Key("pending_timers");
      w.Int(static_cast<int64_t>(ps.timers));
      w.Key("outbox_waiting");
      w.Int(static_cast<int64_t>(ps.outbox));
      w.Key("clock");
      if (ps.clock) {
        w.String(FormatRfc3339(*ps.clock));
      } else {
        w.Null();
      }
      w.Key("position");
      if (ps.position.empty()) {
        w.Null();
      } else {
        w.String(ps.position);
      }
      w.Key("stages");
      stages(ps.stages);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::cout << out << '\n';
  } else {
    std::cout << "state " << args.state << '\n';
    std::cout << "  partition   customers      timers      outbox  clock                     position\n";
    for (const auto& [p, ps] : by_partition) {
      std::cout << "  " << Padded(std::to_string(p), 9, false) << Padded(Grouped(ps.customers), 12, true)
                << Padded(Grouped(ps.timers), 12, true) << Padded(Grouped(ps.outbox), 12, true) << "  "
                << Padded(ps.clock ? FormatRfc3339(*ps.clock) : "-", 24, false) << "  "
                << (ps.position.empty() ? "-" : ps.position) << '\n';
    }
    std::cout << "  " << Padded("total", 9, false) << Padded(Grouped(total.customers), 12, true)
              << Padded(Grouped(total.timers), 12, true) << Padded(Grouped(total.outbox), 12, true) << '\n';
    if (total.undecodable > 0) std::cout << "  profiles that do not decode: " << Grouped(total.undecodable) << '\n';
    std::cout << "\ncustomers by stage" << (rules ? "" : " (stage index; pass --rules for names)") << '\n';
    if (total.stages.empty()) std::cout << "  -\n";
    for (const auto& [stage, n] : total.stages) {
      std::cout << "  " << Padded(StageName(rules.get(), stage), 20, false) << Padded(Grouped(n), 12, true) << '\n';
    }
    char avg[64];
    std::snprintf(avg, sizeof avg, "%.1f", per_customer);
    char encoded_avg[64];
    std::snprintf(encoded_avg, sizeof encoded_avg, "%.1f", encoded_per_customer);
    std::cout << "\nbytes (RocksDB SST files + memtables, approximate)\n"
              << "  profiles  " << Padded(Grouped(bytes.profiles), 14, true) << "   " << avg
              << " per customer (encoded: " << encoded_avg << ")\n"
              << "  outbox    " << Padded(Grouped(bytes.outbox), 14, true) << '\n'
              << "  meta      " << Padded(Grouped(bytes.meta), 14, true) << '\n'
              << "  directory " << Padded(Grouped(directory_bytes), 14, true) << "   all files, logs included\n";
  }
  return total.undecodable > 0 ? 1 : 0;
}

}  // namespace

void AddStateCommand(CLI::App& app, int* exit_code) {
  CLI::App* state = app.add_subcommand("state", "Look inside a state directory: one customer, or totals");
  state->require_subcommand(1);
  state->footer(
      "Both subcommands open the directory read-only: they change nothing and also work\n"
      "while a rapport run or replay is using it (they see the state as of their start).");

  auto get = std::make_shared<GetArgs>();
  CLI::App* get_cmd = state->add_subcommand("get", "Print one customer's profile as JSON");
  get_cmd->footer(
      "Exit status: 0 found, 1 no such customer (or --rules with errors), 2 bad usage or unreadable state.\n"
      "Example: rapport state get c-42 --state /var/lib/rapport --rules rules/packs/relationship");
  get_cmd->add_option("customer", get->customer, "The customer id")->required();
  get_cmd->add_option("--state", get->state, "The state directory")->required();
  get_cmd->add_option("--partition", get->partition, "Look in this partition only (default: every partition)");
  get_cmd->add_option("--rules", get->rules,
                      "Rule files or directories (repeatable): name the stage, give aggregates their values");
  get_cmd->add_flag("--compact", get->compact, "One line of JSON instead of indented");
  get_cmd->callback([get, exit_code] { *exit_code = RunGet(*get); });

  auto stats = std::make_shared<StatsArgs>();
  CLI::App* stats_cmd = state->add_subcommand("stats", "Customers, timers, outbox, stages and bytes on disk");
  stats_cmd->footer(
      "Reads every profile (a full scan). Exit status: 0 ok, 1 a profile does not decode (or --rules\n"
      "with errors), 2 bad usage or unreadable state.\n"
      "Example: rapport state stats --state /var/lib/rapport --rules rules/packs/relationship");
  stats_cmd->add_option("--state", stats->state, "The state directory")->required();
  stats_cmd->add_option("--rules", stats->rules, "Rule files or directories (repeatable): name the stages");
  stats_cmd->add_option("--format", stats->format, "Output format: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  stats_cmd->callback([stats, exit_code] { *exit_code = RunStats(*stats); });
}

}  // namespace rapport::cli

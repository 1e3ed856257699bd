// rapport explain: why each campaign did or did not fire for one customer.
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "rapport/connectors/explain.h"
#include "rapport/engine/json_writer.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

struct ExplainArgs {
  std::vector<std::string> rules;
  std::string events;
  std::string customer;
  std::string campaign;
  std::string until;
  std::string format = "text";
  std::string coupon_secret;
};

int RunExplainCommand(const ExplainArgs& args) {
  rules::LoadResult loaded = rules::LoadRules(args.rules);
  for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
  if (!loaded.rules) {
    std::cerr << "rapport explain: the rules have errors; nothing was replayed\n";
    return 1;
  }
  if (!args.campaign.empty() && !loaded.rules->FindCampaign(args.campaign)) {
    std::cerr << "rapport explain: --campaign `" << args.campaign << "` is not a campaign of these rules\n";
    return 2;
  }
  connectors::ExplainOptions options;
  options.events_path = args.events;
  options.customer = args.customer;
  if (!args.until.empty()) {
    options.until = ParseRfc3339(args.until);
    if (!options.until) {
      std::cerr << "rapport explain: --until `" << args.until << "` is not an RFC 3339 time with a zone "
                << "(e.g. 2026-06-01T00:00:00Z)\n";
      return 2;
    }
  }
  // The same secret as `rapport replay`, so codes and action ids match its output.
  options.coupon_secret = args.coupon_secret;
  if (options.coupon_secret.empty()) {
    const char* env = std::getenv("RAPPORT_COUPON_SECRET");
    options.coupon_secret = env != nullptr && *env != '\0' ? env : "rapport-replay-default-secret";
  }
  auto run = connectors::RunExplain(options, loaded.rules);
  if (!run.ok()) {
    std::cerr << "rapport explain: " << run.status().ToString() << '\n';
    return 2;
  }
  connectors::ExplainFormat format;
  format.customer = args.customer;
  format.campaign = args.campaign;
  size_t events = 0, timers = 0;
  for (const auto& s : run->steps) ++(s.kind == connectors::ExplainStep::Kind::kEvent ? events : timers);
  if (args.format == "json") {
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("customer");
    w.String(args.customer);
    w.Key("lines");
    w.Int(static_cast<int64_t>(run->lines));
    w.Key("accepted");
    w.Int(static_cast<int64_t>(run->accepted));
    w.Key("rejected");
    w.Int(static_cast<int64_t>(run->rejected));
    w.Key("customer_events");
    w.Int(static_cast<int64_t>(run->customer_events));
    w.Key("final_clock");
    if (run->final_clock) {
      w.String(FormatRfc3339(*run->final_clock));
    } else {
      w.Null();
    }
    w.Key("steps");
    w.Raw(connectors::ExplanationJson(run->steps, format));
    w.EndObject();
    std::cout << out << '\n';
  } else {
    std::cout << "customer " << args.customer << ": " << events << (events == 1 ? " event, " : " events, ") << timers
              << (timers == 1 ? " timer" : " timers") << " came due; " << run->accepted << " events applied";
    if (run->rejected > 0) std::cout << ", " << run->rejected << " rejected";
    if (run->final_clock) std::cout << ", clock at " << FormatRfc3339(*run->final_clock);
    std::cout << "\n\n" << connectors::FormatExplanation(run->steps, format);
  }
  if (run->customer_events == 0) {
    std::cerr << "rapport explain: no event of customer `" << args.customer << "` in " << args.events << '\n';
    return 1;
  }
  return 0;
}

}  // namespace

void AddExplainCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ExplainArgs>();
  CLI::App* cmd =
      app.add_subcommand("explain", "Replay events and show, step by step, why campaigns fired or not for a customer");
  cmd->footer(
      "Every event is applied (other customers move the clock and fire timers too); only the customer's steps are\n"
      "shown: each event and timer, the campaigns offered with the value of each part of their condition,\n"
      "suppressions and held-out firings, timers armed, replaced and fired, and the actions fired.\n"
      "Exit status: 0, 1 when the rules have errors or the customer has no event, 2 on bad usage or I/O errors.\n"
      "Example: rapport explain --rules rules/packs/relationship --events events.jsonl --customer c-17");
  cmd->add_option("--rules", args->rules, "Rule files or directories (repeatable)")->required();
  cmd->add_option("--events", args->events, "Events as JSON lines; - reads stdin")->required();
  cmd->add_option("--customer", args->customer, "The customer to explain")->required();
  cmd->add_option("--campaign", args->campaign, "Only this campaign's decisions");
  cmd->add_option("--until", args->until,
                  "Fire timers due up to this time at the end (RFC 3339); default: the last event's time");
  cmd->add_option("--format", args->format, "Output format: text (default) or json, for tools")
      ->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--coupon-secret", args->coupon_secret, "Secret for coupon codes (default: $RAPPORT_COUPON_SECRET)");
  cmd->callback([args, exit_code] { *exit_code = RunExplainCommand(*args); });
}

}  // namespace rapport::cli

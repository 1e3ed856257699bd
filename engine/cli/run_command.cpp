// rapport run: the engine as a daemon (docs/running.md).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include "commands.h"
#include "rapport/connectors/daemon.h"
#include "rapport/connectors/run_config.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

void LogLine(const std::string& line) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s rapport: %s\n", stamp, line.c_str());
}

Result<std::shared_ptr<const rules::RuleSet>> LoadRuleSet(const std::string& path) {
  rules::LoadResult loaded = rules::LoadRules({path});
  std::string errors;
  for (const auto& d : loaded.diagnostics) {
    if (!loaded.rules) errors += "\n  " + d.ToString();
  }
  if (!loaded.rules) return Status::InvalidArgument("the rules in " + path + " do not compile:" + errors);
  return std::shared_ptr<const rules::RuleSet>(loaded.rules);
}

// Turns SIGINT/SIGTERM into a graceful stop and SIGHUP into a reload. The
// signals are blocked in every thread and taken here with sigtimedwait, so
// nothing runs in a signal handler.
class SignalThread {
 public:
  explicit SignalThread(connectors::Daemon& daemon) : daemon_(daemon) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~SignalThread() {
    done_ = true;
    thread_.join();
  }
  static void BlockInThisThread() {
    sigset_t set = Set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

 private:
  static sigset_t Set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
  }
  void Loop() {
    sigset_t set = Set();
    timespec wait{0, 200 * 1000 * 1000};
    while (!done_) {
      int sig = sigtimedwait(&set, nullptr, &wait);
      if (sig == SIGHUP) {
        LogLine("SIGHUP: reloading the rules");
        daemon_.RequestReload();
      } else if (sig == SIGINT || sig == SIGTERM) {
        LogLine(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": finishing the batch and stopping");
        daemon_.RequestStop();
      }
    }
  }
  connectors::Daemon& daemon_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int Run(const std::string& config_path) {
  auto config = connectors::LoadRunConfig(config_path, connectors::ProcessEnvironment);
  if (!config.ok()) {
    std::cerr << "rapport run: " << config.status().message() << '\n';
    return 2;
  }
  auto rules = LoadRuleSet(config->rules);
  if (!rules.ok()) {
    std::cerr << "rapport run: " << rules.status().message() << '\n';
    return 1;
  }
  if (config->coupon_secret.empty()) {
    LogLine("warning: no coupon_secret in the config; coupon codes use a built-in default and can be guessed");
  }
  SignalThread::BlockInThisThread();  // before any thread starts, so all inherit it
  // A webhook peer that closes mid-request must give an error, not end the process.
  std::signal(SIGPIPE, SIG_IGN);
  connectors::DaemonOptions options;
  const std::string rules_path = config->rules;
  options.reload_rules = [rules_path] { return LoadRuleSet(rules_path); };
  options.log = LogLine;
  auto daemon = connectors::Daemon::Open(*config, *rules, options);
  if (!daemon.ok()) {
    std::cerr << "rapport run: " << daemon.status().message() << '\n';
    return 2;
  }
  LogLine("started: " + std::to_string((*rules)->campaigns.size()) + " campaigns from " + config->rules +
          ", state in " + config->state_dir);
  Status result;
  {
    SignalThread signals(**daemon);
    result = (*daemon)->Run();
  }
  connectors::DaemonStats stats = (*daemon)->stats();
  LogLine("stopped: " + std::to_string(stats.events) + " events (" + std::to_string(stats.rejected) + " rejected), " +
          std::to_string(stats.actions) + " actions fired, " + std::to_string(stats.delivered) + " delivered, " +
          std::to_string(stats.commits) + " commits");
  if (!result.ok()) {
    std::cerr << "rapport run: " << result.ToString() << '\n';
    return 2;
  }
  return 0;
}

}  // namespace

void AddRunCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("run",
                                 "Run the engine as a daemon: a Kafka consumer group (or a file/stdin) in, "
                                 "actions out through the outbox to the configured sinks");
  auto config = std::make_shared<std::string>();
  cmd->add_option("--config", *config, "The YAML config (see deploy/rapport.yaml and docs/running.md)")->required();
  cmd->footer(
      "Signals: SIGTERM/SIGINT finish the batch, commit, flush the outbox and leave the group; "
      "SIGHUP reloads the rules (a set with errors is refused and the running one stays).");
  cmd->callback([config, exit_code] { *exit_code = Run(*config); });
}

}  // namespace rapport::cli

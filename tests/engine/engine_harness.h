// Test harness: a Processor on a real RocksDB store in a temporary directory,
// fed with JSON event lines, collecting the actions it fires.
#pragma once

#include <simdjson.h>

#include <memory>
#include <string>
#include <vector>

#include "rapport/engine/processor.h"
#include "rapport/rules/rule_set.h"
#include "temp_dir.h"

namespace rapport::testing {

struct CollectedAction {
  std::string campaign, customer, ts, json;
  bool held_out = false;
};

class CollectingSink : public ActionSink {
 public:
  void Deliver(const FiredAction& a) override {
    actions.push_back({a.campaign->id, std::string(a.customer_id), FormatRfc3339(a.ts), std::string(a.json),
                       a.held_out});
  }
  std::vector<CollectedAction> actions;
};

class EngineHarness {
 public:
  // Loads `rules_yaml` (must compile) and opens a store in a temp dir.
  // `cache_capacity` is the processor's (ProcessorOptions::cache_capacity).
  explicit EngineHarness(const std::string& rules_yaml, const std::string& state_dir = "",
                         size_t cache_capacity = size_t{1} << 20);
  // Decodes and applies one event line; throws when the line is rejected.
  void Send(const std::string& json_line);
  // Fires timers up to `rfc3339` and commits.
  void AdvanceTo(const std::string& rfc3339);
  void Commit();
  // Drops the processor and store and opens them again on the same directory.
  void Restart();
  // The customer's profile as stored in RocksDB after a commit.
  Profile StoredProfile(const std::string& customer);

  std::vector<std::string> Fired() const;  // "campaign customer ts" per action
  CollectingSink sink;
  std::unique_ptr<Processor> processor;
  std::unique_ptr<StateStore> store;
  std::shared_ptr<const rules::RuleSet> rules;

 private:
  void Open();
  TempDir dir_;
  std::string state_dir_;
  size_t cache_capacity_;
  EventDecoder decoder_;
  std::string padded_;
};

}  // namespace rapport::testing

#include "engine_harness.h"

#include <stdexcept>

namespace rapport::testing {

EngineHarness::EngineHarness(const std::string& rules_yaml, const std::string& state_dir, size_t cache_capacity)
    : state_dir_(state_dir.empty() ? dir_.File("state") : state_dir), cache_capacity_(cache_capacity) {
  rules::LoadResult loaded = rules::LoadRulesFromStrings({{"test.yaml", rules_yaml}});
  if (!loaded.rules) {
    std::string all;
    for (const auto& d : loaded.diagnostics) all += d.ToString() + "\n";
    throw std::runtime_error("rules do not compile:\n" + all);
  }
  rules = loaded.rules;
  Open();
}

void EngineHarness::Open() {
  auto s = StateStore::Open(state_dir_, StateStoreOptions{});
  if (!s.ok()) throw std::runtime_error(s.status().ToString());
  store = std::move(*s);
  ProcessorOptions options;
  options.coupon_secret = "test-secret";
  options.cache_capacity = cache_capacity_;
  auto p = Processor::Open(*store, rules, sink, options);
  if (!p.ok()) throw std::runtime_error(p.status().ToString());
  processor = std::move(*p);
}

void EngineHarness::Send(const std::string& line) {
  padded_ = line;
  padded_.append(kEventPadding, '\0');
  Event event;
  Rejection rejection;
  if (!decoder_.Decode(std::string_view(padded_.data(), line.size()), &event, &rejection)) {
    throw std::runtime_error("event rejected: " + rejection.message);
  }
  Status s = processor->Apply(event);
  if (!s.ok()) throw std::runtime_error(s.ToString());
}

void EngineHarness::AdvanceTo(const std::string& rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  if (!t) throw std::runtime_error("bad time " + rfc3339);
  Status s = processor->AdvanceTo(*t);
  if (!s.ok()) throw std::runtime_error(s.ToString());
  Commit();
}

void EngineHarness::Commit() {
  Status s = processor->Commit("test");
  if (!s.ok()) throw std::runtime_error(s.ToString());
}

void EngineHarness::Restart() {
  Commit();
  processor.reset();
  store.reset();
  Open();
}

Profile EngineHarness::StoredProfile(const std::string& customer) {
  std::string value;
  bool found = false;
  Status s = store->GetProfile(0, customer, &value, &found);
  if (!s.ok() || !found) throw std::runtime_error("no stored profile for " + customer);
  Profile p;
  s = DecodeProfile(value, &p);
  if (!s.ok()) throw std::runtime_error(s.ToString());
  return p;
}

std::vector<std::string> EngineHarness::Fired() const {
  std::vector<std::string> out;
  for (const auto& a : sink.actions) out.push_back(a.campaign + " " + a.customer + " " + a.ts + (a.held_out ? " held_out" : ""));
  return out;
}

}  // namespace rapport::testing

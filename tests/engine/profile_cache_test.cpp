// ProfileCache against a map: ids and bytes of every length around the
// entry's inline limits, moved between inline and heap storage, through pool
// growth and evictions.
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>

#include "processor/profile_cache.h"

using namespace rapport;

namespace {

std::string Text(std::mt19937& rng, size_t size) {
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// Lengths that straddle the entry's limits (44 bytes of id beside a block,
// 56 inline) more often than a uniform draw would.
size_t Length(std::mt19937& rng, size_t max) {
  static constexpr size_t kEdges[] = {0, 1, 11, 12, 43, 44, 45, 55, 56, 57, 100};
  if (rng() % 2 == 0) return std::min(kEdges[rng() % std::size(kEdges)], max);
  return rng() % (max + 1);
}

}  // namespace

TEST_CASE("profile cache entries keep their id and bytes across every size change") {
  std::mt19937 rng(7);
  ProfileCache cache;
  struct Model {
    std::string bytes;
    bool dirty = false;
  };
  std::map<std::string, Model> model;
  std::vector<std::string> ids;

  auto check_all = [&] {
    REQUIRE(cache.size() == model.size());
    for (const auto& [id, m] : model) {
      const uint32_t index = cache.Find(id, ProfileCache::HashOf(id));
      REQUIRE(index != ProfileCache::kNotFound);
      CHECK(cache.customer(index) == id);
      CHECK(cache.bytes(index) == m.bytes);
      CHECK(cache.dirty(index) == m.dirty);
    }
  };

  for (int step = 0; step < 20000; ++step) {
    const unsigned op = rng() % 200;
    if (op < 60 || ids.empty()) {
      std::string id = Text(rng, std::max<size_t>(1, Length(rng, 256)));
      if (model.count(id) != 0) continue;
      std::string bytes = Text(rng, Length(rng, 300));
      cache.Insert(id, ProfileCache::HashOf(id), bytes);
      model[id] = Model{bytes, false};
      ids.push_back(id);
    } else if (op < 199) {
      const std::string& id = ids[rng() % ids.size()];
      auto it = model.find(id);
      if (it == model.end()) continue;
      const uint32_t index = cache.Find(id, ProfileCache::HashOf(id));
      REQUIRE(index != ProfileCache::kNotFound);
      std::string bytes = Text(rng, Length(rng, 300));
      cache.SetBytes(index, bytes, true);
      const bool dirty = rng() % 2 == 0;
      cache.set_dirty(index, dirty);
      it->second = Model{bytes, dirty};
      REQUIRE(cache.customer(index) == id);
      REQUIRE(cache.bytes(index) == bytes);
    } else {
      size_t clean = 0;
      for (const auto& [id, m] : model) clean += m.dirty ? 0 : 1;
      const size_t target = model.size() - clean / 2;
      size_t evicted = 0;
      cache.Evict(target, [&](size_t) { ++evicted; });
      // Only clean entries go; which ones is the sweep's choice.
      for (auto it = model.begin(); it != model.end();) {
        if (cache.Find(it->first, ProfileCache::HashOf(it->first)) == ProfileCache::kNotFound) {
          CHECK_FALSE(it->second.dirty);
          it = model.erase(it);
          --evicted;
        } else {
          ++it;
        }
      }
      CHECK(evicted == 0);
      CHECK(cache.size() <= target);
    }
    if (step % 1000 == 0) check_all();
  }
  check_all();
  CHECK(model.size() > 100);
}

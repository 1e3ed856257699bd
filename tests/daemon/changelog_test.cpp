// The changelog against librdkafka's mock cluster: a restore from records
// written by earlier builds.
#include <catch2/catch.hpp>
#include <map>

#include "rapport/connectors/changelog.h"
#include "rapport/connectors/embedded_broker.h"
#include "rapport/engine/state_store.h"
#include "temp_dir.h"

namespace rapport::testing {

TEST_CASE("changelog: a restore skips the records of the former timers family and applies the rest",
          "[daemon][kafka]") {
  auto broker = connectors::EmbeddedBroker::Start(1);
  REQUIRE(broker.ok());
  REQUIRE((*broker)->CreateTopic("app-changelog", 1).ok());
  connectors::ChangelogOptions options;
  options.topic = "app-changelog";
  options.properties = {{"bootstrap.servers", (*broker)->bootstrap_servers()}};
  auto changelog = connectors::Changelog::Open(options);
  REQUIRE(changelog.ok());
  REQUIRE((*changelog)->EnsureTopic(1).ok());

  // One commit as an earlier build wrote it: the profile, and the customer's
  // timer key in family 't' (partition, due, customer; an empty value).
  std::string profile_key, timer_key;
  AppendProfileKey(&profile_key, 0, "amy");
  timer_key = profile_key;
  timer_key.insert(4, std::string(8, '\x80'));
  const std::vector<StateChange> commit = {{StateFamily::kProfiles, profile_key, "profile-bytes", false},
                                           {static_cast<StateFamily>('t'), timer_key, "", false}};
  auto end = (*changelog)->OnChanges(0, "7", commit, true);
  REQUIRE(end.ok());
  CHECK(*end == 2);

  TempDir dir;
  auto store = StateStore::Open(dir.File("state"), StateStoreOptions{});
  REQUIRE(store.ok());
  auto restored = (*changelog)->Restore(**store, 0, /*committed_input=*/7, "test");
  REQUIRE(restored.ok());
  CHECK(restored->restored);
  CHECK(restored->records == 2);
  CHECK(restored->skipped == 1);
  std::map<std::string, std::string> profiles;
  REQUIRE((*store)->ForEachProfile(0, [&](std::string_view customer, std::string_view value) {
    profiles[std::string(customer)] = std::string(value);
  }).ok());
  CHECK(profiles == std::map<std::string, std::string>{{"amy", "profile-bytes"}});
  auto checkpoint = (*store)->GetChangelogOffset(0);
  REQUIRE(checkpoint.ok());
  CHECK(*checkpoint == std::optional<int64_t>(2));
}

}  // namespace rapport::testing

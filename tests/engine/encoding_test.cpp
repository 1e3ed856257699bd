// Encodings: varints, key order, and profile round trips.
#include <catch2/catch.hpp>
#include <random>

#include "rapport/engine/coding.h"
#include "rapport/engine/profile.h"
#include "rapport/engine/state_store.h"

using namespace rapport;

TEST_CASE("varints and ordered integers round-trip at their edges") {
  std::string buf;
  const int64_t values[] = {0, 1, -1, 63, -64, 127, 128, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
  for (int64_t v : values) {
    coding::PutSignedVarint(&buf, v);
    coding::PutVarint(&buf, static_cast<uint64_t>(v));
    coding::PutOrderedInt64(&buf, v);
  }
  coding::Reader in(buf);
  for (int64_t v : values) {
    int64_t s, o;
    uint64_t u;
    REQUIRE(in.GetSignedVarint(&s));
    REQUIRE(in.GetVarint(&u));
    REQUIRE(in.GetOrderedInt64(&o));
    CHECK(s == v);
    CHECK(u == static_cast<uint64_t>(v));
    CHECK(o == v);
  }
  CHECK(in.empty());
  uint64_t u;
  coding::Reader truncated(std::string_view("\x80\x80", 2));
  CHECK_FALSE(truncated.GetVarint(&u));
}

TEST_CASE("profiles round-trip through their encoding") {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    Profile p;
    const int64_t base = static_cast<int64_t>(rng() % 4000000000000ULL) - 1000000000000LL;
    p.first_seen_ms = base;
    p.last_seen_ms = base + static_cast<int64_t>(rng() % 100000000);
    p.total_spent_cents = static_cast<int64_t>(rng() % 1000000) - 1000;
    p.stage = static_cast<uint8_t>(rng() % 6);
    for (uint32_t t = 0; t < rng() % 5 + 1; ++t) {
      TypeStats& s = p.Type(t * 7);
      s.count = rng() % 1000 + 1;
      s.last_ms = base + static_cast<int64_t>(rng() % 1000000);
    }
    for (uint32_t c = 0; c < rng() % 4; ++c) {
      CampaignState& s = p.Campaign(c);
      if (rng() % 2) s.armed_due_ms = base + 30LL * 86400000;
      s.fired = static_cast<uint32_t>(rng() % 3);
      if (s.fired > 0) s.last_fired_ms = base + 1;
      for (uint32_t k = 0; k < s.fired; ++k) s.recent_ms.push_back(base + k);
    }
    const std::vector<std::pair<int64_t, int64_t>> window = {{base, 5}, {base + 10, -7}};
    const std::string text("page\0with nul", 13);
    p.Aggregate(1).kind = AggregateState::Kind::kNumber;
    p.Aggregate(1).number = -1234;
    p.Aggregate(1).window = window;
    p.Aggregate(2).kind = AggregateState::Kind::kString;
    p.Aggregate(2).text = text;
    p.Aggregate(3).kind = AggregateState::Kind::kBool;
    p.Aggregate(3).boolean = true;

    std::string bytes;
    EncodeProfile(p, &bytes);
    Profile q;
    REQUIRE(DecodeProfile(bytes, &q).ok());
    std::string again;
    p.Compact();
    EncodeProfile(q, &again);
    CHECK(again == bytes);
    CHECK(q.first_seen_ms == p.first_seen_ms);
    CHECK(q.last_seen_ms == p.last_seen_ms);
    CHECK(q.total_spent_cents == p.total_spent_cents);
    CHECK(q.stage == p.stage);
    REQUIRE(q.types.size() == p.types.size());
    for (size_t i = 0; i < p.types.size(); ++i) {
      CHECK(q.types[i].count == p.types[i].count);
      CHECK(q.types[i].last_ms == p.types[i].last_ms);
    }
    REQUIRE(q.campaigns.size() == p.campaigns.size());
    for (size_t i = 0; i < p.campaigns.size(); ++i) {
      CHECK(q.campaigns[i].armed_due_ms == p.campaigns[i].armed_due_ms);
      CHECK(q.campaigns[i].fired == p.campaigns[i].fired);
      CHECK(q.campaigns[i].recent_ms == p.campaigns[i].recent_ms);
    }
    CHECK(q.aggregates[0].number == -1234);
    CHECK(q.aggregates[0].window == window);
    CHECK(q.aggregates[1].text == text);
    CHECK(q.aggregates[2].boolean);
  }
}

TEST_CASE("a typical standard-pack profile is small") {
  Profile p;
  p.first_seen_ms = 1767225600000;
  p.last_seen_ms = p.first_seen_ms + 40LL * 86400000;
  p.total_spent_cents = 12345;
  p.stage = 3;
  for (uint32_t t = 0; t < 3; ++t) {
    TypeStats& s = p.Type(t);
    s.count = 5;
    s.last_ms = p.last_seen_ms - t * 1000;
  }
  CampaignState& c = p.Campaign(0);
  c.armed_due_ms = p.last_seen_ms + 30LL * 86400000;
  std::string bytes;
  EncodeProfile(p, &bytes);
  // With a 12-byte key (partition + "c-123456") it must fit the 64-byte budget.
  CHECK(bytes.size() + 12 <= 64);
}

TEST_CASE("corrupt profile bytes are a Corruption status, never a crash") {
  Profile p;
  p.first_seen_ms = 1;
  p.Type(1).count = 2;
  std::string bytes;
  EncodeProfile(p, &bytes);
  Profile q;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    Status s = DecodeProfile(std::string_view(bytes.data(), cut), &q);
    CHECK(s.code() == StatusCode::kCorruption);
  }
  std::string wrong = bytes;
  wrong[0] = 99;
  CHECK(DecodeProfile(wrong, &q).message().find("version 99") != std::string::npos);
  CHECK(DecodeProfile(bytes + "x", &q).code() == StatusCode::kCorruption);
}

TEST_CASE("the cached form gives back exactly the profile encoded, and the stored form when it can") {
  Profile p;
  p.first_seen_ms = 1767225600000;
  p.last_seen_ms = p.first_seen_ms + 5000;
  p.Type(3).count = 2;
  p.Type(3).last_ms = p.last_seen_ms;
  p.Campaign(9).fired = 1;
  p.Campaign(9).last_fired_ms = p.first_seen_ms;
  p.Campaign(4).armed_due_ms = p.last_seen_ms + 1000;
  p.Campaign(7);  // holds nothing: the stored form drops it, the cached one keeps its place

  std::string cached, stored;
  CHECK_FALSE(EncodeProfile(p, &cached, ProfileForm::kCached));
  CHECK(EncodeProfile(p, &stored));
  CHECK(cached != stored);
  Profile q;
  REQUIRE(DecodeProfile(cached, &q, ProfileForm::kCached).ok());
  // In symbol order, whatever the order they were added in.
  REQUIRE(q.campaigns.size() == 3);
  CHECK(q.campaigns[0].campaign == 4);
  CHECK(q.campaigns[1].campaign == 7);
  CHECK(q.campaigns[1].empty());
  CHECK(q.campaigns[2].campaign == 9);
  p.Compact();
  std::string compacted;
  CHECK(EncodeProfile(p, &compacted, ProfileForm::kCached));
  CHECK(compacted == stored);

  // Events only of uncounted types: first_seen without a type entry.
  Profile untyped;
  untyped.first_seen_ms = 0;  // 1970-01-01, which must not read as unset
  untyped.last_seen_ms = 10;
  cached.clear();
  CHECK_FALSE(EncodeProfile(untyped, &cached, ProfileForm::kCached));
  REQUIRE(DecodeProfile(cached, &q, ProfileForm::kCached).ok());
  CHECK(q.first_seen_ms == 0);
  CHECK(q.last_seen_ms == 10);
  CHECK(DecodeProfile(cached, &q).code() == StatusCode::kCorruption);  // not a stored profile
  Profile fresh;
  cached.clear();
  CHECK(EncodeProfile(fresh, &cached, ProfileForm::kCached));
  REQUIRE(DecodeProfile(cached, &q, ProfileForm::kCached).ok());
  CHECK(q.first_seen_ms == kNoTime);
  CHECK(q.last_seen_ms == kNoTime);
}

TEST_CASE("decoding into a used profile leaves nothing of the previous one") {
  Profile big;
  big.first_seen_ms = 100;
  big.last_seen_ms = 200;
  big.total_spent_cents = 5;
  big.stage = 2;
  for (uint32_t t = 0; t < 4; ++t) big.Type(t).count = 1;
  big.Campaign(1).fired = 3;
  big.Campaign(1).last_fired_ms = 150;
  big.Campaign(1).recent_ms = {120, 150};
  big.Campaign(1).last_held_out = true;
  big.Aggregate(0).kind = AggregateState::Kind::kString;
  big.Aggregate(0).text = "EUR";
  big.Aggregate(0).window = {{100, 1}};
  Profile small;
  small.first_seen_ms = 300;
  small.last_seen_ms = 300;
  small.Type(2).count = 1;
  small.Type(2).last_ms = 300;
  small.Campaign(1).armed_due_ms = 400;
  small.Aggregate(0).kind = AggregateState::Kind::kNumber;
  small.Aggregate(0).number = 7;

  std::string big_bytes, small_bytes, again;
  EncodeProfile(big, &big_bytes);
  EncodeProfile(small, &small_bytes);
  Profile q;
  REQUIRE(DecodeProfile(big_bytes, &q).ok());
  REQUIRE(DecodeProfile(small_bytes, &q).ok());
  EncodeProfile(q, &again);
  CHECK(again == small_bytes);
  CHECK(q.total_spent_cents == 0);
  CHECK(q.stage == 0);
  REQUIRE(q.campaigns.size() == 1);
  CHECK(q.campaigns[0].fired == 0);
  CHECK(q.campaigns[0].last_fired_ms == kNoTime);
  CHECK(q.campaigns[0].recent_ms.empty());
  CHECK_FALSE(q.campaigns[0].last_held_out);
  REQUIRE(q.aggregates.size() == 1);
  CHECK(q.aggregates[0].text.empty());
  CHECK(q.aggregates[0].window.empty());
  CHECK(q.aggregates[0].number == 7);
}

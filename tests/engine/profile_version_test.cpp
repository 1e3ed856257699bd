// Profile format versions: version 1 profiles, written before conversion
// goals existed, still decode; version 2 keeps the held-out and converted
// flags of the latest firing (docs/state-format.md).
#include <catch2/catch.hpp>

#include "rapport/engine/profile.h"

using namespace rapport;

namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// Customer `zed` of docs/state-format.md: one visit and an armed timer, in
// version 1; the byte at kFlags is the campaign entry's flags.
const std::string kZedVersion1 = Bytes({0x01, 0x80, 0xf0, 0x8e, 0xeb, 0x94, 0x67, 0x00, 0x00, 0x00, 0x01, 0x02,
                                        0x01, 0x00, 0x01, 0x00, 0x01, 0x80, 0xa0, 0xf6, 0xa7, 0x13, 0x00});
constexpr size_t kFlags = 16;

}  // namespace

TEST_CASE("a version 1 profile decodes, with no held-out or converted firing, and is written back as version 2") {
  Profile p;
  REQUIRE(DecodeProfile(kZedVersion1, &p).ok());
  REQUIRE(p.campaigns.size() == 1);
  CHECK(p.campaigns[0].armed_due_ms == p.first_seen_ms + 30LL * 86400000);
  CHECK_FALSE(p.campaigns[0].last_held_out);
  CHECK_FALSE(p.campaigns[0].converted);
  std::string again;
  EncodeProfile(p, &again);
  CHECK(again[0] == 2);
  CHECK(again.substr(1) == kZedVersion1.substr(1));
}

TEST_CASE("version 2 keeps the latest firing's held-out and converted flags") {
  Profile p;
  p.first_seen_ms = 1000;
  p.last_seen_ms = 2000;
  p.Type(0).count = 1;
  p.Type(0).last_ms = 2000;
  for (int i = 0; i < 4; ++i) {
    CampaignState& c = p.Campaign(static_cast<uint32_t>(i));
    c.fired = 1;
    c.last_fired_ms = 1500;
    c.last_held_out = (i & 1) != 0;
    c.converted = (i & 2) != 0;
  }
  std::string bytes;
  EncodeProfile(p, &bytes);
  Profile q;
  REQUIRE(DecodeProfile(bytes, &q).ok());
  REQUIRE(q.campaigns.size() == 4);
  for (int i = 0; i < 4; ++i) {
    CHECK(q.campaigns[i].last_held_out == ((i & 1) != 0));
    CHECK(q.campaigns[i].converted == ((i & 2) != 0));
  }
}

TEST_CASE("campaign flags a version does not define are corruption") {
  Profile p;
  std::string v1_with_v2_flag = kZedVersion1;
  v1_with_v2_flag[kFlags] = 0x01 | 0x08;  // held out: version 2 only
  CHECK(DecodeProfile(v1_with_v2_flag, &p).code() == StatusCode::kCorruption);
  std::string v2_held_out_without_firing = kZedVersion1;
  v2_held_out_without_firing[0] = 2;
  v2_held_out_without_firing[kFlags] = 0x01 | 0x08;
  CHECK(DecodeProfile(v2_held_out_without_firing, &p).message().find("campaign flags") != std::string::npos);
  std::string v2_unknown_flag = kZedVersion1;
  v2_unknown_flag[0] = 2;
  v2_unknown_flag[kFlags] = 0x01 | 0x40;
  CHECK(DecodeProfile(v2_unknown_flag, &p).code() == StatusCode::kCorruption);
  std::string v2 = kZedVersion1;
  v2[0] = 2;
  CHECK(DecodeProfile(v2, &p).ok());
}

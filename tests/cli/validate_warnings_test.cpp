// `rapport validate` with warnings: printed like errors, exit 0 unless
// --strict, and in --format json with their severity.
#include <simdjson.h>

#include <catch2/catch.hpp>

#include "temp_dir.h"

using namespace rapport::testing;

namespace {

// One campaign that never fires and one without a limit.
constexpr const char* kWarned =
    "version: 1\n"
    "campaigns:\n"
    "  - id: never\n"
    "    trigger: {event: purchase}\n"
    "    condition: customer.purchases > 5 and customer.purchases < 3\n"
    "    limits: {once_per_customer: true}\n"
    "    actions: [{channel: email, template: t}]\n"
    "  - id: every-visit\n"
    "    trigger: {event: visit}\n"
    "    actions: [{channel: push, template: t}]\n";

}  // namespace

TEST_CASE("validate prints warnings like errors and still exits 0, and --strict makes them fail") {
  TempDir tmp;
  const std::string file = tmp.File("w.yaml");
  WriteFile(file, kWarned);
  std::string out;
  CHECK(RunCommand(RapportBinary() + " validate " + file, &out) == 0);
  CHECK(out == file +
                   ":5:16: warning[never-true]: the condition of campaign `never` can never be true: "
                   "`customer.purchases > 5` and `customer.purchases < 3` cannot both be true (the campaign never "
                   "fires)\n" +
                   file +
                   ":8:5: warning[unlimited]: campaign `every-visit` has no limit: a customer may get it on every "
                   "`visit` event (add `limits:` (once_per_customer, cooldown or at_most), or a condition that caps "
                   "it such as `customer.visits == 1`)\n"
                   "ok: 2 campaigns in 1 file, 2 warnings\n");

  CHECK(RunCommand(RapportBinary() + " validate --strict " + file, &out) == 1);
  CHECK(out.find("ok: 2 campaigns in 1 file, 2 warnings; refused by --strict\n") != std::string::npos);

  CHECK(RunCommand(RapportBinary() + " validate --format json " + file, &out) == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(out);
  CHECK(bool(doc["ok"]) == true);
  CHECK(int64_t(doc["errors"]) == 0);
  CHECK(int64_t(doc["warnings"]) == 2);
  simdjson::dom::array diags = doc["diagnostics"];
  REQUIRE(diags.size() == 2);
  CHECK(std::string_view(diags.at(0)["severity"]) == "warning");
  CHECK(std::string_view(diags.at(0)["code"]) == "never-true");
  CHECK(int64_t(diags.at(0)["code_number"]) == 30);
  CHECK(int64_t(diags.at(0)["line"]) == 5);
  CHECK(int64_t(diags.at(0)["column"]) == 16);
  CHECK(std::string_view(diags.at(1)["code"]) == "unlimited");
  CHECK(int64_t(diags.at(1)["code_number"]) == 31);

  CHECK(RunCommand(RapportBinary() + " validate --strict --format json " + file, &out) == 1);
  doc = parser.parse(out);
  CHECK(bool(doc["ok"]) == false);
}

TEST_CASE("the standard pack has no warnings, even with --strict") {
  std::string out;
  CHECK(RunCommand(RapportBinary() + " validate --strict '" + SourcePath("rules/packs/relationship") + "'", &out) == 0);
  CHECK(out == "ok: 3 campaigns in 3 files\n");
}

TEST_CASE("a rule set with errors is not linted: only its errors are shown") {
  TempDir tmp;
  WriteFile(tmp.File("a.yaml"), std::string(kWarned) +
                                    "  - id: broken\n    trigger: {event: vist}\n"
                                    "    actions: [{channel: email, template: t}]\n");
  std::string out;
  CHECK(RunCommand(RapportBinary() + " validate " + tmp.File("a.yaml"), &out) == 1);
  CHECK(out.find("warning[") == std::string::npos);
  CHECK(out.find("error[unknown-event-type]") != std::string::npos);
  CHECK(out.find("1 error; the rule set is refused") != std::string::npos);
}

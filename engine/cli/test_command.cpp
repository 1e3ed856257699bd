// rapport test: run campaign tests (*.test.yaml) and report what failed.
#include <fstream>
#include <iostream>

#include "commands.h"
#include "rapport/connectors/campaign_test.h"

namespace rapport::cli {
namespace {

struct TestArgs {
  std::vector<std::string> paths;
  std::string junit;
};

// `text` with every line indented by `indent`.
std::string Indent(const std::string& text, const std::string& indent) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out += indent + text.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return out;
}

int RunTestCommand(const TestArgs& args) {
  rules::Diagnostics missing;
  std::vector<std::string> paths = connectors::FindCampaignTests(args.paths, &missing);
  for (const auto& d : missing) std::cout << d.ToString() << '\n';
  std::vector<connectors::CampaignTestFile> files;
  size_t passed = 0, failed = 0, bad = 0;
  for (const std::string& path : paths) {
    auto result = connectors::RunCampaignTestFile(path);
    if (!result.ok()) {
      std::cerr << "rapport test: " << path << ": " << result.status().ToString() << '\n';
      return 2;
    }
    std::cout << path << '\n';
    if (!result->problems.empty()) {
      ++bad;
      for (const auto& d : result->problems) std::cout << "  " << d.ToString() << '\n';
      std::cout << "  the file has errors; none of its tests ran\n";
    }
    for (const auto& c : result->cases) {
      ++(c.passed ? passed : failed);
      std::cout << (c.passed ? "  ok    " : "  FAIL  ") << c.name << '\n';
      if (!c.passed) std::cout << Indent(c.report, "        ");
    }
    files.push_back(std::move(*result));
  }
  std::cout << "tests: " << passed << " passed, " << failed << " failed";
  if (bad > 0) std::cout << "; " << bad << (bad == 1 ? " file" : " files") << " with errors not run";
  std::cout << '\n';
  if (!args.junit.empty()) {
    std::ofstream out(args.junit, std::ios::binary | std::ios::trunc);
    out << connectors::FormatJunit(files);
    out.close();
    if (!out) {
      std::cerr << "rapport test: cannot write " << args.junit << '\n';
      return 2;
    }
  }
  if (bad > 0 || !missing.empty()) return 2;
  return failed > 0 ? 1 : 0;
}

}  // namespace

void AddTestCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<TestArgs>();
  CLI::App* cmd = app.add_subcommand("test", "Run campaign tests: made-up events in, expected actions checked");
  cmd->footer(
      "A directory is searched for *.test.yaml and *.test.yml. Each failure shows the expected against the actual\n"
      "actions, with times, and the explanation of the campaign concerned (as rapport explain prints it).\n"
      "The format is in docs/marketer-guide.md.\n"
      "Exit status: 0 when every test passes, 1 when any fails, 2 when a test file or its rules have errors\n"
      "(reported as file:line:col) or on bad usage.\n"
      "Example: rapport test rules/packs/relationship");
  cmd->add_option("paths", args->paths, "Test files or directories")->required();
  cmd->add_option("--junit", args->junit, "Also write the results as JUnit XML to this file");
  cmd->callback([args, exit_code] { *exit_code = RunTestCommand(*args); });
}

}  // namespace rapport::cli

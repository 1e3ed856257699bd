// rapport validate: compile rule files and report every problem.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <tuple>

#include "commands.h"
#include "rapport/engine/json_writer.h"
#include "rapport/rules/lint.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

struct ValidateArgs {
  std::vector<std::string> paths;
  std::string format = "text";
  bool strict = false;
};

int RunValidate(const ValidateArgs& args) {
  rules::LoadResult result = rules::LoadRules(args.paths);
  // Warnings are about rules that compile, so only a set without errors is
  // linted; they never refuse it (unless --strict asks this command to).
  if (result.rules) {
    rules::Diagnostics warnings = rules::Lint(*result.rules);
    result.diagnostics.insert(result.diagnostics.end(), warnings.begin(), warnings.end());
    std::stable_sort(result.diagnostics.begin(), result.diagnostics.end(),
                     [](const rules::Diagnostic& a, const rules::Diagnostic& b) {
                       return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
                     });
  }
  size_t errors = 0, warnings = 0;
  for (const auto& d : result.diagnostics) ++(d.severity == rules::Severity::kError ? errors : warnings);
  const bool refused = errors > 0 || (args.strict && warnings > 0);
  if (args.format == "json") {
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("ok");
    w.Bool(!refused);
    w.Key("errors");
    w.Int(static_cast<int64_t>(errors));
    w.Key("warnings");
    w.Int(static_cast<int64_t>(warnings));
    if (result.rules) {
      w.Key("campaigns");
      w.BeginArray();
      for (const auto& c : result.rules->campaigns) w.String(c.id);
      w.EndArray();
    }
    w.Key("diagnostics");
    w.BeginArray();
    for (const auto& d : result.diagnostics) {
      w.BeginObject();
      w.Key("file");
      w.String(d.file);
      w.Key("line");
      w.Int(d.line);
      w.Key("column");
      w.Int(d.column);
      w.Key("severity");
      w.String(d.severity == rules::Severity::kError ? "error" : "warning");
      w.Key("code");
      w.String(rules::CodeName(d.code));
      w.Key("code_number");
      w.Int(static_cast<int64_t>(d.code));
      w.Key("message");
      w.String(d.message);
      if (!d.hint.empty()) {
        w.Key("hint");
        w.String(d.hint);
      }
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::cout << out << '\n';
  } else {
    for (const auto& d : result.diagnostics) std::cout << d.ToString() << '\n';
    if (errors > 0) {
      std::cout << errors << (errors == 1 ? " error" : " errors");
      if (warnings > 0) std::cout << ", " << warnings << (warnings == 1 ? " warning" : " warnings");
      std::cout << "; the rule set is refused\n";
    } else {
      const auto& r = *result.rules;
      std::cout << "ok: " << r.campaigns.size() << (r.campaigns.size() == 1 ? " campaign" : " campaigns") << " in "
                << r.files.size() << (r.files.size() == 1 ? " file" : " files");
      if (warnings > 0) std::cout << ", " << warnings << (warnings == 1 ? " warning" : " warnings");
      if (refused) std::cout << "; refused by --strict";
      std::cout << '\n';
    }
  }
  return refused ? 1 : 0;
}

}  // namespace

void AddValidateCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ValidateArgs>();
  CLI::App* cmd = app.add_subcommand("validate", "Check rule files and report every error as file:line:col");
  cmd->footer(
      "Warnings (never-true, unlimited, overlap) point at rules that compile but probably do not do\n"
      "what was meant; they do not change the exit status unless --strict is given.\n"
      "Exit status: 0 when the rules compile, 1 when any file has an error (or, with --strict, a\n"
      "warning), 2 on bad usage.\n"
      "Example: rapport validate rules/packs/relationship");
  cmd->add_option("paths", args->paths, "Rule files or directories (searched for *.yaml, *.yml)")->required();
  cmd->add_option("--format", args->format, "Output format: text (default) or json, for editors and CI")
      ->check(CLI::IsMember({"text", "json"}));
  cmd->add_flag("--strict", args->strict, "Treat warnings as errors: exit 1 when there is any (for CI)");
  cmd->callback([args, exit_code] { *exit_code = RunValidate(*args); });
}

}  // namespace rapport::cli

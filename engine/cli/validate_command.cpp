// rapport validate: compile rule files and report every problem.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "rapport/engine/json_writer.h"
#include "rapport/rules/rule_set.h"

namespace rapport::cli {
namespace {

struct ValidateArgs {
  std::vector<std::string> paths;
  std::string format = "text";
};

int RunValidate(const ValidateArgs& args) {
  rules::LoadResult result = rules::LoadRules(args.paths);
  size_t errors = 0, warnings = 0;
  for (const auto& d : result.diagnostics) ++(d.severity == rules::Severity::kError ? errors : warnings);
  if (args.format == "json") {
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("ok");
    w.Bool(errors == 0);
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
      std::cout << '\n';
    }
  }
  return errors > 0 ? 1 : 0;
}

}  // namespace

void AddValidateCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ValidateArgs>();
  CLI::App* cmd = app.add_subcommand("validate", "Check rule files and report every error as file:line:col");
  cmd->footer(
      "Exit status: 0 when the rules compile, 1 when any file has an error, 2 on bad usage.\n"
      "Example: rapport validate rules/packs/relationship");
  cmd->add_option("paths", args->paths, "Rule files or directories (searched for *.yaml, *.yml)")->required();
  cmd->add_option("--format", args->format, "Output format: text (default) or json, for editors and CI")
      ->check(CLI::IsMember({"text", "json"}));
  cmd->callback([args, exit_code] { *exit_code = RunValidate(*args); });
}

}  // namespace rapport::cli

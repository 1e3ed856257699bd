// rapport: the command-line entry point.
#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Rapport: event-driven campaign automation.\n"
      "Reads store events, keeps per-customer state and fires the campaigns written in YAML rule files."};
  app.set_version_flag("--version", std::string("rapport ") + RAPPORT_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  rapport::cli::AddGenerateCommand(app, &exit_code);
  rapport::cli::AddValidateCommand(app, &exit_code);
  rapport::cli::AddReplayCommand(app, &exit_code);
  rapport::cli::AddDiffCommand(app, &exit_code);
  rapport::cli::AddRunCommand(app, &exit_code);
  rapport::cli::AddDemoCommand(app, &exit_code);
  rapport::cli::AddTestCommand(app, &exit_code);
  rapport::cli::AddExplainCommand(app, &exit_code);
  rapport::cli::AddStateCommand(app, &exit_code);
  rapport::cli::AddSchemaCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, whatever CLI11's own code.
    return app.exit(e) == 0 ? 0 : 2;
  }
  return exit_code;
}

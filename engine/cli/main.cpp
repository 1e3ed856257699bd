// rapport: the command-line entry point.
#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Rapport: event-driven campaign automation.\n"
               "Reads store events, keeps per-customer state and fires the campaigns written in YAML rule files."};
  app.set_version_flag("--version", std::string("rapport ") + RAPPORT_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  rapport::cli::AddGenerateCommand(app, &exit_code);
  rapport::cli::AddValidateCommand(app, &exit_code);
  rapport::cli::AddReplayCommand(app, &exit_code);
  rapport::cli::AddDemoCommand(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}

// rapport: the command-line entry point.
#include <CLI/CLI.hpp>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "commands.h"

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // Commits build large short-lived buffers (batches, sort arrays). glibc
  // raises its mmap threshold after the first one is freed and serves the
  // rest from the heap, where they fragment and stay: a 5M-customer replay
  // peaked 130 MB higher. A fixed threshold maps and unmaps them.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
#endif
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

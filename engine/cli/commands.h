// The subcommands of `rapport`. Each Add*Command registers itself on the app;
// when it runs, it stores its process exit code in *exit_code (0 success,
// 1 the input had errors, 2 usage or I/O failure).
#pragma once

#include <CLI/CLI.hpp>

namespace rapport::cli {

void AddGenerateCommand(CLI::App& app, int* exit_code);
void AddValidateCommand(CLI::App& app, int* exit_code);
void AddReplayCommand(CLI::App& app, int* exit_code);
void AddDemoCommand(CLI::App& app, int* exit_code);
void AddRunCommand(CLI::App& app, int* exit_code);
void AddDiffCommand(CLI::App& app, int* exit_code);
void AddTestCommand(CLI::App& app, int* exit_code);
void AddExplainCommand(CLI::App& app, int* exit_code);
void AddStateCommand(CLI::App& app, int* exit_code);
void AddSchemaCommand(CLI::App& app, int* exit_code);

}  // namespace rapport::cli

// Campaign tests (`rapport test`): YAML files beside the campaigns that feed
// made-up events through them and check what fires, what never fires and
// why a firing was suppressed. promtool's rule unit tests are the model; the
// format is documented in docs/marketer-guide.md.
//
// A test file names the rule files under test and holds test cases. Each
// case runs on its own: a fresh Processor over a scratch RocksDB directory,
// the case's fixtures and events applied in time order (a fixture's event
// before the case's own at the same time), then the clock advanced to the
// case's end (`until`, or else the latest time an event or expectation
// names) so that every timer due by then fires. Time is virtual: nothing
// reads the system clock, and a test gives the same result on every run.
//
// Every mistake in a test file (an unknown key, a time that does not parse,
// an event the decoder would reject, an unknown campaign or reason) is a
// Diagnostic with file:line:col and, where one helps, a hint; a file with
// any such problem, or whose rules do not load, runs no case.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "rapport/engine/status.h"
#include "rapport/rules/diagnostic.h"

namespace rapport::connectors {

struct CampaignTestCase {
  std::string name;
  std::string location;  // "file:line:col" of the case
  bool passed = false;
  double seconds = 0;
  // One line per failed expectation: "file:line:col: expected ..., but ...".
  std::vector<std::string> failures;
  // For people, when it failed: the failures, the actual actions (with
  // times) of the customers concerned, and the explanation of each
  // campaign concerned (what `rapport explain` prints). Empty when passed.
  std::string report;
};

struct CampaignTestFile {
  std::string path;
  // Errors in the file or in the rules under test; when any, no case ran.
  rules::Diagnostics problems;
  std::vector<CampaignTestCase> cases;

  bool ok() const;  // no problems and every case passed
};

// The test files among `paths`: a file is taken as given, a directory is
// searched recursively for *.test.yaml and *.test.yml. Sorted, without
// duplicates. A missing path, or no test file at all, is a problem.
std::vector<std::string> FindCampaignTests(const std::vector<std::string>& paths, rules::Diagnostics* problems);

// Loads the test file, checks it, and runs its cases. Errors: I/O and
// RocksDB failures only; problems with the file are in `problems`.
Result<CampaignTestFile> RunCampaignTestFile(const std::string& path);

// JUnit XML: a <testsuite> per file, a <testcase> per case with a <failure>
// holding its report; a file with problems is one <testcase> with an <error>.
std::string FormatJunit(std::span<const CampaignTestFile> files);

}  // namespace rapport::connectors

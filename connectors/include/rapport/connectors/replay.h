// Replay: runs a file or stdin of events through a Processor, start to end.
//
// Reads lines with JsonlReader, decodes each once, sends rejected ones to
// the dead-letter file with their line number and reason, applies the rest
// in order, commits every `commit_every` events (a bulk load: when its
// changes fill the cache) and at the end, and finally
// fires the timers due at or before the final clock (or `until`, if later).
// Bad input never stops a replay; only I/O and RocksDB failures do.
//
// Threads: with `threads` > 1, customers are split between that many
// processors, each on its own thread, while this thread reads and decodes
// the lines. Every processor sees every advance of the stream clock, so each
// fires its customers' timers at the same point of the stream as a single
// processor would, and the actions of each batch of events are merged back
// into the single-processor order (the event index, then timers in (due,
// customer, campaign) order before the event's own actions). The actions file
// and the committed state are the same bytes as with one thread. A replay
// uses one thread when the state directory already holds a store (whose
// timers a split processor could not take apart) or when a tracer is set.
//
// Fresh state: a replay into a new or empty directory (or a temporary one)
// fills it as a bulk load: writes skip RocksDB's write-ahead log, and the
// memtables are flushed and the store compacted at the end, so the state is
// durable when RunReplay returns. A replay that crashes before then leaves a
// directory to discard, not to resume from. A replay into an existing store
// writes through the log, as before.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "rapport/engine/event.h"
#include "rapport/engine/processor.h"
#include "rapport/engine/status.h"
#include "rapport/rules/rule_set.h"

namespace rapport::connectors {

struct ReplayOptions {
  std::string events_path;         // "-" for stdin
  std::optional<EventTime> until;  // fire timers up to here at the end
  std::string state_dir;           // empty: a temporary directory, removed afterwards
  std::string dead_letter_path;    // empty: rejected events are only counted
  std::string coupon_secret;
  // Events per commit group into a store that holds state. A bulk load (a
  // new or empty directory) instead writes changes back when the cache is
  // full, and commits once, at the end.
  uint64_t commit_every = 1000000;
  size_t cache_capacity = 1 << 20;  // profiles kept in memory, shared by the threads
  // Sees every decision (e.g. a ReportCollector for --report); null costs
  // nothing. Must outlive RunReplay.
  ProcessorTracer* tracer = nullptr;
  // Processors running in parallel (see Threads above); 1 is the plain loop.
  unsigned threads = 1;
};

struct ReplaySummary {
  uint64_t lines = 0;
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  uint64_t rejected_by_reason[kRejectReasonCount] = {};
  ProcessorStats processor;
  std::optional<EventTime> final_clock;
  size_t customers_with_timers = 0;  // with a timer armed but not yet due at the end
  unsigned threads = 1;       // processors that ran (1 when the options asked for more but could not)
  bool bulk_load = false;     // the state was a fresh directory, written without a write-ahead log
  double wall_seconds = 0;
};

Result<ReplaySummary> RunReplay(const ReplayOptions& options, std::shared_ptr<const rules::RuleSet> rules,
                                ActionSink& sink);

// The human-readable summary that `rapport replay` prints to stderr.
std::string FormatReplaySummary(const ReplaySummary& summary, const rules::RuleSet& rules);

// Writes each action as one line of JSON to a file or stdout, buffered.
class JsonlActionSink : public ActionSink {
 public:
  // "-" writes to stdout.
  static Result<std::unique_ptr<JsonlActionSink>> Open(const std::string& path);
  ~JsonlActionSink() override;
  void Deliver(const FiredAction& action) override;
  // Writes out the buffer; reports the first write error since the last Flush.
  Status Flush();

 private:
  JsonlActionSink(std::FILE* file, bool owns, std::string path) : file_(file), owns_(owns), path_(std::move(path)) {}
  std::FILE* file_;
  bool owns_;
  std::string path_;
  std::string buffer_;
  bool failed_ = false;
};

// A temporary directory removed with its contents on destruction.
class ScratchDirectory {
 public:
  static Result<std::unique_ptr<ScratchDirectory>> Create(const std::string& prefix);
  ~ScratchDirectory();
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDirectory(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace rapport::connectors

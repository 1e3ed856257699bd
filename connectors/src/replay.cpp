#include "rapport/connectors/replay.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "rapport/connectors/dead_letter.h"
#include "rapport/connectors/jsonl_reader.h"

namespace rapport::connectors {

Result<std::unique_ptr<ScratchDirectory>> ScratchDirectory::Create(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return Status::IoError("cannot create a temporary directory " + pattern + ": " + std::strerror(errno));
  }
  return std::unique_ptr<ScratchDirectory>(new ScratchDirectory(pattern));
}

ScratchDirectory::~ScratchDirectory() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::unique_ptr<JsonlActionSink>> JsonlActionSink::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<JsonlActionSink>(new JsonlActionSink(stdout, false, "stdout"));
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
  return std::unique_ptr<JsonlActionSink>(new JsonlActionSink(f, true, path));
}

JsonlActionSink::~JsonlActionSink() {
  (void)Flush();
  if (owns_) std::fclose(file_);
}

void JsonlActionSink::Deliver(const FiredAction& action) {
  buffer_.append(action.json);
  buffer_.push_back('\n');
  if (buffer_.size() >= (1 << 20)) (void)Flush();
}

Status JsonlActionSink::Flush() {
  if (!buffer_.empty()) {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) failed_ = true;
    buffer_.clear();
  }
  if (std::fflush(file_) != 0) failed_ = true;
  if (failed_) {
    failed_ = false;
    return Status::IoError("writing actions to " + path_ + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Result<ReplaySummary> RunReplay(const ReplayOptions& options, std::shared_ptr<const rules::RuleSet> rules,
                                ActionSink& sink) {
  const auto start = std::chrono::steady_clock::now();
  ReplaySummary summary;

  std::unique_ptr<ScratchDirectory> scratch;
  std::string state_dir = options.state_dir;
  if (state_dir.empty()) {
    auto dir = ScratchDirectory::Create("rapport-replay");
    if (!dir.ok()) return dir.status();
    scratch = std::move(*dir);
    state_dir = scratch->path();
  }
  StateStoreOptions store_options;
  auto store = StateStore::Open(state_dir, store_options);
  if (!store.ok()) return store.status();

  auto reader = JsonlReader::Open(options.events_path);
  if (!reader.ok()) return reader.status();
  std::unique_ptr<DeadLetterFile> dead_letters;
  if (!options.dead_letter_path.empty()) {
    auto dl = DeadLetterFile::Open(options.dead_letter_path);
    if (!dl.ok()) return dl.status();
    dead_letters = std::move(*dl);
  }

  ProcessorOptions processor_options;
  processor_options.coupon_secret = options.coupon_secret;
  processor_options.cache_capacity = options.cache_capacity;
  processor_options.tracer = options.tracer;
  auto processor = Processor::Open(**store, std::move(rules), sink, processor_options);
  if (!processor.ok()) return processor.status();
  Processor& p = **processor;

  EventDecoder decoder;
  Event event;
  Rejection rejection;
  Line line;
  uint64_t since_commit = 0;
  auto position = [&reader]() { return (*reader)->path() + ":" + std::to_string((*reader)->position()); };
  while ((*reader)->Next(&line)) {
    ++summary.lines;
    bool ok;
    if (line.too_long) {
      ok = false;
      rejection.reason = RejectReason::kTooLarge;
      rejection.message = "event is larger than " + std::to_string(kMaxEventBytes) + " bytes";
    } else {
      ok = decoder.Decode(line.text, &event, &rejection);
    }
    if (!ok) {
      ++summary.rejected;
      ++summary.rejected_by_reason[static_cast<size_t>(rejection.reason)];
      if (dead_letters) {
        DeadLetter letter{(*reader)->path(), line.number, -1, line.offset, rejection.reason, rejection.message,
                          line.text};
        if (Status s = dead_letters->Write(letter); !s.ok()) return s;
      }
      continue;
    }
    ++summary.accepted;
    if (Status s = p.Apply(event); !s.ok()) return s;
    if (++since_commit >= options.commit_every) {
      if (Status s = p.Commit(position()); !s.ok()) return s;
      since_commit = 0;
    }
  }
  if (!(*reader)->status().ok()) return (*reader)->status();
  std::optional<EventTime> end = p.clock();
  if (options.until && (!end || *options.until > *end)) end = options.until;
  if (end) {
    if (Status s = p.AdvanceTo(*end); !s.ok()) return s;
  }
  if (Status s = p.Commit(position()); !s.ok()) return s;
  if (dead_letters) {
    if (Status s = dead_letters->Flush(); !s.ok()) return s;
  }
  summary.processor = p.stats();
  summary.final_clock = p.clock();
  summary.pending_timers = p.pending_timers();
  summary.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

namespace {

std::string Thousands(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

void Row(std::string* out, std::string_view label, const std::string& value, int width = 24) {
  out->append("  ");
  out->append(label);
  out->append(static_cast<size_t>(std::max<int>(1, width - static_cast<int>(label.size()))), ' ');
  out->append(value);
  out->push_back('\n');
}

// Conversion rates of the campaigns with a goal: conversions per firing,
// treated and held out. Nothing when no campaign has a goal.
void AppendConversions(std::string* out, const ReplaySummary& s, const rules::RuleSet& rules) {
  char line[256];
  bool header = false;
  auto rate = [](uint64_t conversions, uint64_t firings) {
    if (firings == 0) return std::string("-");
    char text[32];
    std::snprintf(text, sizeof text, "%.1f%%", 100.0 * static_cast<double>(conversions) / static_cast<double>(firings));
    return std::string(text);
  };
  for (const rules::Campaign& c : rules.campaigns) {
    if (!c.goal) continue;
    if (!header) {
      std::snprintf(line, sizeof line, "  %-30s %12s %10s %12s %10s\n", "goal reached (conversions)", "treated", "rate",
                    "held out", "rate");
      *out += line;
      header = true;
    }
    auto it = s.processor.campaigns.find(c.id);
    CampaignCounters counters = it == s.processor.campaigns.end() ? CampaignCounters{} : it->second;
    std::snprintf(line, sizeof line, "  %-30s %12s %10s %12s %10s\n", c.id.c_str(),
                  Thousands(counters.conversions).c_str(), rate(counters.conversions, counters.fired).c_str(),
                  c.holdout_basis_points == 0 ? "no holdout" : Thousands(counters.conversions_held_out).c_str(),
                  rate(counters.conversions_held_out, counters.held_out).c_str());
    *out += line;
  }
  if (header) *out += "\n";
}

}  // namespace

std::string FormatReplaySummary(const ReplaySummary& s, const rules::RuleSet& rules) {
  std::string out = "replay summary\n";
  Row(&out, "events read", Thousands(s.lines));
  Row(&out, "accepted", Thousands(s.accepted));
  Row(&out, "rejected", Thousands(s.rejected));
  for (size_t r = 0; r < kRejectReasonCount; ++r) {
    if (s.rejected_by_reason[r] > 0) {
      Row(&out, "  " + std::string(RejectReasonName(static_cast<RejectReason>(r))), Thousands(s.rejected_by_reason[r]));
    }
  }
  Row(&out, "timers fired", Thousands(s.processor.timers_fired));
  Row(&out, "timers still armed", Thousands(s.pending_timers));
  if (s.final_clock) Row(&out, "final clock", FormatRfc3339(*s.final_clock));
  char line[256];
  std::snprintf(line, sizeof line, "\n  %-30s %10s %10s  %s\n", "campaign", "actions", "held out", "suppressed");
  out += line;
  uint64_t total = 0, held = 0;
  for (const rules::Campaign& c : rules.campaigns) {
    auto it = s.processor.campaigns.find(c.id);
    CampaignCounters counters = it == s.processor.campaigns.end() ? CampaignCounters{} : it->second;
    std::string suppressed;
    for (size_t k = 0; k < kSuppressionCount; ++k) {
      if (counters.suppressed[k] == 0) continue;
      if (!suppressed.empty()) suppressed += ", ";
      suppressed += std::string(SuppressionName(static_cast<Suppression>(k))) + " " + Thousands(counters.suppressed[k]);
    }
    std::snprintf(line, sizeof line, "  %-30s %10s %10s  %s%s\n", c.id.c_str(), Thousands(counters.fired).c_str(),
                  Thousands(counters.held_out).c_str(), suppressed.empty() ? "-" : suppressed.c_str(),
                  c.enabled ? "" : " (disabled)");
    out += line;
    total += counters.fired;
    held += counters.held_out;
  }
  std::snprintf(line, sizeof line, "  %-30s %10s %10s\n\n", "total", Thousands(total).c_str(), Thousands(held).c_str());
  out += line;
  AppendConversions(&out, s, rules);
  const double rate = s.wall_seconds > 0 ? static_cast<double>(s.lines) / s.wall_seconds : 0;
  std::snprintf(line, sizeof line, "  wall time %.2f s, %s events/s\n", s.wall_seconds,
                Thousands(static_cast<uint64_t>(rate)).c_str());
  out += line;
  return out;
}

}  // namespace rapport::connectors

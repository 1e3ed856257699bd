#include "rapport/connectors/outbox_dispatcher.h"

#include <algorithm>

namespace rapport::connectors {
namespace {
constexpr size_t kChunk = 2048;
constexpr std::chrono::milliseconds kFirstRetry{100}, kMaxRetry{5000};
// Without a notification the loop still looks again this often, so records
// left by a previous run are picked up.
constexpr std::chrono::milliseconds kIdlePoll{1000};
}  // namespace

OutboxDispatcher::OutboxDispatcher(StateStore& store, std::vector<std::unique_ptr<ActionOutput>> outputs, Log log)
    : store_(store), outputs_(std::move(outputs)), log_(std::move(log)) {}

OutboxDispatcher::~OutboxDispatcher() { Stop(std::chrono::milliseconds(0)); }

void OutboxDispatcher::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void OutboxDispatcher::Notify() {
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  cv_.notify_all();
}

bool OutboxDispatcher::Stop(std::chrono::milliseconds drain) {
  if (!thread_.joinable()) return drained_;
  {
    std::lock_guard lock(mu_);
    draining_ = true;
    notified_ = true;
  }
  cv_.notify_all();
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, drain, [this] { return drained_; });
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  return drained_;
}

void OutboxDispatcher::WaitFor(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return notified_ || stopping_.load(); });
  notified_ = false;
}

void OutboxDispatcher::Loop() {
  std::chrono::milliseconds retry = kFirstRetry;
  while (!stopping_) {
    bool empty = false;
    Status s = DeliverChunk(&empty);
    if (!s.ok()) {
      ++failures_;
      log_("outbox: delivery failed, retrying in " + std::to_string(retry.count()) + " ms: " + s.ToString());
      WaitFor(retry);
      retry = std::min(retry * 2, kMaxRetry);
      continue;
    }
    retry = kFirstRetry;
    if (!empty) continue;
    {
      std::unique_lock lock(mu_);
      if (draining_ && !notified_) {
        drained_ = true;
        cv_.notify_all();
        cv_.wait(lock, [this] { return stopping_.load(); });
        return;
      }
    }
    WaitFor(kIdlePoll);
  }
}

Status OutboxDispatcher::DeliverChunk(bool* empty) {
  arena_.clear();
  records_.clear();
  keys_.clear();
  struct Span {
    size_t customer_at, customer_size, json_at, json_size;
  };
  std::vector<Span> spans;
  auto scan = [&](uint32_t partition, uint64_t sequence) {
    return store_.ScanOutbox(partition, sequence, kChunk, [&](const StateStore::OutboxEntry& e) {
      Span span{arena_.size(), e.customer.size(), 0, e.action_json.size()};
      arena_.append(e.customer);
      span.json_at = arena_.size();
      arena_.append(e.action_json);
      spans.push_back(span);
      records_.push_back(OutboxRecord{e.partition, e.sequence, {}, {}, e.held_out});
      keys_.emplace_back(e.partition, e.sequence);
    });
  };
  auto visited = scan(cursor_partition_, cursor_sequence_);
  if (!visited.ok()) return visited.status();
  if (*visited == 0 && (cursor_partition_ != 0 || cursor_sequence_ != 0)) {
    cursor_partition_ = 0;
    cursor_sequence_ = 0;
    visited = scan(0, 0);
    if (!visited.ok()) return visited.status();
  }
  if (*visited == 0) {
    *empty = true;
    return Status::Ok();
  }
  // The arena has stopped growing: point the records into it.
  for (size_t i = 0; i < records_.size(); ++i) {
    records_[i].customer_id = std::string_view(arena_).substr(spans[i].customer_at, spans[i].customer_size);
    records_[i].action_json = std::string_view(arena_).substr(spans[i].json_at, spans[i].json_size);
  }
  for (auto& output : outputs_) {
    if (Status s = output->Deliver(records_, stopping_); !s.ok()) {
      return Status::Unavailable(output->Describe() + ": " + s.message());
    }
  }
  if (Status s = store_.DeleteOutbox(keys_); !s.ok()) return s;
  delivered_ += records_.size();
  cursor_partition_ = keys_.back().first;
  cursor_sequence_ = keys_.back().second + 1;
  return Status::Ok();
}

}  // namespace rapport::connectors

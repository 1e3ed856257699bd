#include "rapport/connectors/outbox_dispatcher.h"

#include <pthread.h>
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
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rapport:outbox");  // for top -H and perf
    Loop();
  });
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

void OutboxDispatcher::SetPartitions(std::optional<std::set<uint32_t>> owned) {
  std::lock_guard lock(chunk_mu_);
  // A partition that comes (back) from another instance may hold records
  // below the floor it had here: restored from the changelog, where a
  // delete marker may have been lost.
  std::erase_if(floor_, [&](const auto& entry) {
    const uint32_t partition = entry.first;
    return (owned_ && !owned_->contains(partition)) || (owned && !owned->contains(partition));
  });
  owned_ = std::move(owned);
}

bool OutboxDispatcher::DeliverNow(const std::set<uint32_t>& partitions, std::chrono::milliseconds timeout) {
  std::lock_guard lock(chunk_mu_);
  std::optional<std::set<uint32_t>> owned = std::move(owned_);
  owned_ = partitions;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool empty = false;
  while (!empty && std::chrono::steady_clock::now() < deadline) {
    if (Status s = DeliverChunk(&empty); !s.ok()) {
      ++failures_;
      log_("outbox: delivery before revocation failed: " + s.ToString());
      break;
    }
  }
  owned_ = std::move(owned);
  return empty;
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
    Status s;
    {
      std::lock_guard lock(chunk_mu_);
      s = DeliverChunk(&empty);
    }
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
  // Where the scan ended: the next chunk starts there once this one is
  // delivered (a failed chunk is retried from where it started).
  uint32_t end_partition = cursor_partition_;
  uint64_t end_sequence = cursor_sequence_;
  auto scan = [&](uint32_t partition, uint64_t sequence, StateStore::OutboxScope scope) {
    const auto floor = floor_.find(partition);
    if (floor != floor_.end()) sequence = std::max(sequence, floor->second);
    const size_t room = kChunk - records_.size();
    return store_.ScanOutbox(partition, sequence, room, scope, [&](const StateStore::OutboxEntry& e) {
      end_partition = e.partition;
      end_sequence = e.sequence + 1;
      Span span{arena_.size(), e.customer.size(), 0, e.action_json.size()};
      arena_.append(e.customer);
      span.json_at = arena_.size();
      arena_.append(e.action_json);
      spans.push_back(span);
      records_.push_back(OutboxRecord{e.partition, e.sequence, {}, {}, e.held_out});
      keys_.emplace_back(e.partition, e.sequence);
    });
  };
  if (owned_) {
    // Each owned partition on its own, from the cursor's round: a scan that
    // ran on from one partition into the next would step over the next one's
    // delete markers (every record delivered since the last compaction).
    std::vector<uint32_t> order(owned_->lower_bound(cursor_partition_), owned_->end());
    order.insert(order.end(), owned_->begin(), owned_->lower_bound(cursor_partition_));
    for (uint32_t partition : order) {
      if (records_.size() >= kChunk) break;
      const uint64_t from = partition == cursor_partition_ ? cursor_sequence_ : 0;
      if (auto visited = scan(partition, from, StateStore::OutboxScope::kPartition); !visited.ok()) {
        return visited.status();
      }
    }
  } else {
    uint32_t from_partition = cursor_partition_;
    uint64_t from_sequence = cursor_sequence_;
    bool wrapped = from_partition == 0 && from_sequence == 0;
    for (;;) {
      auto visited = scan(from_partition, from_sequence, StateStore::OutboxScope::kOnward);
      if (!visited.ok()) return visited.status();
      if (!records_.empty() || wrapped) break;
      wrapped = true;
      from_partition = 0;
      from_sequence = 0;
      end_partition = 0;
      end_sequence = 0;
    }
  }
  if (records_.empty()) {
    cursor_partition_ = 0;
    cursor_sequence_ = 0;
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
  for (const auto& [partition, sequence] : keys_) {
    uint64_t& floor = floor_[partition];
    floor = std::max(floor, sequence + 1);
  }
  delivered_ += records_.size();
  cursor_partition_ = end_partition;
  cursor_sequence_ = end_sequence;
  return Status::Ok();
}

}  // namespace rapport::connectors

// OutboxDispatcher: delivers committed actions from the state store's outbox
// to every configured output, and deletes them once all acknowledged.
//
// It reads the outbox in key order ((partition, sequence)) in chunks, hands
// each chunk to every output, and deletes the chunk only when every output
// returned ok. A failing output makes the whole chunk wait and be retried
// with exponential back-off (so another output may see it twice: delivery is
// at least once, deduplicated downstream by action_id). Nothing is dropped
// while an output is down: records stay in RocksDB, across restarts too.
//
// With a Kafka source it delivers only the partitions this instance owns
// (SetPartitions): the records of a partition that moved travel in the
// changelog and are delivered by the new owner.
//
// Threads: Start() runs the delivery loop on its own thread; Notify() (after
// a commit), SetPartitions() and Stop() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "rapport/connectors/sinks.h"
#include "rapport/engine/state_store.h"

namespace rapport::connectors {

class OutboxDispatcher {
 public:
  using Log = std::function<void(const std::string&)>;
  OutboxDispatcher(StateStore& store, std::vector<std::unique_ptr<ActionOutput>> outputs, Log log);
  ~OutboxDispatcher();  // Stop(0)
  OutboxDispatcher(const OutboxDispatcher&) = delete;
  OutboxDispatcher& operator=(const OutboxDispatcher&) = delete;

  void Start();
  // New records were committed.
  void Notify();
  // Delivers only these partitions' records from now on (nullopt: all, the
  // default). Returns once a chunk under way has finished, so after it no
  // record of a partition left out is delivered or deleted here.
  void SetPartitions(std::optional<std::set<uint32_t>> owned);
  // Delivers these partitions' records on the calling thread, until none is
  // left, a delivery fails or `timeout` passes (a partition being revoked:
  // what is left travels in the changelog). True when none is left.
  bool DeliverNow(const std::set<uint32_t>& partitions, std::chrono::milliseconds timeout);
  // Delivers what is in the outbox for up to `drain`, then stops the thread;
  // true when the outbox was empty at the end.
  bool Stop(std::chrono::milliseconds drain);

  uint64_t delivered() const { return delivered_.load(); }
  uint64_t failures() const { return failures_.load(); }

 private:
  void Loop();
  // Delivers one chunk; *empty when there was nothing to deliver.
  Status DeliverChunk(bool* empty);
  void WaitFor(std::chrono::milliseconds d);

  StateStore& store_;
  std::vector<std::unique_ptr<ActionOutput>> outputs_;
  Log log_;
  std::thread thread_;
  std::mutex chunk_mu_;  // held while a chunk is delivered; guards owned_
  std::optional<std::set<uint32_t>> owned_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
  bool draining_ = false;
  bool drained_ = false;
  std::atomic<bool> stopping_{false};  // also tells outputs to give up waiting
  std::atomic<uint64_t> delivered_{0}, failures_{0};
  // Where the next scan starts; wraps to the start when it finds nothing.
  uint32_t cursor_partition_ = 0;
  uint64_t cursor_sequence_ = 0;
  // Per partition, the sequence below which every record was delivered
  // and deleted here: scans start there, past the delete markers. Dropped
  // for a partition that leaves or joins owned_.
  std::map<uint32_t, uint64_t> floor_;
  // One chunk's bytes and records.
  std::string arena_;
  std::vector<OutboxRecord> records_;
  std::vector<std::pair<uint32_t, uint64_t>> keys_;
};

}  // namespace rapport::connectors

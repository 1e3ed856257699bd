// ProfileCache: the processor's customer profiles in memory, each kept
// encoded (profile.h, ProfileForm::kCached) in one 64-byte entry: the
// customer id and the encoded bytes side by side, inline when together they
// fit in 56 bytes (a typical id and profile take 30 to 50), else the bytes in
// a heap block and the id still inline (ids of up to 44 bytes; longer ones
// go in the block too). A profile is a few dozen bytes instead of several
// hundred in separately allocated vectors, and a lookup touches one table
// slot and one entry; the heap block only when the profile is decoded.
//
// Entries are found through an open-addressing table of (hash, index) kept
// at most half full. Indexes stay valid until the entry is evicted; the
// entries themselves move when the pool grows, so views into them
// (customer(), bytes()) are valid only until the next Insert or SetBytes.
//
// Internal to rapport_engine. Not thread-safe: one per Processor.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace rapport {

// Hints the CPU to load the cache line at `address`. The empty asm keeps the
// hint: GCC deems a function whose only effect is __builtin_prefetch pure
// and deletes calls to it whose result is unused (gcc 12 dropped the entry
// prefetches below that way).
inline void PrefetchLine(const void* address) {
  __builtin_prefetch(address);
  asm volatile("" : : "r"(address));
}

class ProfileCache {
 public:
  static constexpr uint32_t kNotFound = UINT32_MAX;

  // The hash the cache indexes `customer` by.
  static size_t HashOf(std::string_view customer);

  // The entry of `customer` (hashed with HashOf), or kNotFound. Marks it
  // used, for the eviction sweep.
  uint32_t Find(std::string_view customer, size_t hash);
  // Hints for a Find of `hash` a few events ahead, to overlap its cache
  // misses with the work before it: first the table slot, then (once that
  // is likely in cache) the entry it points to.
  void PrefetchSlot(size_t hash) const { PrefetchLine(&table_[hash & (table_.size() - 1)]); }
  void PrefetchEntry(size_t hash) const {
    if (const Entry* e = HomeEntry(hash)) PrefetchLine(e);
  }
  // And last (once the entry is likely in cache) the bytes, when they are
  // in a heap block.
  void PrefetchBytes(size_t hash) const {
    if (const Entry* e = HomeEntry(hash)) e->PrefetchBytes();
  }
  // Adds an entry for a customer not in the cache, holding `bytes` (empty
  // for a new customer), clean and marked used; returns its index.
  uint32_t Insert(std::string_view customer, size_t hash, std::string_view bytes);

  std::string_view customer(uint32_t index) const { return pool_[index].customer(); }
  std::string_view bytes(uint32_t index) const { return pool_[index].bytes(); }
  // Replaces the entry's bytes; `stored_form` says whether they are also
  // the stored encoding, so that a commit can write them as they are.
  void SetBytes(uint32_t index, std::string_view bytes, bool stored_form);
  bool stored_form(uint32_t index) const { return (pool_[index].flags & kNotStoredForm) == 0; }
  // Dirty entries hold changes not yet committed; Evict keeps them.
  bool dirty(uint32_t index) const { return (pool_[index].flags & kDirty) != 0; }
  void set_dirty(uint32_t index, bool dirty);

  size_t size() const { return count_; }

  // Drops clean entries until at most `target` remain, in the order of a
  // clock sweep (one used since the sweep last passed gets another round),
  // and calls evicted(hash) for each.
  template <class F>
  void Evict(size_t target, F&& evicted) {
    for (size_t seen = 0; count_ > target && seen < 2 * pool_.size(); ++seen) {
      if (sweep_ >= pool_.size()) sweep_ = 0;
      Entry& e = pool_[sweep_];
      if ((e.flags & kLive) != 0 && (e.flags & kDirty) == 0) {
        if ((e.flags & kReferenced) != 0) {
          e.flags &= static_cast<uint8_t>(~kReferenced);
        } else {
          evicted(HashOf(e.customer()));
          e.Clear();
          free_.push_back(static_cast<uint32_t>(sweep_));
          --count_;
        }
      }
      ++sweep_;
    }
    RebuildTable(table_.size());
  }

 private:
  enum Flags : uint8_t { kLive = 1, kDirty = 2, kReferenced = 4, kNotStoredForm = 8 };

  // 64 bytes: sizes and flags, then the id and the bytes back to back
  // inline, or the bytes in a heap block this entry owns (a unique_ptr
  // cannot share the union with the inline bytes) and the id beside its
  // pointer; an id too long for that goes first in the block.
  class Entry {
   public:
    Entry() = default;
    Entry(Entry&& other) noexcept;
    Entry& operator=(Entry&& other) noexcept;
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    ~Entry() { Clear(); }

    // For an entry without bytes (Clear()ed or new).
    void Assign(std::string_view customer, std::string_view bytes);
    void SetBytes(std::string_view bytes);
    // Frees the heap block, if any; the entry is then empty and not live.
    void Clear();
    std::string_view customer() const {
      return std::string_view(!on_heap_ ? inline_ : id_in_block() ? heap_.data : heap_.id, id_size_);
    }
    std::string_view bytes() const {
      return std::string_view(!on_heap_ ? inline_ + id_size_ : heap_.data + (id_in_block() ? id_size_ : 0),
                              bytes_size_);
    }
    void PrefetchBytes() const {
      if (on_heap_) PrefetchLine(heap_.data);
    }

    uint8_t flags = 0;

   private:
    static constexpr size_t kInline = 56;
    static constexpr size_t kIdBesideBlock = 44;
    bool id_in_block() const { return id_size_ > kIdBesideBlock; }

    bool on_heap_ = false;
    uint16_t id_size_ = 0;  // ids are at most 256 bytes
    uint32_t bytes_size_ = 0;
    union {
      char inline_[kInline];
      struct {
        char* data;
        uint32_t capacity;
        char id[kIdBesideBlock];
      } heap_;
    };
  };
  static_assert(sizeof(Entry) == 64);

  // The entry in `hash`'s own slot if its tag matches (a hint: it may be
  // another customer's, and an entry moved along by a collision is missed).
  const Entry* HomeEntry(size_t hash) const {
    const uint64_t slot = table_[hash & (table_.size() - 1)];
    return slot != 0 && ((slot ^ hash) >> 32) == 0 ? &pool_[static_cast<uint32_t>(slot) - 1] : nullptr;
  }
  void InsertSlot(size_t hash, uint32_t index);
  void RebuildTable(size_t slots);

  std::vector<Entry> pool_;
  std::vector<uint32_t> free_;
  // Slots: the hash's high 32 bits and the pool index plus one; 0 is empty.
  std::vector<uint64_t> table_ = std::vector<uint64_t>(1024, 0);
  size_t count_ = 0;
  size_t sweep_ = 0;
};

}  // namespace rapport

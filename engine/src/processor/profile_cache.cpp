#include "profile_cache.h"

#include <algorithm>
#include <cstring>
#include <functional>

namespace rapport {
namespace {
constexpr uint64_t kEmptySlot = 0;
uint64_t SlotOf(size_t hash, uint32_t index) { return (static_cast<uint64_t>(hash) & ~0xFFFFFFFFull) | (index + 1); }
uint32_t SlotIndex(uint64_t slot) { return static_cast<uint32_t>(slot) - 1; }
}  // namespace

ProfileCache::Entry::Entry(Entry&& other) noexcept { *this = std::move(other); }

ProfileCache::Entry& ProfileCache::Entry::operator=(Entry&& other) noexcept {
  if (this == &other) return *this;
  Clear();
  flags = other.flags;
  on_heap_ = other.on_heap_;
  id_size_ = other.id_size_;
  bytes_size_ = other.bytes_size_;
  std::memcpy(inline_, other.inline_, kInline);  // the inline bytes, or the block pointer and id
  other.on_heap_ = false;
  other.flags = 0;
  other.id_size_ = 0;
  other.bytes_size_ = 0;
  return *this;
}

void ProfileCache::Entry::Clear() {
  if (on_heap_) delete[] heap_.data;
  on_heap_ = false;
  flags = 0;
  id_size_ = 0;
  bytes_size_ = 0;
}

void ProfileCache::Entry::Assign(std::string_view customer, std::string_view bytes) {
  std::memcpy(inline_, customer.data(), std::min(customer.size(), kInline));
  if (customer.size() > kInline) {
    // Straight to a block with the id first: SetBytes moves an inline id.
    const size_t capacity = (customer.size() + 15) & ~size_t{15};
    heap_.data = new char[capacity];
    heap_.capacity = static_cast<uint32_t>(capacity);
    std::memcpy(heap_.data, customer.data(), customer.size());
    on_heap_ = true;
  }
  id_size_ = static_cast<uint16_t>(customer.size());
  bytes_size_ = 0;
  SetBytes(bytes);
}

void ProfileCache::Entry::SetBytes(std::string_view bytes) {
  const size_t id = id_size_;
  if (id + bytes.size() <= kInline) {
    if (on_heap_) {
      char* block = heap_.data;
      char moved[kInline];
      std::memcpy(moved, id_in_block() ? block : heap_.id, id);
      std::memcpy(inline_, moved, id);
      delete[] block;
      on_heap_ = false;
    }
    if (!bytes.empty()) std::memcpy(inline_ + id, bytes.data(), bytes.size());
    bytes_size_ = static_cast<uint32_t>(bytes.size());
    return;
  }
  const size_t offset = id_in_block() ? id : 0;
  const size_t size = offset + bytes.size();
  if (!on_heap_ || size > heap_.capacity) {
    // Some room to grow: counts and times lengthen a profile a byte at a time.
    const size_t capacity = (size + size / 4 + 15) & ~size_t{15};
    char* block = new char[capacity];
    if (!on_heap_) {
      // The id leaves the inline bytes, for its place beside the pointer
      // or in the block.
      char moved[kInline];
      std::memcpy(moved, inline_, id);
      std::memcpy(offset != 0 ? block : heap_.id, moved, id);
    } else {
      if (offset != 0) std::memcpy(block, heap_.data, offset);
      delete[] heap_.data;
    }
    heap_.data = block;
    heap_.capacity = static_cast<uint32_t>(capacity);
    on_heap_ = true;
  }
  if (!bytes.empty()) std::memcpy(heap_.data + offset, bytes.data(), bytes.size());
  bytes_size_ = static_cast<uint32_t>(bytes.size());
}

size_t ProfileCache::HashOf(std::string_view customer) { return std::hash<std::string_view>()(customer); }

uint32_t ProfileCache::Find(std::string_view customer, size_t hash) {
  const size_t mask = table_.size() - 1;
  for (size_t i = hash & mask; table_[i] != kEmptySlot; i = (i + 1) & mask) {
    if ((table_[i] ^ hash) >> 32 != 0) continue;
    const uint32_t index = SlotIndex(table_[i]);
    Entry& e = pool_[index];
    if (e.customer() == customer) {
      e.flags |= kReferenced;
      return index;
    }
  }
  return kNotFound;
}

uint32_t ProfileCache::Insert(std::string_view customer, size_t hash, std::string_view bytes) {
  uint32_t index;
  if (free_.empty()) {
    index = static_cast<uint32_t>(pool_.size());
    pool_.emplace_back();
  } else {
    index = free_.back();
    free_.pop_back();
  }
  Entry& e = pool_[index];
  e.Assign(customer, bytes);
  e.flags = kLive | kReferenced;
  ++count_;
  if (count_ * 2 > table_.size()) {
    RebuildTable(table_.size() * 2);
  } else {
    InsertSlot(hash, index);
  }
  return index;
}

void ProfileCache::SetBytes(uint32_t index, std::string_view bytes, bool stored_form) {
  Entry& e = pool_[index];
  e.SetBytes(bytes);
  if (stored_form) {
    e.flags &= static_cast<uint8_t>(~kNotStoredForm);
  } else {
    e.flags |= kNotStoredForm;
  }
}

void ProfileCache::set_dirty(uint32_t index, bool dirty) {
  Entry& e = pool_[index];
  if (dirty) {
    e.flags |= kDirty;
  } else {
    e.flags &= static_cast<uint8_t>(~kDirty);
  }
}

void ProfileCache::InsertSlot(size_t hash, uint32_t index) {
  const size_t mask = table_.size() - 1;
  size_t i = hash & mask;
  while (table_[i] != kEmptySlot) i = (i + 1) & mask;
  table_[i] = SlotOf(hash, index);
}

void ProfileCache::RebuildTable(size_t slots) {
  table_.assign(slots, kEmptySlot);
  for (size_t i = 0; i < pool_.size(); ++i) {
    if ((pool_[i].flags & kLive) != 0) InsertSlot(HashOf(pool_[i].customer()), static_cast<uint32_t>(i));
  }
}

}  // namespace rapport

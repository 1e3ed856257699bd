// HugePageAllocator: for the processor's large, randomly accessed arrays (the
// profile cache's entries and hash table, the timer heap). With 4 KiB pages
// a lookup in a cache of a million profiles misses the TLB as well as the
// data cache; the kernel backs memory with 2 MiB pages only where asked to
// (transparent_hugepage=madvise, Debian's default), so this asks for the
// parts of large blocks that hold whole 2 MiB pages. Small blocks are left
// alone. Only a hint: without transparent huge pages it changes nothing.
//
// Internal to rapport_engine.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace rapport {

inline void AdviseHugePages(void* data, size_t bytes) {
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  if (bytes < 4 * kHugePage) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHugePage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: converting, as allocators are
  T* allocate(size_t n) {
    T* data = std::allocator<T>().allocate(n);
    AdviseHugePages(data, n * sizeof(T));
    return data;
  }
  void deallocate(T* data, size_t n) { std::allocator<T>().deallocate(data, n); }
  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) { return true; }
};

}  // namespace rapport

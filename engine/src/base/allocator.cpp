#include "rapport/engine/allocator.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rapport {

void ConfigureAllocator() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
#endif
}

}  // namespace rapport

// Process-wide allocator settings for rapport's programs: call first thing in
// main(). Commits build large short-lived buffers (batches, sort arrays);
// glibc raises its mmap threshold after the first one is freed and serves
// the rest from the heap, where they fragment and stay (a 5M-customer replay
// peaked 130 MB higher). A fixed threshold maps and unmaps them. Does
// nothing with other C libraries.
#pragma once

namespace rapport {

void ConfigureAllocator();

}  // namespace rapport

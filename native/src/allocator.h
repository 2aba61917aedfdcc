// The CPU allocator every ATen tensor of the addon comes from: it counts
// native bytes (for tfjs's memory() and V8's external-memory accounting) and
// keeps large freed blocks for reuse.
#pragma once
#include <cstddef>

namespace normlab {

struct AllocatorStats {
  size_t liveBytes;    // held by tensors
  size_t cachedBytes;  // freed blocks kept for reuse
  size_t peakLiveBytes;
};

/** Installs the allocator as ATen's CPU allocator; call once, before any tensor exists. */
void installAllocator();
AllocatorStats allocatorStats();
/** Returns every cached block to the system. */
void emptyCache();

}  // namespace normlab

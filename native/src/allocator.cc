#include "allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

// PyTorch 2.3 made Allocator::allocate non-const and added copy_data.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define NORMLAB_ALLOCATE_QUALIFIER
#define NORMLAB_ALLOCATOR_COPY_DATA 1
#else
#define NORMLAB_ALLOCATE_QUALIFIER const
#define NORMLAB_ALLOCATOR_COPY_DATA 0
#endif

namespace normlab {
namespace {

constexpr size_t kAlignment = 64;                  // c10's own alignment, enough for AVX-512
constexpr size_t kLargeBlock = size_t(64) << 10;   // freed blocks from 64 KiB up are kept
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugePageBlock = size_t(8) << 20; // from here, 2 MiB alignment wastes < 25 %
constexpr size_t kMinCacheLimit = size_t(256) << 20;

void* systemAlloc(size_t n) {
  const bool huge = n >= kHugePageBlock;
  void* p = nullptr;
  if (posix_memalign(&p, huge ? kHugePage : kAlignment, n) != 0) return nullptr;
  // Large tensors are streamed through many times a step: fewer TLB misses and page faults.
  if (huge) madvise(p, n, MADV_HUGEPAGE);
  return p;
}

/**
 * A training step allocates the same sizes every step; fresh pages of a
 * 250 MB logits tensor cost tens of milliseconds of page faults each time,
 * so freed large blocks wait here for the next request of about their size.
 */
class Pool {
 public:
  void* allocate(size_t n) {
    if (n == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    size_t size = n;
    void* p = takeCached(n, size);
    if (p == nullptr) p = systemAlloc(n);
    if (p == nullptr) {
      releaseCache(0);
      p = systemAlloc(n);
    }
    TORCH_CHECK(p != nullptr, "normlab torch backend: out of memory allocating ", n, " bytes");
    sizes_.emplace(p, size);
    live_ += size;
    peak_ = std::max(peak_, live_);
    return p;
  }

  void release(void* p) {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return;  // not ours: never happens, but never free twice
    const size_t size = it->second;
    sizes_.erase(it);
    live_ -= size;
    if (size < kLargeBlock) {
      std::free(p);
      return;
    }
    cached_[size].push_back(p);
    cachedBytes_ += size;
    releaseCache(std::max(kMinCacheLimit, peak_));
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {live_, cachedBytes_, peak_};
  }

  void emptyCache() {
    std::lock_guard<std::mutex> lock(mutex_);
    releaseCache(0);
  }

 private:
  // A cached block at most 1/8 larger than asked for, the one freed last (its
  // lines may still be in cache); `size` receives its real size.
  void* takeCached(size_t n, size_t& size) {
    if (n < kLargeBlock) return nullptr;
    auto it = cached_.lower_bound(n);
    if (it == cached_.end() || it->first > n + n / 8) return nullptr;
    size = it->first;
    void* p = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) cached_.erase(it);
    cachedBytes_ -= size;
    return p;
  }

  // Frees the largest cached blocks until at most `limit` bytes stay cached.
  void releaseCache(size_t limit) {
    while (cachedBytes_ > limit && !cached_.empty()) {
      auto last = std::prev(cached_.end());
      cachedBytes_ -= last->first;
      std::free(last->second.back());
      last->second.pop_back();
      if (last->second.empty()) cached_.erase(last);
    }
  }

  std::mutex mutex_;
  std::unordered_map<void*, size_t> sizes_;
  std::map<size_t, std::vector<void*>> cached_;  // by size, most recently freed last
  size_t live_ = 0, cachedBytes_ = 0, peak_ = 0;
};

Pool& pool() {
  static Pool* instance = new Pool();  // never destroyed: tensors may be freed during exit
  return *instance;
}

void releaseBlock(void* p) { pool().release(p); }

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) NORMLAB_ALLOCATE_QUALIFIER override {
    void* p = pool().allocate(n);
    return {p, p, &releaseBlock, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &releaseBlock; }
#if NORMLAB_ALLOCATOR_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#endif
};

}  // namespace

void installAllocator() {
  static CachingCpuAllocator allocator;
  // Priority above the default allocator's 0, so ATen keeps ours.
  c10::SetCPUAllocator(&allocator, 1);
}

AllocatorStats allocatorStats() { return pool().stats(); }

void emptyCache() { pool().emptyCache(); }

}  // namespace normlab

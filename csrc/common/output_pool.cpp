#include "common/output_pool.hpp"

#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <pthread.h>
#include <sys/mman.h>
#endif

namespace msce {

namespace {

constexpr size_t kHuge = size_t{2} << 20;

size_t round_up(size_t bytes) { return (bytes + kHuge - 1) / kHuge * kHuge; }

// 2-MiB aligned anonymous memory, advised for huge pages (Linux); aligned new elsewhere.
void* map_block(size_t size) {
#if defined(__linux__)
  const size_t span = size + kHuge;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHuge - 1) & ~(kHuge - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + span, used_end = aligned + size;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
#if defined(MADV_HUGEPAGE)
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // advice only
#endif
  return reinterpret_cast<void*>(aligned);
#else
  return ::operator new(size, std::align_val_t(kHuge));
#endif
}

void unmap_block(void* p, size_t size) {
#if defined(__linux__)
  munmap(p, size);
#else
  (void)size;
  ::operator delete(p, std::align_val_t(kHuge));
#endif
}

// MSCE_OUTPUT_CACHE_MB overrides the default limit (1 GiB); 0 disables the cache.
int64_t default_limit() {
  if (const char* env = std::getenv("MSCE_OUTPUT_CACHE_MB")) {
    char* end = nullptr;
    const long long mb = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && mb >= 0) return static_cast<int64_t>(mb) << 20;
  }
  return int64_t{1} << 30;
}

}  // namespace

OutputPool::OutputPool() { stats_.limit_bytes = default_limit(); }

OutputPool& OutputPool::instance() {
  static OutputPool* pool = [] {
    OutputPool* p = new OutputPool();  // never destroyed: tensors may outlive static teardown
#if defined(__linux__)
    // fork() while another thread holds the lock (a DataLoader forking its workers mid-load)
    // would leave the child's copy locked forever: hold it across the fork, release it in both
    pthread_atfork([] { instance().mu_.lock(); }, [] { instance().mu_.unlock(); },
                   [] { instance().mu_.unlock(); });
#endif
    return p;
  }();
  return *pool;
}

void* OutputPool::acquire(size_t bytes, size_t* capacity) {
  const size_t want = round_up(bytes == 0 ? 1 : bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto best = cached_.end();
    for (auto it = cached_.begin(); it != cached_.end(); ++it) {
      if (it->size >= want && it->size <= 2 * want && (best == cached_.end() || it->size < best->size)) best = it;
    }
    if (best != cached_.end()) {
      void* p = best->p;
      *capacity = best->size;
      stats_.cached_bytes -= static_cast<int64_t>(best->size);
      stats_.cached_blocks -= 1;
      stats_.in_use_bytes += static_cast<int64_t>(best->size);
      stats_.hits += 1;
      cached_.erase(best);
      return p;
    }
  }
  void* p = map_block(want);
  std::lock_guard<std::mutex> lock(mu_);
  *capacity = want;
  stats_.in_use_bytes += static_cast<int64_t>(want);
  stats_.misses += 1;
  return p;
}

void OutputPool::release(void* p, size_t capacity) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.in_use_bytes -= static_cast<int64_t>(capacity);
  if (static_cast<int64_t>(capacity) > stats_.limit_bytes) {
    unmap_block(p, capacity);
    return;
  }
  evict_locked(stats_.limit_bytes - static_cast<int64_t>(capacity));
  cached_.push_back(Block{p, capacity});
  stats_.cached_bytes += static_cast<int64_t>(capacity);
  stats_.cached_blocks += 1;
}

void OutputPool::evict_locked(int64_t keep_bytes) {
  while (!cached_.empty() && stats_.cached_bytes > keep_bytes) {
    const Block b = cached_.front();
    cached_.pop_front();
    stats_.cached_bytes -= static_cast<int64_t>(b.size);
    stats_.cached_blocks -= 1;
    unmap_block(b.p, b.size);
  }
}

int64_t OutputPool::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t freed = stats_.cached_bytes;
  evict_locked(0);
  return freed;
}

void OutputPool::set_limit(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.limit_bytes = bytes < 0 ? 0 : bytes;
  evict_locked(stats_.limit_bytes);
}

OutputPoolStats OutputPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

PooledBuffer::PooledBuffer(size_t bytes) : bytes_(bytes) { p_ = OutputPool::instance().acquire(bytes, &capacity_); }

PooledBuffer::~PooledBuffer() { OutputPool::instance().release(p_, capacity_); }

}  // namespace msce

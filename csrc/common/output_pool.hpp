// Output buffers kept for reuse. A fresh anonymous allocation costs the kernel a page fault and
// a page zeroing on every first touch: for a dense 720p clip into Qwen2.5-VL tensors (285 MiB of
// float32) that was ~0.7 ms of kernel CPU per frame here, more than half the transform itself
// (bench/README.md). The pool hands out 2-MiB-aligned blocks advised for transparent huge pages
// and keeps released blocks (up to a byte limit) so the next clip writes memory that is already
// mapped. Thread-safe; one pool per process (OutputPool::instance()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>

namespace msce {

struct OutputPoolStats {
  int64_t hits = 0;         // acquisitions served by a cached block
  int64_t misses = 0;       // acquisitions that mapped a new block
  int64_t cached_bytes = 0; // bytes of released blocks held for reuse
  int64_t cached_blocks = 0;
  int64_t in_use_bytes = 0; // bytes of blocks handed out and not yet released
  int64_t limit_bytes = 0;
};

class OutputPool {
 public:
  static OutputPool& instance();

  // A block of at least `bytes` (rounded up to 2 MiB), 2-MiB aligned; *capacity gets its size,
  // which release() needs. Reuses the smallest cached block that fits and is at most twice the
  // request. Throws std::bad_alloc when the memory cannot be mapped.
  void* acquire(size_t bytes, size_t* capacity);
  // Returns a block from acquire(): cached for reuse, or unmapped when the cache would exceed
  // the limit (the least recently released blocks go first).
  void release(void* p, size_t capacity);
  // Unmaps every cached block; returns the bytes freed.
  int64_t clear();
  // Byte limit of the cache (0 disables it); shrinks the cache at once.
  void set_limit(int64_t bytes);
  OutputPoolStats stats() const;

  OutputPool(const OutputPool&) = delete;
  OutputPool& operator=(const OutputPool&) = delete;

 private:
  OutputPool();
  void evict_locked(int64_t keep_bytes);  // unmaps the oldest cached blocks down to keep_bytes

  struct Block {
    void* p;
    size_t size;
  };
  mutable std::mutex mu_;
  std::list<Block> cached_;  // oldest release first
  OutputPoolStats stats_;
};

// An owned block from the pool (RAII): the C++ benchmark's and the Python tensors' output memory.
class PooledBuffer {
 public:
  explicit PooledBuffer(size_t bytes);
  ~PooledBuffer();
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  void* data() const { return p_; }
  size_t size() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
  size_t capacity_ = 0;
};

}  // namespace msce

#include "face/hold.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "common/output_pool.hpp"
#include "common/thread_pool.hpp"

namespace msce::face {

namespace {

constexpr size_t kSlack = 64;  // after each plane: the SIMD kernels may read a vector past a row

int planes_of(PixelLayout layout) {
  return layout == PixelLayout::kYUV420P ? 3 : layout == PixelLayout::kNV12 ? 2 : 1;
}

int rows_of(const Frame& f, int plane) { return plane == 0 ? f.height : (f.height + 1) / 2; }

// Bytes of a plane's rows at its line size.
size_t plane_bytes(const Frame& f, int plane) {
  return static_cast<size_t>(std::abs(f.linesize[plane])) * static_cast<size_t>(rows_of(f, plane));
}

// Bytes one frame takes in the arena: each plane's rows at the decoder's line size, plus slack.
size_t arena_bytes(const Frame& f) {
  size_t total = 0;
  for (int p = 0; p < planes_of(f.layout); ++p) total += plane_bytes(f, p) + kSlack;
  return (total + 63) / 64 * 64;
}

// Held frames copied into one block of msce's output pool. Holding the decoder's own buffers
// made it allocate a fresh buffer per held frame, and each first touch of that memory cost the
// kernel a page fault and a page zeroing (~0.7 ms per 720p frame here: a whole clip held
// decoded took 30 % longer than decoding it); the pool's blocks are reused from one call to the
// next, already mapped, and the copy of a just-decoded frame costs ~0.1 ms.
class Arena {
 public:
  Arena(size_t frames, size_t frame_bytes)
      : frames_(frames), frame_bytes_(frame_bytes), block_(std::make_shared<PooledBuffer>(frames * frame_bytes)) {}

  // The copy of `f` (same line sizes) owned by the arena, or false when it does not fit.
  bool copy(const Frame& f, Frame& out) {
    if (used_ == frames_ || arena_bytes(f) > frame_bytes_) return false;
    for (int p = 0; p < planes_of(f.layout); ++p) {
      if (f.linesize[p] <= 0) return false;  // negative strides (flipped planes): keep the decoder's
    }
    auto* dst = static_cast<uint8_t*>(block_->data()) + used_ * frame_bytes_;
    out = f;
    for (int p = 0; p < planes_of(f.layout); ++p) {
      const size_t n = plane_bytes(f, p);
      std::memcpy(dst, f.data[p], n);
      out.data[p] = dst;
      dst += n + kSlack;
    }
    out.owner = block_;
    ++used_;
    return true;
  }

 private:
  size_t frames_;
  size_t frame_bytes_;
  std::shared_ptr<PooledBuffer> block_;
  size_t used_ = 0;
};

}  // namespace

int64_t HeldFrames::bytes() const {
  int64_t total = 0;
  for (const Frame& f : frames) {
    for (int p = 0; p < planes_of(f.layout); ++p) total += static_cast<int64_t>(plane_bytes(f, p));
  }
  return total;
}

LoadStats decode_and_hold(VideoReader& reader, const std::vector<int64_t>& hold, std::vector<LoadJob>& jobs,
                          int threads, HeldFrames& held) {
  std::vector<int64_t> keep(hold);
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  held.indices.clear();
  held.frames.clear();
  std::unique_ptr<Arena> arena;
  return run_load_jobs(reader, jobs, threads, keep, [&](const Frame& frame) {
    if (std::binary_search(keep.begin(), keep.end(), frame.index)) {
      // The arena is sized from the first held frame (a stream keeps its frame size; a frame
      // that does not fit keeps the decoder's buffer, shared by reference).
      if (!arena) arena = std::make_unique<Arena>(keep.size(), arena_bytes(frame));
      Frame copy;
      held.indices.push_back(frame.index);
      held.frames.push_back(arena->copy(frame, copy) ? std::move(copy) : frame);
    }
  });
}

void run_held_jobs(const HeldFrames& held, std::vector<LoadJob>& jobs, int threads) {
  const int64_t past_held = held.indices.empty() ? 0 : held.indices.back() + 1;
  run_memory_jobs(
      past_held,
      [&](int64_t idx) -> Frame {
        const auto it = std::lower_bound(held.indices.begin(), held.indices.end(), idx);
        if (it == held.indices.end() || *it != idx) {
          throw PlanError("frame " + std::to_string(idx) + " was not held by the decode pass");
        }
        return held.frames[static_cast<size_t>(it - held.indices.begin())];
      },
      jobs, threads);
}

}  // namespace msce::face

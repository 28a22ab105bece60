// msce_transform_bench: CPU cost of the frame transform alone (no decoder, one thread).
//
//   msce_transform_bench [WIDTH HEIGHT [FRAMES [MAX_PIXELS [DTYPE]]]]   (default 1280 720 200 200704 float32)
//
// Builds one synthetic YUV 4:2:0 frame (smooth gradients plus noise, BT.709 limited range),
// resolves the Qwen2.5-VL output size with smart_resize (factor 28, min 128*28*28, MAX_PIXELS;
// 200704 = 448*448 gives 336x588 for 1280x720), and transforms it FRAMES times into one
// pre-touched Qwen slot (DTYPE float32, bfloat16 or float16) (so page faults of a fresh output are not counted). Prints one
// JSON object: the SIMD path used, the output size and the thread CPU time per frame (ms).
// Under `valgrind --tool=callgrind` use a small FRAMES (e.g. 3): instruction counts per frame
// are the repeatable measure on a shared machine.
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "pixel/simd_dispatch.hpp"
#include "pixel/transform.hpp"
#include "select/plan.hpp"

namespace {

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const int width = argc > 2 ? std::atoi(argv[1]) : 1280;
  const int height = argc > 2 ? std::atoi(argv[2]) : 720;
  const int frames = argc > 3 ? std::atoi(argv[3]) : 200;
  const int64_t max_pixels = argc > 4 ? std::atoll(argv[4]) : 200704;
  const std::string dtype = argc > 5 ? argv[5] : "float32";
  // output temporal pairs cycled through: 1 keeps the output in cache; a clip's worth (e.g. 63
  // for 125 frames) makes every frame write memory that is not, as msce.load does
  const int out_pairs = argc > 6 ? std::atoi(argv[6]) : 1;
  if (width < 2 || height < 2 || frames < 1 || max_pixels < 128LL * 28 * 28 || out_pairs < 1 ||
      (dtype != "float32" && dtype != "bfloat16" && dtype != "float16")) {
    std::fprintf(stderr, "usage: msce_transform_bench [WIDTH HEIGHT [FRAMES [MAX_PIXELS [float32|bfloat16|float16 [OUT_PAIRS]]]]]\n");
    return 2;
  }
  const int cw = (width + 1) / 2, ch = (height + 1) / 2;
  std::vector<uint8_t> y(static_cast<size_t>(width) * height), u(static_cast<size_t>(cw) * ch), v(u.size());
  std::mt19937 rng(1234);
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) y[r * width + c] = static_cast<uint8_t>(16 + (r + 2 * c) % 220 + rng() % 8);
  }
  for (int r = 0; r < ch; ++r) {
    for (int c = 0; c < cw; ++c) {
      u[r * cw + c] = static_cast<uint8_t>(64 + (3 * r + c) % 128 + rng() % 4);
      v[r * cw + c] = static_cast<uint8_t>(200 - (r + 3 * c) % 150 + rng() % 4);
    }
  }
  msce::Frame f;
  f.layout = msce::PixelLayout::kYUV420P;
  f.width = width;
  f.height = height;
  f.data[0] = y.data();
  f.data[1] = u.data();
  f.data[2] = v.data();
  f.linesize[0] = width;
  f.linesize[1] = f.linesize[2] = cw;
  f.matrix = msce::ColorMatrix::kBT709;
  f.range = msce::ColorRange::kLimited;

  msce::TransformSpec spec;
  msce::smart_resize(height, width, 28, 128LL * 28 * 28, max_pixels, &spec.out_h, &spec.out_w);
  spec.interp = msce::Interp::kBicubic;
  spec.layout = msce::Layout::kQwen;
  spec.dtype = dtype == "float32" ? msce::DType::kF32 : (dtype == "bfloat16" ? msce::DType::kBF16 : msce::DType::kF16);
  spec.normalize = true;
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, sd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  for (int c = 0; c < 3; ++c) {
    spec.mean[c] = mean[c] * 255.0f;
    spec.std[c] = sd[c] * 255.0f;
  }
  spec.qwen = {14, 2, 2, spec.out_h / 14, spec.out_w / 14, 3};
  std::vector<float> out(static_cast<size_t>(spec.out_h) * spec.out_w * 3 * 2 * out_pairs, 0.f);  // mapped before timing

  msce::transform_frame_cpu(f, msce::CropBox{}, spec, out.data(), 0);  // warm-up: tables, scratch
  const double c0 = thread_cpu_ms();
  for (int i = 0; i < frames; ++i) {
    msce::transform_frame_cpu(f, msce::CropBox{}, spec, out.data(), i % (2 * out_pairs));
  }
  const double per_frame = (thread_cpu_ms() - c0) / frames;
  double checksum = 0;  // of the raw words for the 16-bit types
  for (size_t k = 0; k < out.size(); k += 997) checksum += out[k];
  std::printf(
      "{\"simd\": \"%s\", \"dtype\": \"%s\", \"src\": [%d, %d], \"out\": [%d, %d], \"frames\": %d, \"out_pairs\": %d, "
      "\"cpu_ms_per_frame\": %.4f, "
      "\"checksum\": %.6f}\n",
      msce::simd_level_name(msce::active_simd_level()), dtype.c_str(), height, width, spec.out_h, spec.out_w, frames, out_pairs,
      per_frame,
      checksum);
  return 0;
}

#include "pixel/resample.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "common/error.hpp"
#include "pixel/pixel_math.hpp"

namespace msce {

namespace {

void build_shuffle_tables(ResampleAxis& ax) {
  const int blocks = ax.out_size / 4;
  if (blocks == 0 || ax.identity) return;
  int span = 0;  // largest first[4b + 3] - first[4b]
  for (int b = 0; b < blocks; ++b) span = std::max(span, ax.first[4 * b + 3] - ax.first[4 * b]);
  // pair j of a window reads bytes span + 2j + 1 at most: keep them inside 16 bytes
  if (span + 1 > 15) return;
  // tap pairs for the longest filter actually used (the table width `taps` is the kernel's
  // bound, often a tap or two more: 11 against at most 9 for 1280 -> 588 bicubic)
  const int longest = *std::max_element(ax.count.begin(), ax.count.end());
  const int pairs = (longest + 1) / 2;
  // pairs per window: as many as fit, rounded down to 1, 2 or 4 (the kernels are compiled for
  // these, so which pairs start a window is known at compile time)
  const int fit = (14 - span) / 2 + 1;
  const int per_window = fit >= 4 ? 4 : (fit >= 2 ? 2 : 1);
  const int block_pairs = (blocks + 3) / 4 * 2;  // whole block quads: a 4-block step may read them
  ax.shuffle_pairs = pairs;
  ax.shuffle_per_window = per_window;
  ax.shuffle_masks.assign(static_cast<size_t>(block_pairs) * pairs * 2 * 16, 0x80);
  ax.shuffle_weights.assign(static_cast<size_t>(block_pairs) * pairs * 2 * 8, 0);
  for (int b = 0; b < blocks; ++b) {
    for (int k = 0; k < pairs; ++k) {
      const size_t entry = (static_cast<size_t>(b / 2) * pairs + k) * 2 + (b % 2);
      uint8_t* m = ax.shuffle_masks.data() + entry * 16;
      int16_t* w = ax.shuffle_weights.data() + entry * 8;
      const int window = 2 * (k / per_window) * per_window;
      for (int j = 0; j < 4; ++j) {
        const int o = 4 * b + j;
        const int d = ax.first[o] - ax.first[4 * b] + 2 * k - window;
        m[4 * j] = static_cast<uint8_t>(d);
        m[4 * j + 2] = static_cast<uint8_t>(d + 1);
        const int16_t* wo = ax.weights.data() + static_cast<size_t>(o) * ax.taps;
        w[2 * j] = 2 * k < ax.count[o] ? wo[2 * k] : 0;
        w[2 * j + 1] = 2 * k + 1 < ax.count[o] ? wo[2 * k + 1] : 0;
      }
    }
  }
}

void build_pair_tables(ResampleAxis& ax) {
  if (ax.identity || ax.out_size == 0) return;
  const int row0 = ax.first.front();
  ax.pair_stride = (ax.taps + 2) / 2;  // a filter starting on the second sample of its pair
  ax.pair_first.resize(ax.out_size);
  ax.pair_count.resize(ax.out_size);
  ax.pair_weights.assign(static_cast<size_t>(ax.out_size) * ax.pair_stride, 0);
  for (int i = 0; i < ax.out_size; ++i) {
    const int rel0 = ax.first[i] - row0;
    ax.ring_pairs = std::max(ax.ring_pairs, ((rel0 & 1) + ax.count[i] + 1) >> 1);
    if (i > 0 && ax.first[i] < ax.first[i - 1]) ax.first_monotone = false;
    // zero weights at either end add nothing to the sum: their samples are not read
    const int16_t* wk = ax.weights.data() + static_cast<size_t>(i) * ax.taps;
    int n = ax.count[i], skip = 0;
    while (n > 1 && wk[skip] == 0) ++skip, --n;
    while (n > 1 && wk[skip + n - 1] == 0) --n;
    wk += skip;
    const int rel = rel0 + skip;
    const int lead = rel & 1;  // the filter starts on the second sample of its first pair
    const int pairs = (lead + n + 1) >> 1;
    ax.pair_first[i] = rel >> 1;
    ax.pair_count[i] = pairs;
    int32_t* wp = ax.pair_weights.data() + static_cast<size_t>(i) * ax.pair_stride;
    for (int k = 0; k < pairs; ++k) {
      const int t0 = 2 * k - lead, t1 = t0 + 1;
      const uint16_t lo = static_cast<uint16_t>(t0 >= 0 && t0 < n ? wk[t0] : 0);
      const uint16_t hi = static_cast<uint16_t>(t1 < n ? wk[t1] : 0);
      wp[k] = static_cast<int32_t>(static_cast<uint32_t>(hi) << 16 | lo);
    }
  }
}

}  // namespace

ResampleAxis make_resample_axis(int in_size, int out_size, Interp interp) {
  if (in_size <= 0 || out_size <= 0) {
    throw TransformError("resample: sizes must be positive (in " + std::to_string(in_size) + ", out " +
                         std::to_string(out_size) + ")");
  }
  ResampleAxis ax;
  ax.in_size = in_size;
  ax.out_size = out_size;
  ax.identity = in_size == out_size;
  const double interp_size = interp == Interp::kBicubic ? 4.0 : (interp == Interp::kLanczos ? 6.0 : 2.0);
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double support = scale >= 1.0 ? (interp_size * 0.5) * scale : interp_size * 0.5;
  const int taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  ax.taps = taps;
  ax.first.resize(out_size);
  ax.count.resize(out_size);
  std::vector<double> w(static_cast<size_t>(out_size) * taps, 0.0);
  double wt_max = 0.0;
  for (int i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    const int64_t xmin = std::max(static_cast<int64_t>(center - support + 0.5), int64_t{0});
    int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), static_cast<int64_t>(in_size)) - xmin;
    xsize = std::clamp(xsize, int64_t{0}, static_cast<int64_t>(taps));
    double* wi = w.data() + static_cast<size_t>(i) * taps;
    double total = 0.0;
    for (int64_t j = 0; j < xsize; ++j) {
      const double x = (j + xmin - center + 0.5) * invscale;
      const double v = interp == Interp::kBicubic   ? px::cubic_filter(x)
                       : interp == Interp::kLanczos ? px::lanczos_filter(x)
                                                    : px::linear_filter(x);
      wi[j] = v;
      total += v;
    }
    if (total != 0.0) {
      for (int64_t j = 0; j < xsize; ++j) {
        wi[j] /= total;
        wt_max = std::max(wt_max, wi[j]);
      }
    }
    ax.first[i] = static_cast<int32_t>(xmin);
    ax.count[i] = static_cast<int32_t>(xsize);
  }
  unsigned precision = 0;
  for (precision = 0; precision < 22; ++precision) {
    const int next = static_cast<int>(0.5 + wt_max * (1 << (precision + 1)));
    if (next >= (1 << 15)) break;
  }
  ax.precision = static_cast<int>(precision);
  ax.weights.resize(w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    const double v = w[k] * (1 << precision);
    ax.weights[k] = static_cast<int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  ax.taps_padded = (taps + 15) / 16 * 16;
  ax.weights_padded.assign(static_cast<size_t>(out_size) * ax.taps_padded, 0);
  for (int i = 0; i < out_size; ++i) {
    for (int j = 0; j < ax.count[i]; ++j) {
      ax.weights_padded[static_cast<size_t>(i) * ax.taps_padded + j] = ax.weights[static_cast<size_t>(i) * taps + j];
    }
  }
  build_shuffle_tables(ax);
  build_pair_tables(ax);
  return ax;
}

ResampleAxis make_resample_axis(int in_size, int full_size, int offset, int out_size, Interp interp) {
  if (offset < 0 || out_size <= 0 || offset + out_size > full_size) {
    throw TransformError("resample: output crop [" + std::to_string(offset) + ", " +
                         std::to_string(offset + out_size) + ") lies outside the " + std::to_string(full_size) +
                         " resampled samples");
  }
  ResampleAxis full = make_resample_axis(in_size, full_size, interp);
  if (offset == 0 && out_size == full_size) return full;
  ResampleAxis ax;
  ax.in_size = in_size;
  ax.out_size = out_size;
  ax.identity = false;
  if (full.identity) {  // one tap of weight 1.0: (v << p) + 2^(p-1) >> p == v
    ax.taps = 1;
    ax.precision = 14;
    ax.first.resize(out_size);
    ax.count.assign(out_size, 1);
    ax.weights.assign(out_size, int16_t{1 << 14});
    for (int i = 0; i < out_size; ++i) ax.first[i] = offset + i;
  } else {
    ax.taps = full.taps;
    ax.precision = full.precision;
    ax.first.assign(full.first.begin() + offset, full.first.begin() + offset + out_size);
    ax.count.assign(full.count.begin() + offset, full.count.begin() + offset + out_size);
    ax.weights.assign(full.weights.begin() + static_cast<size_t>(offset) * full.taps,
                      full.weights.begin() + static_cast<size_t>(offset + out_size) * full.taps);
  }
  ax.taps_padded = (ax.taps + 15) / 16 * 16;
  ax.weights_padded.assign(static_cast<size_t>(out_size) * ax.taps_padded, 0);
  for (int i = 0; i < out_size; ++i) {
    for (int j = 0; j < ax.count[i]; ++j) {
      ax.weights_padded[static_cast<size_t>(i) * ax.taps_padded + j] = ax.weights[static_cast<size_t>(i) * ax.taps + j];
    }
  }
  build_shuffle_tables(ax);
  build_pair_tables(ax);
  return ax;
}

std::shared_ptr<const ResampleAxis> cached_resample_axis(int in_size, int out_size, Interp interp) {
  return cached_resample_axis(in_size, out_size, 0, out_size, interp);
}

std::shared_ptr<const ResampleAxis> cached_resample_axis(int in_size, int full_size, int offset, int out_size,
                                                         Interp interp) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int, int, int>, std::shared_ptr<const ResampleAxis>> cache;
  const auto key = std::make_tuple(in_size, full_size, offset, out_size, static_cast<int>(interp));
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() > 4096) cache.clear();  // many distinct face-crop sizes: bound the memory
  auto axis = std::make_shared<const ResampleAxis>(make_resample_axis(in_size, full_size, offset, out_size, interp));
  cache.emplace(key, axis);
  return axis;
}

}  // namespace msce

// Rotation of 8-bit image planes by multiples of 90 degrees (display orientation).
//
// Conventions: `cw` is the clockwise angle in degrees (0, 90, 180 or 270). The source is
// `width` x `height` pixels; pixel (x, y) starts at src + y * src_stride + x * src_step and
// has `Px` bytes. The destination is packed (Px bytes per pixel) with row stride
// dst_stride, and is height x width for 90/270, width x height otherwise. A source
// step larger than Px reads one channel out of interleaved data (NV12 chroma: step 2).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace msce::rotate {

namespace detail {

// Destination coordinates of source pixel (x, y) after a clockwise rotation by Cw.
template <int Cw>
inline void destination(int x, int y, int width, int height, int& dx, int& dy) {
  static_assert(Cw == 90 || Cw == 180 || Cw == 270, "rotation must be 90, 180 or 270");
  if constexpr (Cw == 90) {
    dx = height - 1 - y;
    dy = x;
  } else if constexpr (Cw == 180) {
    dx = width - 1 - x;
    dy = height - 1 - y;
  } else {
    dx = y;
    dy = width - 1 - x;
  }
}

// Walks the source in square tiles so that both reads and writes stay in cache.
template <int Px, int Cw>
void rotate_tiled(const uint8_t* src, int src_stride, int src_step, int width, int height,
                  uint8_t* dst, int dst_stride) {
  constexpr int kTile = 32;
  for (int y0 = 0; y0 < height; y0 += kTile) {
    const int y1 = std::min(y0 + kTile, height);
    for (int x0 = 0; x0 < width; x0 += kTile) {
      const int x1 = std::min(x0 + kTile, width);
      for (int y = y0; y < y1; ++y) {
        const uint8_t* row = src + static_cast<std::ptrdiff_t>(y) * src_stride;
        for (int x = x0; x < x1; ++x) {
          int dx = 0, dy = 0;
          destination<Cw>(x, y, width, height, dx, dy);
          std::memcpy(dst + static_cast<std::ptrdiff_t>(dy) * dst_stride + dx * Px,
                      row + static_cast<std::ptrdiff_t>(x) * src_step, Px);
        }
      }
    }
  }
}

}  // namespace detail

// Rotated width/height of a width x height image.
inline void rotated_size(int width, int height, int cw, int& out_width, int& out_height) {
  const bool swap = cw == 90 || cw == 270;
  out_width = swap ? height : width;
  out_height = swap ? width : height;
}

// Rotates one plane (see the header comment for the layout). cw == 0 copies.
template <int Px>
void rotate_plane(const uint8_t* src, int src_stride, int src_step, int width, int height,
                  uint8_t* dst, int dst_stride, int cw) {
  switch (cw) {
    case 90:
      detail::rotate_tiled<Px, 90>(src, src_stride, src_step, width, height, dst, dst_stride);
      break;
    case 180:
      detail::rotate_tiled<Px, 180>(src, src_stride, src_step, width, height, dst, dst_stride);
      break;
    case 270:
      detail::rotate_tiled<Px, 270>(src, src_stride, src_step, width, height, dst, dst_stride);
      break;
    default:
      for (int y = 0; y < height; ++y) {
        const uint8_t* row = src + static_cast<std::ptrdiff_t>(y) * src_stride;
        uint8_t* out = dst + static_cast<std::ptrdiff_t>(y) * dst_stride;
        if (src_step == Px) {
          std::memcpy(out, row, static_cast<size_t>(width) * Px);
        } else {
          for (int x = 0; x < width; ++x) std::memcpy(out + x * Px, row + x * src_step, Px);
        }
      }
  }
}

}  // namespace msce::rotate

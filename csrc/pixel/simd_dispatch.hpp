// Which SIMD path the CPU transform runs. The default build targets baseline x86-64; the
// SSE4.1 and AVX2 row kernels live in their own translation units (transform_sse41.cpp,
// transform_avx2.cpp, compiled with -msse4.1 / -mavx2 only) and are chosen at run time from
// what the CPU supports. MSCE_SIMD=scalar|sse41|avx2 in the environment forces a path (read
// once, on first use); asking for a path this CPU or build lacks raises TransformError.
// Every path gives bit-identical output: the kernels (simd_kernels.inl) compute exactly the
// pixel_math.hpp integer arithmetic, and the scalar loops finish every row they leave.
//
// The kernel translation units see only raw pointers (no std:: containers or shared
// inline functions), so no function compiled for AVX2 can be picked by the linker for
// code that runs on an older CPU.
#pragma once

#include <cstdint>

#include "pixel/pixel_math.hpp"

namespace msce {

enum class SimdLevel : int { kScalar = 0, kSSE41 = 1, kAVX2 = 2 };

// Best level both the build and the CPU support.
SimdLevel detected_simd_level();
// The level in use: MSCE_SIMD if set (validated against detected_simd_level()), else detected.
SimdLevel active_simd_level();
const char* simd_level_name(SimdLevel level);

// Horizontal pass tables of one axis (see ResampleAxis::shuffle_*): outputs in blocks of 4;
// block b, tap pair k has a 16-byte pshufb mask that picks (and zero-extends) the pair's two
// source bytes for each of the 4 outputs from a 16-byte window at first[4b] + window(k), and
// 8 int16 weights (the pair's weights for each output, 0 past its count).
struct HPassTables {
  const int32_t* first;
  int out_size;
  int precision;
  int pairs;       // tap pairs per output; 0: no shuffle tables (too strong a downscale)
  int per_window;  // tap pairs read from one 16-byte window
  const uint8_t* masks;    // [block pair][pair][2 blocks][16]
  const int16_t* weights;  // [block pair][pair][2 blocks][8]
  int taps_padded;                // for the per-output fallback (AVX2 only)
  const int16_t* weights_padded;  // out_size x taps_padded
};

// Row kernels of one SIMD level. Each handles a prefix of its row in whole vectors and
// returns the first index it did not write; the caller finishes the rest with the scalar
// pixel_math.hpp code.
struct RowKernels {
  // 4:2:0 row to planar R, G, B for pixels [0, n): luma yp[sx0 + i]; chroma sample j at
  // up[j * cstep], vp[j * cstep] serves luma columns 2j, 2j + 1. sx0 must be even.
  int (*yuv_row)(const px::ColorCoeffs& cc, const uint8_t* yp, const uint8_t* up, const uint8_t* vp, int cstep,
                 int sx0, int n, uint8_t* r, uint8_t* g, uint8_t* b);
  // Horizontal pass of three planar rows (shared weights); src rows hold crop columns
  // [col0, ...) and are readable taps_padded + 32 bytes past the last column read.
  int (*horizontal3)(const HPassTables& t, const uint8_t* const src[3], int col0, uint8_t* const dst[3]);
  // One output row of the vertical pass over `width` columns: n taps `w`, rows `row_stride`
  // bytes apart from `base`.
  int (*vertical)(const int16_t* w, int n, int precision, const uint8_t* base, int64_t row_stride, int width,
                  uint8_t* dst);
  // (v - mean) / sd in float32 for a uint8 row (the two IEEE operations of px::normalize_u8).
  int (*normalize_f32)(const uint8_t* s, int n, float mean, float sd, float* out);
};

// Kernels of the active level (nullptr for scalar).
const RowKernels* active_row_kernels();

// Per-level tables (nullptr when the build has no such level).
const RowKernels* sse41_row_kernels();
const RowKernels* avx2_row_kernels();

}  // namespace msce

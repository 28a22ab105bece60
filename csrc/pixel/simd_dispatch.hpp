// Which SIMD path the CPU transform runs. The default build targets baseline x86-64; the
// SSE4.1, AVX2 and AVX-512 row kernels live in their own translation units
// (transform_sse41.cpp, transform_avx2.cpp, transform_avx512.cpp, compiled with -msse4.1 /
// -mavx2 -mfma / -mavx512{f,bw,vl,vnni} only) and are chosen at run time from what the CPU supports
// (the AVX-512 path needs F, BW, VL and VNNI: Ice Lake, Zen 4 and later).
// MSCE_SIMD=scalar|sse41|avx2|avx512 in the environment forces a path (read once, on first
// use); asking for a path this CPU or build lacks raises TransformError.
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

enum class SimdLevel : int { kScalar = 0, kSSE41 = 1, kAVX2 = 2, kAVX512 = 3 };

// Best level both the build and the CPU support.
SimdLevel detected_simd_level();
// The level in use: MSCE_SIMD if set (validated against detected_simd_level()), else detected.
SimdLevel active_simd_level();
const char* simd_level_name(SimdLevel level);

// Horizontal pass tables of one axis (see ResampleAxis::shuffle_*): outputs in blocks of 4;
// block b, tap pair k has a 16-byte pshufb mask that picks (and zero-extends) the pair's two
// source bytes for each of the 4 outputs from a 16-byte window at first[4b] + window(k), and
// 8 int16 weights (the pair's weights for each output, 0 past its count). The tables cover
// whole quads of blocks (zero weights past the last block) so a 4-block step may read them.
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
//
// The horizontal pass writes, and the vertical pass reads, a "pair row": two source rows
// (2p and 2p + 1, relative to the first row read) interleaved column by column as int16,
// i.e. element 2x + r is row 2p + r, column x (0..255, the uint8 result of the horizontal
// pass). One pmaddwd of a pair row with a broadcast weight pair then applies two vertical
// taps to a whole vector of columns without unpacking.
// Normalization of one channel: (v - mean) / sd. recip != 0 is 1 / sd where the fused form
// q = d * recip, q + fma(fma(-q, sd, d), recip) was checked equal to the division d / sd for
// every level 0..255 (see fma_reciprocal in transform_cpu.cpp); kernels with FMA then use it
// instead of the (slower) division, others ignore it. 0: always divide.
struct NormParams {
  float mean;
  float sd;
  float recip;
};

struct RowKernels {
  // 4:2:0 rows (1 or 2 luma rows sharing one chroma row) to planar R, G, B for pixels
  // [0, n): luma yp[r][sx0 + i]; chroma sample j at up[j * cstep], vp[j * cstep] serves luma
  // columns 2j, 2j + 1; row r goes to dst[3r], dst[3r + 1], dst[3r + 2]. sx0 must be even.
  int (*yuv_rows)(const px::ColorCoeffs& cc, const uint8_t* const yp[2], int rows, const uint8_t* up,
                  const uint8_t* vp, int cstep, int sx0, int n, uint8_t* const dst[6]);
  // Horizontal pass of two source rows x three planar channels (shared weights) into one
  // pair row per channel: src = {R0, G0, B0, R1, G1, B1}, rows holding crop columns
  // [col0, ...), readable taps_padded + 32 bytes past the last column read.
  int (*horizontal2)(const HPassTables& t, const uint8_t* const src[6], int col0, int16_t* const dst[3]);
  // One output row of the vertical pass over `width` columns: output x is
  // sum_k (rows[k][2x] * lo(w[k]) + rows[k][2x + 1] * hi(w[k])) over `pairs` pair rows, with
  // w[k] two int16 weights packed low, high; rounded, shifted by `precision`, clamped.
  int (*vertical)(const int32_t* w, const int16_t* const* rows, int pairs, int precision, int width, uint8_t* dst);
  // (v - mean) / sd in float32 for a uint8 row (the two IEEE operations of px::normalize_u8).
  int (*normalize_f32)(const uint8_t* s, int n, NormParams p, float* out);
  // The same for a block of `rows` runs of `len` values, run r read from s + r * src_stride,
  // written contiguously to out + r * len (one channel of a Qwen patch). Returns the runs
  // written (all or none).
  int (*normalize_block_f32)(const uint8_t* s, int64_t src_stride, int rows, int len, NormParams p,
                             float* out);
  // The same into bfloat16 (the bits, rounded to nearest even from that float32 value).
  int (*normalize_block_bf16)(const uint8_t* s, int64_t src_stride, int rows, int len, NormParams p,
                              uint16_t* out);
};

// Kernels of the active level (nullptr for scalar).
const RowKernels* active_row_kernels();

// Per-level tables (nullptr when the build has no such level).
const RowKernels* sse41_row_kernels();
const RowKernels* avx2_row_kernels();
const RowKernels* avx512_row_kernels();

}  // namespace msce

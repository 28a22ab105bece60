// Row kernels shared by the SSE4.1, AVX2 and AVX-512 translation units. The including file
// defines, in an anonymous namespace, a vector type V of kLanes16 int16 lanes (kLanes32 int32
// lanes, kBlocks 128-bit lanes) and the small wrappers used below; everything here is written
// once over them.
//
// Exactness (every kernel equals the scalar pixel_math.hpp arithmetic bit for bit):
// - yuv_rows: px::yuv_to_rgb computes ((8*Y - y_off) * y_coeff) >> 16 and (d * k) >> 16 in
//   int32, where every operand fits in int16 (8*Y - y_off in [-128, 2040], 8*U - 1024 in
//   [-1024, 1016], |coefficients| < 2^15, checked below). For int16 operands the exact
//   product fits in int32 and pmulhw returns its high half, i.e. the same floor(p / 2^16).
//   The sums stay within int16 (|y| <= 300, |terms| <= 280) and packus clamps to 0..255
//   exactly as clamp_u8.
// - horizontal2 / vertical: int16 weights times samples in 0..255 summed in int32 by
//   pmaddwd, plus 1 << (precision - 1), arithmetic shift, then a clamp to 0..255 (packus to
//   uint16 + min 255, or packs + packus): the px::convolve_u8 sum in another association order
//   (integer addition is associative). Taps past an output's count carry weight 0, and so
//   does the row before a vertical filter that starts on an odd row of its pair.
// - normalize_f32: float(v) - mean, then / sd: the same two IEEE single operations.
// - normalize_block_bf16: that float, then its bfloat16 bits rounded to nearest even as
//   px float_to_bfloat16 does for every value but NaN: (x + 0x7fff + bit 16 of x) >> 16 on the
//   bits x (bf16_bits; an overflow to infinity comes out as infinity). The value is NaN only if
//   mean or sd is not finite, so the kernel leaves such runs to the level table.

// Keeps a running sum in a register at this point. Integer addition is associative, so without
// it the compiler may compute every product of an unrolled tap loop first and add them as a
// tree, spilling the products (seen with GCC 12 on the 16-register ISAs).
static inline void hold(V& v) { asm("" : "+v"(v)); }

// ROWS (1 or 2) luma rows sharing one chroma row, 2 * kLanes16 pixels per step (the chroma
// terms computed once for both rows, each output written with one full-width store), then
// kLanes16 at a time.
template <int ROWS>
static int yuv_rows_n(const px::ColorCoeffs& cc, const uint8_t* const yp[2], const uint8_t* up, const uint8_t* vp,
                      int cstep, int sx0, int n, uint8_t* const dst[6]) {
  const V yoff = set1_16(cc.y_off), ycoef = set1_16(cc.y_coeff), c1024 = set1_16(1024);
  const V vr = set1_16(cc.vr), ub = set1_16(cc.ub), ug = set1_16(cc.ug), vg = set1_16(cc.vg);
  auto luma = [&](const uint8_t* p) { return mulhi16(sub16(slli3(load_u8_i16(p)), yoff), ycoef); };
  int i = 0;
  for (; i + 2 * kLanes16 <= n; i += 2 * kLanes16) {
    const int x = sx0 + i;
    V u0, v0, u1, v1;
    load_chroma_dup(up, vp, cstep, x >> 1, &u0, &v0);
    load_chroma_dup(up, vp, cstep, (x >> 1) + kLanes16 / 2, &u1, &v1);
    u0 = sub16(slli3(u0), c1024);
    v0 = sub16(slli3(v0), c1024);
    u1 = sub16(slli3(u1), c1024);
    v1 = sub16(slli3(v1), c1024);
    // chroma terms, shared by the rows (int16 sums in range: the same values in any order)
    const V rc0 = mulhi16(v0, vr), gc0 = add16(mulhi16(u0, ug), mulhi16(v0, vg)), bc0 = mulhi16(u0, ub);
    const V rc1 = mulhi16(v1, vr), gc1 = add16(mulhi16(u1, ug), mulhi16(v1, vg)), bc1 = mulhi16(u1, ub);
#pragma GCC unroll 2
    for (int r = 0; r < ROWS; ++r) {
      const V y0 = luma(yp[r] + x), y1 = luma(yp[r] + x + kLanes16);
      store_u8_sat2(dst[3 * r] + i, add16(y0, rc0), add16(y1, rc1));
      store_u8_sat2(dst[3 * r + 1] + i, add16(y0, gc0), add16(y1, gc1));
      store_u8_sat2(dst[3 * r + 2] + i, add16(y0, bc0), add16(y1, bc1));
    }
  }
  for (; i + kLanes16 <= n; i += kLanes16) {
    const int x = sx0 + i;
    V u, v;
    load_chroma_dup(up, vp, cstep, x >> 1, &u, &v);
    u = sub16(slli3(u), c1024);
    v = sub16(slli3(v), c1024);
    const V rc = mulhi16(v, vr), gc = add16(mulhi16(u, ug), mulhi16(v, vg)), bc = mulhi16(u, ub);
    for (int r = 0; r < ROWS; ++r) {
      const V y = luma(yp[r] + x);
      store_u8_sat(dst[3 * r] + i, add16(y, rc));
      store_u8_sat(dst[3 * r + 1] + i, add16(y, gc));
      store_u8_sat(dst[3 * r + 2] + i, add16(y, bc));
    }
  }
  return i;
}

static int yuv_rows_kernel(const px::ColorCoeffs& cc, const uint8_t* const yp[2], int rows, const uint8_t* up,
                           const uint8_t* vp, int cstep, int sx0, int n, uint8_t* const dst[6]) {
  const int32_t coeffs[6] = {cc.y_off, cc.y_coeff, cc.vr, cc.ub, cc.ug, cc.vg};
  for (int32_t c : coeffs) {
    if (c < -32768 || c > 32767) return 0;
  }
  return rows == 2 ? yuv_rows_n<2>(cc, yp, up, vp, cstep, sx0, n, dst) : yuv_rows_n<1>(cc, yp, up, vp, cstep, sx0, n, dst);
}

// P tap pairs per output, unrolled, for two source rows at once. Tap pair k reads the window
// loaded at pair W * (k / W) (W = t.per_window: 1, 2 or 4, a template argument so that the
// compiler sees which pairs load windows and keeps the accumulators in registers); masks and
// weights are loaded once per step and shared by the six (row, channel) rows. The two rows'
// results are stored interleaved per column (a pair row, see RowKernels).
template <int P, int W>
static int horizontal2_pairs(const HPassTables& t, const uint8_t* const src[6], int col0, int16_t* const dst[3]) {
  const int blocks = t.out_size / 4;
  const int precision = t.precision;
  const int32_t* first = t.first;
  const uint8_t* masks = t.masks;
  const int16_t* weights = t.weights;
  const uint8_t* s0 = src[0];
  const uint8_t* s1 = src[1];
  const uint8_t* s2 = src[2];
  const uint8_t* s3 = src[3];
  const uint8_t* s4 = src[4];
  const uint8_t* s5 = src[5];
  int16_t* d0 = dst[0];
  int16_t* d1 = dst[1];
  int16_t* d2 = dst[2];
  const V init = set1_32(1 << (precision - 1));
  // blocks [b, b + nb): nb < kBlocks only for the last blocks of a wider vector (their table
  // entries exist, with zero weights past the last block)
  auto step = [&](int b, int nb) __attribute__((always_inline)) {
    // table entry of block b (b is a multiple of kBlocks; an entry holds a block pair, the
    // next block pair's entry is P entries further)
    const size_t entry = (static_cast<size_t>(b >> 1) * P * 2 + (b & 1));
    const uint8_t* m = masks + entry * 16;
    const int16_t* w = weights + entry * 8;
    int off[kBlocks];
    for (int l = 0; l < kBlocks; ++l) off[l] = first[4 * (b + (l < nb ? l : 0))] - col0;
    V a0 = init, a1 = init, a2 = init, a3 = init, a4 = init, a5 = init;
    V w0 = init, w1 = init, w2 = init, w3 = init, w4 = init, w5 = init;
#pragma GCC unroll 16
    for (int k = 0; k < P; ++k) {
      if (k % W == 0) {
        w0 = load_windows(s0 + 2 * k, off);
        w1 = load_windows(s1 + 2 * k, off);
        w2 = load_windows(s2 + 2 * k, off);
        w3 = load_windows(s3 + 2 * k, off);
        w4 = load_windows(s4 + 2 * k, off);
        w5 = load_windows(s5 + 2 * k, off);
      }
      const V mk = load_masks(m + 32 * k, P);
      const V wk = load_weights(w + 16 * k, P);
      a0 = madd_acc(a0, shuffle8(w0, mk), wk);
      a1 = madd_acc(a1, shuffle8(w1, mk), wk);
      a2 = madd_acc(a2, shuffle8(w2, mk), wk);
      a3 = madd_acc(a3, shuffle8(w3, mk), wk);
      a4 = madd_acc(a4, shuffle8(w4, mk), wk);
      a5 = madd_acc(a5, shuffle8(w5, mk), wk);
      hold(a0), hold(a1), hold(a2), hold(a3), hold(a4), hold(a5);
    }
    store_pair_blocks(d0 + 8 * b, sra32(a0, precision), sra32(a3, precision), nb);
    store_pair_blocks(d1 + 8 * b, sra32(a1, precision), sra32(a4, precision), nb);
    store_pair_blocks(d2 + 8 * b, sra32(a2, precision), sra32(a5, precision), nb);
  };
  int b = 0;
  for (; b + kBlocks <= blocks; b += kBlocks) step(b, kBlocks);
  if (b < blocks) {
    step(b, blocks - b);
    b = blocks;
  }
  return 4 * b;
}

template <int P>
static int horizontal2_windows(const HPassTables& t, const uint8_t* const src[6], int col0, int16_t* const dst[3]) {
  switch (t.per_window) {
    case 4: return horizontal2_pairs<P, 4>(t, src, col0, dst);
    case 2: return horizontal2_pairs<P, 2>(t, src, col0, dst);
    default: return horizontal2_pairs<P, 1>(t, src, col0, dst);
  }
}

static int horizontal2_kernel(const HPassTables& t, const uint8_t* const src[6], int col0, int16_t* const dst[3]) {
  switch (t.pairs) {
    case 1: return horizontal2_windows<1>(t, src, col0, dst);
    case 2: return horizontal2_windows<2>(t, src, col0, dst);
    case 3: return horizontal2_windows<3>(t, src, col0, dst);
    case 4: return horizontal2_windows<4>(t, src, col0, dst);
    case 5: return horizontal2_windows<5>(t, src, col0, dst);
    case 6: return horizontal2_windows<6>(t, src, col0, dst);
    case 7: return horizontal2_windows<7>(t, src, col0, dst);
    case 8: return horizontal2_windows<8>(t, src, col0, dst);
    case 9: return horizontal2_windows<9>(t, src, col0, dst);
    case 10: return horizontal2_windows<10>(t, src, col0, dst);
    default: return horizontal2_fallback(t, src, col0, dst);  // 0 (no tables) or very long filters
  }
}

// Vertical pass over pair rows: 4 * kLanes32 columns per step, P pair rows unrolled with
// their weight pairs in registers; a last partial step is recomputed over the final
// 4 * kLanes32 columns (same values).
template <int P>
static int vertical_pairs(const int32_t* wp, const int16_t* const* rows, int pairs, int precision, int width,
                          uint8_t* dst) {
  constexpr int kStep = 4 * kLanes32;
  if (width < kStep) return 0;
  const int n = P > 0 ? P : pairs;
  V w[P > 0 ? P : 1] = {};
  if constexpr (P > 0) {
    for (int k = 0; k < P; ++k) w[k] = set1_32(wp[k]);
  }
  auto weight = [&](int k) {
    if constexpr (P > 0) {
      return w[k];
    } else {
      return set1_32(wp[k]);
    }
  };
  const V init = set1_32(1 << (precision - 1));
  auto step = [&](int x) {
    V a0 = init, a1 = init, a2 = init, a3 = init;
#pragma GCC unroll 16
    for (int k = 0; k < n; ++k) {
      const V wk = weight(k);
      const int16_t* r = rows[k] + 2 * x;
      a0 = madd_acc(a0, load_i16(r), wk);
      a1 = madd_acc(a1, load_i16(r + 2 * kLanes32), wk);
      a2 = madd_acc(a2, load_i16(r + 4 * kLanes32), wk);
      a3 = madd_acc(a3, load_i16(r + 6 * kLanes32), wk);
      hold(a0), hold(a1), hold(a2), hold(a3);
    }
    store_cols_u8(dst + x, sra32(a0, precision), sra32(a1, precision), sra32(a2, precision), sra32(a3, precision));
  };
  int x = 0;
  for (; x + kStep <= width; x += kStep) step(x);
  if (x < width) step(width - kStep);
  return width;
}

static int vertical_kernel(const int32_t* wp, const int16_t* const* rows, int pairs, int precision, int width,
                           uint8_t* dst) {
  switch (pairs) {
    case 1: return vertical_pairs<1>(wp, rows, pairs, precision, width, dst);
    case 2: return vertical_pairs<2>(wp, rows, pairs, precision, width, dst);
    case 3: return vertical_pairs<3>(wp, rows, pairs, precision, width, dst);
    case 4: return vertical_pairs<4>(wp, rows, pairs, precision, width, dst);
    case 5: return vertical_pairs<5>(wp, rows, pairs, precision, width, dst);
    case 6: return vertical_pairs<6>(wp, rows, pairs, precision, width, dst);
    case 7: return vertical_pairs<7>(wp, rows, pairs, precision, width, dst);
    case 8: return vertical_pairs<8>(wp, rows, pairs, precision, width, dst);
    default: return vertical_pairs<0>(wp, rows, pairs, precision, width, dst);
  }
}

static int normalize_f32_kernel(const uint8_t* s, int n, NormParams p, float* out) {
  int x = 0;
  for (; x + kLanesF <= n; x += kLanesF) store_norm(out + x, s + x, p);
  return x;
}

// Runs of `len` >= kMinRun values; a run's last partial vector is store_norm_tail's.
static int normalize_block_f32_kernel(const uint8_t* s, int64_t src_stride, int rows, int len, NormParams p,
                                      float* out) {
  if (len < kMinRun) return 0;
  for (int r = 0; r < rows; ++r) {
    const uint8_t* sp = s + r * src_stride;
    float* op = out + static_cast<int64_t>(r) * len;
    int i = 0;
    for (; i + kLanesF <= len; i += kLanesF) store_norm(op + i, sp + i, p);
    if (i < len) store_norm_tail(op, sp, i, len, p);
  }
  return rows;
}

// The same for bfloat16 output (bits as uint16_t).
static int normalize_block_bf16_kernel(const uint8_t* s, int64_t src_stride, int rows, int len, NormParams p,
                                       uint16_t* out) {
  if (len < kMinRun || !(p.mean - p.mean == 0.f) || !(p.sd - p.sd == 0.f)) return 0;  // not finite: the table
  for (int r = 0; r < rows; ++r) {
    const uint8_t* sp = s + r * src_stride;
    uint16_t* op = out + static_cast<int64_t>(r) * len;
    int i = 0;
    for (; i + kLanesF <= len; i += kLanesF) store_norm_bf16(op + i, sp + i, p);
    if (i < len) store_norm_bf16_tail(op, sp, i, len, p);
  }
  return rows;
}

// The table the including ISA file hands to the dispatcher through the accessor it names in
// MSCE_ROW_KERNELS_OF_THIS_ISA (declared in simd_dispatch.hpp), outside the anonymous namespace.
const RowKernels kKernels = {yuv_rows_kernel,      horizontal2_kernel,         vertical_kernel,
                             normalize_f32_kernel, normalize_block_f32_kernel, normalize_block_bf16_kernel};

}  // namespace

const RowKernels* MSCE_ROW_KERNELS_OF_THIS_ISA() { return &kKernels; }

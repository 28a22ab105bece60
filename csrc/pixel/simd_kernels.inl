// Row kernels shared by the SSE4.1 and AVX2 translation units. The including file defines,
// in an anonymous namespace, a vector type V of kLanes16 int16 lanes (kBlocks 128-bit lanes)
// and the small wrappers used below; everything here is written once over them.
//
// Exactness (every kernel equals the scalar pixel_math.hpp arithmetic bit for bit):
// - yuv_row: px::yuv_to_rgb computes ((8*Y - y_off) * y_coeff) >> 16 and (d * k) >> 16 in
//   int32, where every operand fits in int16 (8*Y - y_off in [-128, 2040], 8*U - 1024 in
//   [-1024, 1016], |coefficients| < 2^15, checked below). For int16 operands the exact
//   product fits in int32 and pmulhw returns its high half, i.e. the same floor(p / 2^16).
//   The sums stay within int16 (|y| <= 300, |terms| <= 280) and packus clamps to 0..255
//   exactly as clamp_u8.
// - horizontal3 / vertical: int16 weights times uint8 samples summed in int32 by pmaddwd,
//   plus 1 << (precision - 1), arithmetic shift, then packs/packus = clamp_u8: the
//   px::convolve_u8 sum in another association order (integer addition is associative).
//   Taps past an output's count carry weight 0.
// - normalize_f32: float(v) - mean, then / sd: the same two IEEE single operations.

static int yuv_row_kernel(const px::ColorCoeffs& cc, const uint8_t* yp, const uint8_t* up, const uint8_t* vp,
                          int cstep, int sx0, int n, uint8_t* r, uint8_t* g, uint8_t* b) {
  const int32_t coeffs[6] = {cc.y_off, cc.y_coeff, cc.vr, cc.ub, cc.ug, cc.vg};
  for (int32_t c : coeffs) {
    if (c < -32768 || c > 32767) return 0;
  }
  const V yoff = set1_16(cc.y_off), ycoef = set1_16(cc.y_coeff), c1024 = set1_16(1024);
  const V vr = set1_16(cc.vr), ub = set1_16(cc.ub), ug = set1_16(cc.ug), vg = set1_16(cc.vg);
  int i = 0;
  for (; i + kLanes16 <= n; i += kLanes16) {
    const int x = sx0 + i;
    V y = load_u8_i16(yp + x);
    V u, v;
    load_chroma_dup(up, vp, cstep, x >> 1, &u, &v);
    y = mulhi16(sub16(slli3(y), yoff), ycoef);
    u = sub16(slli3(u), c1024);
    v = sub16(slli3(v), c1024);
    store_u8_sat(r + i, add16(y, mulhi16(v, vr)));
    store_u8_sat(g + i, add16(add16(y, mulhi16(u, ug)), mulhi16(v, vg)));
    store_u8_sat(b + i, add16(y, mulhi16(u, ub)));
  }
  return i;
}

// P tap pairs per output, unrolled. Tap pair k reads the window loaded at the start of its
// group (bit k of `starts`); masks and weights are loaded once per block pair and shared by
// the three channels.
template <int P>
static int horizontal3_pairs(const HPassTables& t, const uint8_t* const src[3], int col0, uint8_t* const dst[3]) {
  const int blocks = t.out_size / 4;
  const int precision = t.precision;
  const int32_t* first = t.first;
  const uint8_t* masks = t.masks;
  const int16_t* weights = t.weights;
  const uint8_t* s0 = src[0];
  const uint8_t* s1 = src[1];
  const uint8_t* s2 = src[2];
  uint8_t* d0 = dst[0];
  uint8_t* d1 = dst[1];
  uint8_t* d2 = dst[2];
  unsigned starts = 0;
  for (int k = 0; k < P; k += t.per_window) starts |= 1u << k;
  const V init = set1_32(1 << (precision - 1));
  int b = 0;
  for (; b + kBlocks <= blocks; b += kBlocks) {
    // table entry of block b (AVX2: b is even and the entry holds blocks b and b + 1)
    const size_t entry = (static_cast<size_t>(b >> 1) * P * 2 + (b & 1));
    const uint8_t* m = masks + entry * 16;
    const int16_t* w = weights + entry * 8;
    int off[kBlocks];
    for (int l = 0; l < kBlocks; ++l) off[l] = first[4 * (b + l)] - col0;
    V a0 = init, a1 = init, a2 = init;
    V w0 = init, w1 = init, w2 = init;
#pragma GCC unroll 16
    for (int k = 0; k < P; ++k) {
      if (starts & (1u << k)) {
        w0 = load_windows(s0 + 2 * k, off);
        w1 = load_windows(s1 + 2 * k, off);
        w2 = load_windows(s2 + 2 * k, off);
      }
      const V mk = load_pair_table(m + 32 * k);
      const V wk = load_pair_table(w + 16 * k);
      a0 = add32(a0, madd(shuffle8(w0, mk), wk));
      a1 = add32(a1, madd(shuffle8(w1, mk), wk));
      a2 = add32(a2, madd(shuffle8(w2, mk), wk));
    }
    store_blocks_u8(d0 + 4 * b, sra32(a0, precision));
    store_blocks_u8(d1 + 4 * b, sra32(a1, precision));
    store_blocks_u8(d2 + 4 * b, sra32(a2, precision));
  }
  return 4 * b;
}

static int horizontal3_kernel(const HPassTables& t, const uint8_t* const src[3], int col0, uint8_t* const dst[3]) {
  switch (t.pairs) {
    case 1: return horizontal3_pairs<1>(t, src, col0, dst);
    case 2: return horizontal3_pairs<2>(t, src, col0, dst);
    case 3: return horizontal3_pairs<3>(t, src, col0, dst);
    case 4: return horizontal3_pairs<4>(t, src, col0, dst);
    case 5: return horizontal3_pairs<5>(t, src, col0, dst);
    case 6: return horizontal3_pairs<6>(t, src, col0, dst);
    case 7: return horizontal3_pairs<7>(t, src, col0, dst);
    case 8: return horizontal3_pairs<8>(t, src, col0, dst);
    case 9: return horizontal3_pairs<9>(t, src, col0, dst);
    case 10: return horizontal3_pairs<10>(t, src, col0, dst);
    default: return horizontal3_fallback(t, src, col0, dst);  // 0 (no tables) or very long filters
  }
}

static int normalize_f32_kernel(const uint8_t* s, int n, float mean, float sd, float* out) {
  int x = 0;
  for (; x + kLanesF <= n; x += kLanesF) store_norm(out + x, s + x, mean, sd);
  return x;
}

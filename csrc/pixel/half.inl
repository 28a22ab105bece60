// float -> IEEE half and -> bfloat16, round-to-nearest-even, shared by host and device code.
#pragma once

#include <cstdint>
#include <cstring>

namespace msce {

MSCE_HD uint16_t float_to_half(float f) {
  uint32_t x;
#if defined(__CUDA_ARCH__)
  x = __float_as_uint(f);
#else
  std::memcpy(&x, &f, sizeof(x));
#endif
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mag = x & 0x7fffffffu;
  if (mag >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u : 0u));
  }
  if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (mag < 0x38800000u) {  // subnormal or zero in half
    if (mag < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = mag >> 23;
    const uint32_t m = (mag & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // value = m * 2^(e-150) = (m >> shift) * 2^-24
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    uint32_t r = m >> shift;
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  const uint32_t rounded = mag + 0xfffu + ((mag >> 13) & 1u);  // round to nearest even
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

MSCE_HD uint16_t float_to_bfloat16(float f) {
  uint32_t x;
#if defined(__CUDA_ARCH__)
  x = __float_as_uint(f);
#else
  std::memcpy(&x, &f, sizeof(x));
#endif
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// bfloat16 bits as an output element type of its own (float16 is uint16_t).
struct BF16Bits {
  uint16_t bits;
};

// A normalized value as stored in an output of element type T: float32 as is, float16 as its
// binary16 bits (uint16_t), bfloat16 as BF16Bits. Shared by the CPU level tables and the CUDA
// stores.
template <typename T>
MSCE_HD T to_out(float v);
template <>
MSCE_HD float to_out<float>(float v) {
  return v;
}
template <>
MSCE_HD uint16_t to_out<uint16_t>(float v) {
  return float_to_half(v);
}
template <>
MSCE_HD BF16Bits to_out<BF16Bits>(float v) {
  return BF16Bits{float_to_bfloat16(v)};
}

}  // namespace msce

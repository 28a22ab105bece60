#include "pixel/simd_dispatch.hpp"

#include <cstdlib>
#include <string>

#include "common/error.hpp"

namespace msce {

namespace {

bool cpu_has(SimdLevel level) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (level == SimdLevel::kAVX512) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  if (level == SimdLevel::kAVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (level == SimdLevel::kSSE41) return __builtin_cpu_supports("sse4.1");
  return true;
#else
  return level == SimdLevel::kScalar;
#endif
}

const RowKernels* kernels_of(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAVX512: return avx512_row_kernels();
    case SimdLevel::kAVX2: return avx2_row_kernels();
    case SimdLevel::kSSE41: return sse41_row_kernels();
    default: return nullptr;
  }
}

bool available(SimdLevel level) { return level == SimdLevel::kScalar || (kernels_of(level) && cpu_has(level)); }

SimdLevel resolve_active() {
  const char* env = std::getenv("MSCE_SIMD");
  if (env == nullptr || *env == '\0') return detected_simd_level();
  const std::string s(env);
  SimdLevel want;
  if (s == "scalar") {
    want = SimdLevel::kScalar;
  } else if (s == "sse41") {
    want = SimdLevel::kSSE41;
  } else if (s == "avx2") {
    want = SimdLevel::kAVX2;
  } else if (s == "avx512") {
    want = SimdLevel::kAVX512;
  } else {
    throw TransformError("MSCE_SIMD must be scalar, sse41, avx2 or avx512 (got '" + s + "')");
  }
  if (!available(want)) {
    throw TransformError("MSCE_SIMD=" + s + " but this " +
                         std::string(kernels_of(want) ? "CPU lacks it" : "build has no such path") +
                         " (available up to " + simd_level_name(detected_simd_level()) + ")");
  }
  return want;
}

}  // namespace

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAVX512: return "avx512";
    case SimdLevel::kAVX2: return "avx2";
    case SimdLevel::kSSE41: return "sse41";
    default: return "scalar";
  }
}

SimdLevel detected_simd_level() {
  static const SimdLevel level = [] {
    if (available(SimdLevel::kAVX512)) return SimdLevel::kAVX512;
    if (available(SimdLevel::kAVX2)) return SimdLevel::kAVX2;
    if (available(SimdLevel::kSSE41)) return SimdLevel::kSSE41;
    return SimdLevel::kScalar;
  }();
  return level;
}

SimdLevel active_simd_level() {
  static const SimdLevel level = resolve_active();  // a bad MSCE_SIMD throws on every call
  return level;
}

const RowKernels* active_row_kernels() { return kernels_of(active_simd_level()); }

}  // namespace msce

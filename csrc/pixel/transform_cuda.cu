// CUDA side of the fused transform: three grid-stride kernels over the element bodies of
// transform_kernels.hpp (so over pixel_math.hpp, like the CPU loop), a batched launcher
// with pinned staging for host frames, and per-geometry device copies of the resample
// tables. Kernels never throw; every runtime call is checked on the host.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "common/error.hpp"
#include "pixel/transform_cuda.hpp"
#include "pixel/transform_desc.hpp"
#include "pixel/transform_kernels.hpp"

namespace msce {
namespace cuda {

namespace {

using gpu::FrameDesc;

// Descriptors travel as a kernel parameter; stay below the classic 4 KiB parameter limit.
constexpr int kLaunchFrames = 12;
struct LaunchBatch {
  FrameDesc d[kLaunchFrames];
};
static_assert(sizeof(LaunchBatch) <= 4000, "kernel parameter block too large");

constexpr int kThreads = 256;
constexpr int kMaxBlocksPerFrame = 1024;
constexpr int kBatchFrames = 16;                     // frames staged per batch
constexpr size_t kBatchBytes = size_t{64} << 20;     // host bytes staged per batch (pinned, per slot)
constexpr int kSlots = 3;                            // staging buffers in flight
constexpr size_t kMaxCachedGeometries = 1024;

enum Pass { kConvert = 0, kHorizontal = 1, kVertical = 2 };

template <int P>
__device__ __forceinline__ int64_t pass_count(const FrameDesc& d) {
  if (P == kConvert) return gpu::convert_count(d);
  if (P == kHorizontal) return gpu::hpass_count(d);
  return gpu::vpass_count(d);
}

// blockIdx.y selects the frame; the blocks along x stride over that frame's elements.
template <int P>
__global__ void __launch_bounds__(kThreads) pass_kernel(const __grid_constant__ LaunchBatch b) {
  const FrameDesc& d = b.d[blockIdx.y];
  const int64_t n = pass_count<P>(d);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    if (P == kConvert) {
      gpu::convert_element(d, i);
    } else if (P == kHorizontal) {
      gpu::hpass_element(d, i);
    } else {
      gpu::vpass_element(d, i);
    }
  }
}

std::string version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Makes `device` current for the scope of a public call and restores the caller's device.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    MSCE_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) MSCE_CUDA_CHECK(cudaSetDevice(device));
    switched_ = prev_ != device;
  }
  ~DeviceScope() {
    if (switched_) cudaSetDevice(prev_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

}  // namespace

RuntimeStatus runtime_status() {
  RuntimeStatus s;
  cudaRuntimeGetVersion(&s.runtime_version);
  const cudaError_t drv = cudaDriverGetVersion(&s.driver_version);
  if (drv != cudaSuccess || s.driver_version == 0) {
    cudaGetLastError();
    s.driver_version = 0;
    s.reason = "no NVIDIA driver: libcuda.so.1 cannot be loaded (install the NVIDIA driver, or start the "
               "container with GPU access, e.g. --gpus all)";
    return s;
  }
  if (s.driver_version < s.runtime_version) {
    s.reason = "the NVIDIA driver supports CUDA " + version_string(s.driver_version) + " but msce was built with CUDA " +
               version_string(s.runtime_version) + ": upgrade the driver";
    return s;
  }
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  cudaGetLastError();
  if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
    s.reason = "the NVIDIA driver (CUDA " + version_string(s.driver_version) +
               ") is installed but sees no CUDA device (check CUDA_VISIBLE_DEVICES and that the GPU is exposed here)";
    return s;
  }
  if (e != cudaSuccess) {
    s.reason = std::string("CUDA cannot initialize: ") + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
    return s;
  }
  s.device_count = n;
  s.ok = true;
  s.reason = "ok";
  return s;
}

void check_device_pointer(const void* ptr, int device, const std::string& what) {
  cudaPointerAttributes attr{};
  const cudaError_t e = cudaPointerGetAttributes(&attr, ptr);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw TransformError(what + " is not CUDA memory (" + cudaGetErrorString(e) + ")");
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
    throw TransformError(what + " must be in CUDA device memory (got host memory)");
  }
  if (attr.device != device) {
    throw TransformError(what + " lives on cuda:" + std::to_string(attr.device) + ", expected cuda:" +
                         std::to_string(device));
  }
}

struct Transformer::Impl {
  struct DeviceAxis {
    std::shared_ptr<const ResampleAxis> host;
    char* mem = nullptr;
    const int32_t* first = nullptr;
    const int32_t* count = nullptr;
    const int16_t* weights = nullptr;
  };
  struct Pending {
    FrameDesc desc;
    bool staged = false;     // plane pointers are offsets into the slot's staging buffer
    size_t rgb_bytes = 0;
    size_t inter_bytes = 0;
    // Two-stage specs: the first stage writes packed RGB into first-stage buffer `first`
    // (stage 1), which the second stage reads as its RGB24 source (stage 2); -1 otherwise.
    int stage = 0;
    int first = -1;
  };
  struct Slot {
    uint8_t* host = nullptr;
    size_t host_cap = 0;
    size_t host_used = 0;
    uint8_t* dev = nullptr;
    size_t dev_cap = 0;
    cudaEvent_t done = nullptr;
    bool in_flight = false;
    std::vector<std::shared_ptr<const void>> keep;
    int frames = 0;
  };

  int device = 0;
  cudaStream_t stream = nullptr;
  bool attached = true;               // false once detach() let go of `stream`
  bool chained = false;               // last_event holds the end of the previous stream's work
  cudaEvent_t last_event = nullptr;   // orders a new stream after the old one (events outlive streams)
  cudaEvent_t producer_event = nullptr;
  std::array<Slot, kSlots> slots;
  int cur = 0;
  std::vector<Pending> pending;
  std::vector<size_t> first_bytes;  // sizes of the pending first-stage buffers
  // keyed by the cached host axis (held in DeviceAxis::host, so the address stays unique):
  // cropped axes with equal in/out sizes but different offsets get their own tables
  std::map<const ResampleAxis*, DeviceAxis> tables;
  uint8_t* scratch = nullptr;
  size_t scratch_cap = 0;
  Stats stats;

  Slot& slot() { return slots[cur]; }

  // Device memory, stream-ordered: freed after the work already enqueued on `stream`.
  void grow_device(uint8_t** ptr, size_t* cap, size_t need) {
    if (*cap >= need) return;
    const size_t bytes = align_up(std::max(need, *cap + *cap / 2), size_t{1} << 20);
    if (*ptr) MSCE_CUDA_CHECK(cudaFreeAsync(*ptr, stream));
    *ptr = nullptr;
    *cap = 0;
    void* p = nullptr;
    MSCE_CUDA_CHECK(cudaMallocAsync(&p, bytes, stream));
    *ptr = static_cast<uint8_t*>(p);
    *cap = bytes;
  }

  // Waits until the slot's previous batch no longer reads its buffers.
  void reclaim(Slot& s) {
    if (s.in_flight) {
      MSCE_CUDA_CHECK(cudaEventSynchronize(s.done));
      s.in_flight = false;
    }
    s.keep.clear();
  }

  const DeviceAxis& axis(const std::shared_ptr<const ResampleAxis>& ax) {
    const ResampleAxis* key = ax.get();
    auto it = tables.find(key);
    if (it != tables.end()) return it->second;
    const size_t n_first = ax->first.size() * sizeof(int32_t);
    const size_t n_count = ax->count.size() * sizeof(int32_t);
    const size_t n_weights = ax->weights.size() * sizeof(int16_t);
    const size_t off_count = align_up(n_first, 16);
    const size_t off_weights = off_count + align_up(n_count, 16);
    void* mem = nullptr;
    MSCE_CUDA_CHECK(cudaMallocAsync(&mem, off_weights + n_weights, stream));
    char* base = static_cast<char*>(mem);
    // Pageable sources: each copy returns once the driver has taken the bytes.
    MSCE_CUDA_CHECK(cudaMemcpyAsync(base, ax->first.data(), n_first, cudaMemcpyHostToDevice, stream));
    MSCE_CUDA_CHECK(cudaMemcpyAsync(base + off_count, ax->count.data(), n_count, cudaMemcpyHostToDevice, stream));
    MSCE_CUDA_CHECK(
        cudaMemcpyAsync(base + off_weights, ax->weights.data(), n_weights, cudaMemcpyHostToDevice, stream));
    DeviceAxis d;
    d.host = ax;
    d.mem = base;
    d.first = reinterpret_cast<const int32_t*>(base);
    d.count = reinterpret_cast<const int32_t*>(base + off_count);
    d.weights = reinterpret_cast<const int16_t*>(base + off_weights);
    ++stats.table_uploads;
    return tables.emplace(key, d).first->second;
  }

  void evict_tables_if_full() {
    if (tables.size() <= kMaxCachedGeometries) return;
    for (auto& kv : tables) MSCE_CUDA_CHECK(cudaFreeAsync(kv.second.mem, stream));
    tables.clear();
  }

  // Copies a host frame's planes, row by row, into the current slot's pinned buffer.
  Frame stage(const Frame& f, size_t offsets[3]) {
    const int w = f.width, h = f.height;
    const int cw = (w + 1) / 2, ch = (h + 1) / 2;
    int rows[3] = {h, 0, 0};
    size_t row_bytes[3] = {static_cast<size_t>(w), 0, 0};
    int planes = 1;
    if (f.layout == PixelLayout::kRGB24) {
      row_bytes[0] = static_cast<size_t>(w) * 3;
    } else if (f.layout == PixelLayout::kNV12) {
      planes = 2;
      rows[1] = ch;
      row_bytes[1] = static_cast<size_t>(cw) * 2;
    } else {
      planes = 3;
      rows[1] = rows[2] = ch;
      row_bytes[1] = row_bytes[2] = static_cast<size_t>(cw);
    }
    size_t need = 0;
    for (int k = 0; k < planes; ++k) need += align_up(row_bytes[k] * rows[k], 256);
    Slot* s = &slot();
    if (pending.empty()) s->host_used = 0;  // staged bytes are only ever read through pending frames
    if (s->host_used + need > s->host_cap && s->host_used > 0) {
      flush();
      s = &slot();
    }
    // An empty slot is sized for a whole batch of frames like this one (within kBatchBytes).
    const size_t want = std::max(need, std::min(need * kBatchFrames, kBatchBytes));
    if (s->host_used == 0 && s->host_cap < want) {
      if (s->host) MSCE_CUDA_CHECK(cudaFreeHost(s->host));
      s->host = nullptr;
      s->host_cap = 0;
      const size_t bytes = align_up(want, size_t{1} << 20);
      void* p = nullptr;
      MSCE_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
      s->host = static_cast<uint8_t*>(p);
      s->host_cap = bytes;
    }
    Frame staged = f;
    for (int k = 0; k < 3; ++k) {
      offsets[k] = 0;
      staged.data[k] = nullptr;
      staged.linesize[k] = 0;
    }
    for (int k = 0; k < planes; ++k) {
      uint8_t* dst = s->host + s->host_used;
      const uint8_t* src = f.data[k];
      if (static_cast<size_t>(f.linesize[k]) == row_bytes[k]) {
        std::memcpy(dst, src, row_bytes[k] * rows[k]);
      } else {
        for (int r = 0; r < rows[k]; ++r) {
          std::memcpy(dst + r * row_bytes[k], src + static_cast<int64_t>(r) * f.linesize[k], row_bytes[k]);
        }
      }
      offsets[k] = s->host_used;
      staged.linesize[k] = static_cast<int>(row_bytes[k]);
      s->host_used += align_up(row_bytes[k] * rows[k], 256);
    }
    return staged;
  }

  void flush() {
    if (pending.empty()) return;
    Slot& s = slot();
    if (s.host_used > 0) {
      grow_device(&s.dev, &s.dev_cap, s.host_used);
      MSCE_CUDA_CHECK(cudaMemcpyAsync(s.dev, s.host, s.host_used, cudaMemcpyHostToDevice, stream));
      stats.bytes_h2d += static_cast<int64_t>(s.host_used);
    }
    for (Pending& p : pending) {
      if (!p.staged) continue;
      for (int k = 0; k < 3; ++k) {
        if (p.desc.pitch[k] > 0) p.desc.plane[k] = s.dev + reinterpret_cast<uintptr_t>(p.desc.plane[k]);
      }
    }
    // First stages run before everything else (their launches complete, in stream order,
    // before the second stages read their output): a stable partition by stage.
    std::stable_sort(pending.begin(), pending.end(),
                     [](const Pending& a, const Pending& b) { return (a.stage == 1) > (b.stage == 1); });
    const size_t firsts = static_cast<size_t>(
        std::count_if(pending.begin(), pending.end(), [](const Pending& p) { return p.stage == 1; }));
    // Scratch: the first-stage buffers (alive for the whole flush), then the per-launch
    // planes of the largest launch; launches run one after another on the stream.
    std::vector<size_t> first_off(first_bytes.size());
    size_t first_total = 0;
    for (size_t k = 0; k < first_bytes.size(); ++k) {
      first_off[k] = first_total;
      first_total += align_up(first_bytes[k], 256);
    }
    size_t need = 0;
    for (size_t lo : {size_t{0}, firsts}) {
      const size_t hi = lo == 0 ? firsts : pending.size();
      for (size_t b = lo; b < hi; b += kLaunchFrames) {
        size_t sum = 0;
        for (size_t j = b; j < std::min(hi, b + kLaunchFrames); ++j) {
          sum += align_up(pending[j].rgb_bytes, 256) + align_up(pending[j].inter_bytes, 256);
        }
        need = std::max(need, sum);
      }
    }
    grow_device(&scratch, &scratch_cap, first_total + need);
    for (Pending& p : pending) {
      if (p.stage == 1) p.desc.out = scratch + first_off[p.first];
      if (p.stage == 2) p.desc.plane[0] = scratch + first_off[p.first];
    }
    launch(0, firsts, scratch + first_total);
    launch(firsts, pending.size(), scratch + first_total);
    MSCE_CUDA_CHECK(cudaEventRecord(s.done, stream));
    s.in_flight = true;
    stats.descriptors += static_cast<int64_t>(pending.size() - firsts);
    ++stats.batches;
    pending.clear();
    first_bytes.clear();
    evict_tables_if_full();
    cur = (cur + 1) % kSlots;
    Slot& next = slot();
    reclaim(next);
    next.host_used = 0;
    next.frames = 0;
  }

  // Enqueues pending[lo, hi) in launches of kLaunchFrames, planes at `base`.
  void launch(size_t lo, size_t hi, uint8_t* base) {
    for (size_t b = lo; b < hi; b += kLaunchFrames) {
      LaunchBatch batch;
      const int n = static_cast<int>(std::min(hi - b, static_cast<size_t>(kLaunchFrames)));
      size_t off = 0;
      int64_t most[3] = {0, 0, 0};
      for (int j = 0; j < n; ++j) {
        Pending& p = pending[b + j];
        FrameDesc& d = batch.d[j];
        d = p.desc;
        d.rgb = base + off;
        off += align_up(p.rgb_bytes, 256);
        d.inter = d.h.identity ? d.rgb : base + off;
        off += align_up(p.inter_bytes, 256);
        most[0] = std::max(most[0], gpu::convert_count(d));
        most[1] = std::max(most[1], gpu::hpass_count(d));
        most[2] = std::max(most[2], gpu::vpass_count(d));
      }
      auto grid = [n](int64_t count) {
        const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, kMaxBlocksPerFrame);
        return dim3(static_cast<unsigned>(std::max<int64_t>(blocks, 1)), static_cast<unsigned>(n));
      };
      pass_kernel<kConvert><<<grid(most[0]), kThreads, 0, stream>>>(batch);
      MSCE_CUDA_CHECK(cudaGetLastError());
      if (most[1] > 0) {
        pass_kernel<kHorizontal><<<grid(most[1]), kThreads, 0, stream>>>(batch);
        MSCE_CUDA_CHECK(cudaGetLastError());
      }
      pass_kernel<kVertical><<<grid(most[2]), kThreads, 0, stream>>>(batch);
      MSCE_CUDA_CHECK(cudaGetLastError());
    }
  }

  // Queues one (frame, target) pass over `src` (staged offsets or device planes).
  void queue(const gpu::FramePlan& p, const Frame& src, const TransformSpec& spec, void* out, int64_t slot,
             bool staged, int stage, int first) {
    Pending pd;
    pd.desc = gpu::frame_desc(p, src, spec, out, slot, nullptr, nullptr);
    const auto& hx = axis(p.hx);
    const auto& vy = axis(p.vy);
    pd.desc.h = gpu::axis_desc(*p.hx, p.h_lo, p.h_n, hx.first, hx.count, hx.weights);
    pd.desc.v = gpu::axis_desc(*p.vy, p.v_lo, p.v_n, vy.first, vy.count, vy.weights);
    pd.staged = staged;
    pd.rgb_bytes = p.rgb_bytes;
    pd.inter_bytes = p.inter_bytes;
    pd.stage = stage;
    pd.first = first;
    pending.push_back(pd);
  }
};

Transformer::Transformer(int device, std::uintptr_t stream) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  DeviceScope scope(device);
  impl_->stream = reinterpret_cast<cudaStream_t>(stream);
  MSCE_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->last_event, cudaEventDisableTiming));
  MSCE_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->producer_event, cudaEventDisableTiming));
  for (auto& s : impl_->slots) MSCE_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
}

Transformer::~Transformer() {
  // Best effort: errors here cannot be reported (the CUDA context may already be gone).
  cudaSetDevice(impl_->device);
  for (auto& s : impl_->slots) {
    if (s.in_flight) cudaEventSynchronize(s.done);
  }
  cudaDeviceSynchronize();  // the last batch may still read scratch and tables
  for (auto& s : impl_->slots) {
    s.keep.clear();
    if (s.host) cudaFreeHost(s.host);
    if (s.dev) cudaFree(s.dev);
    if (s.done) cudaEventDestroy(s.done);
  }
  for (auto& kv : impl_->tables) cudaFree(kv.second.mem);
  if (impl_->scratch) cudaFree(impl_->scratch);
  if (impl_->last_event) cudaEventDestroy(impl_->last_event);
  if (impl_->producer_event) cudaEventDestroy(impl_->producer_event);
  cudaGetLastError();
}

int Transformer::device() const { return impl_->device; }

void Transformer::set_stream(std::uintptr_t stream) {
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  if (impl_->attached && s == impl_->stream) return;
  DeviceScope scope(impl_->device);
  if (impl_->attached) detach();
  if (impl_->chained) MSCE_CUDA_CHECK(cudaStreamWaitEvent(s, impl_->last_event, 0));
  impl_->stream = s;
  impl_->attached = true;
}

void Transformer::detach() {
  if (!impl_->attached) return;
  DeviceScope scope(impl_->device);
  impl_->flush();
  MSCE_CUDA_CHECK(cudaEventRecord(impl_->last_event, impl_->stream));
  impl_->chained = true;
  impl_->attached = false;
}

void Transformer::wait_for(std::uintptr_t producer) {
  const auto p = reinterpret_cast<cudaStream_t>(producer);
  if (p == impl_->stream) return;
  DeviceScope scope(impl_->device);
  MSCE_CUDA_CHECK(cudaEventRecord(impl_->producer_event, p));
  MSCE_CUDA_CHECK(cudaStreamWaitEvent(impl_->stream, impl_->producer_event, 0));
}

void Transformer::add(const Frame& frame, bool on_device, const std::vector<SlotTarget>& targets,
                      std::shared_ptr<const void> keep) {
  if (targets.empty()) return;
  MSCE_CHECK(impl_->attached, CudaError, "GPU transformer used without a stream (call set_stream first)");
  DeviceScope scope(impl_->device);
  // Geometry first: a bad crop box throws before anything is staged. A two-stage spec
  // plans its first stage on the frame and its second on the first stage's picture.
  std::vector<gpu::FramePlan> plans, seconds;
  plans.reserve(targets.size());
  seconds.reserve(targets.size());
  for (const SlotTarget& t : targets) {
    if (!t.spec || !t.out) throw TransformError("GPU transform target without a spec or an output buffer");
    const TransformSpec& spec = *t.spec;
    if (spec.two_stage()) {
      plans.push_back(gpu::plan_frame(frame.width, frame.height, t.box, spec.first_stage()));
      seconds.push_back(gpu::plan_frame(spec.pre_w, spec.pre_h, CropBox{}, spec.second_stage()));
    } else {
      plans.push_back(gpu::plan_frame(frame.width, frame.height, t.box, spec));
      seconds.emplace_back();
    }
  }
  Frame src = frame;
  size_t offsets[3] = {0, 0, 0};
  if (!on_device) {
    src = impl_->stage(frame, offsets);
    for (int k = 0; k < 3; ++k) src.data[k] = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(offsets[k]));
  }
  for (size_t j = 0; j < targets.size(); ++j) {
    const SlotTarget& t = targets[j];
    const TransformSpec& spec = *t.spec;
    if (!spec.two_stage()) {
      impl_->queue(plans[j], src, spec, t.out, t.slot, !on_device, 0, -1);
      continue;
    }
    // first stage -> a packed RGB buffer in scratch (placed at flush), read by the second
    const int first = static_cast<int>(impl_->first_bytes.size());
    impl_->first_bytes.push_back(static_cast<size_t>(spec.pre_h) * spec.pre_w * 3);
    impl_->queue(plans[j], src, spec.first_stage(), nullptr, 0, !on_device, 1, first);
    const Frame picture = rgb24_frame(nullptr, spec.pre_w, spec.pre_h);
    impl_->queue(seconds[j], picture, spec.second_stage(), t.out, t.slot, false, 2, first);
  }
  Impl::Slot& s = impl_->slot();
  if (keep) s.keep.push_back(std::move(keep));
  ++s.frames;
  ++impl_->stats.frames;
  if (s.frames >= kBatchFrames || s.host_used >= kBatchBytes) impl_->flush();
}

void Transformer::flush() {
  DeviceScope scope(impl_->device);
  impl_->flush();
}

void Transformer::copy_qwen_slot(const TransformSpec& spec, void* out, int64_t from, int64_t to) {
  DeviceScope scope(impl_->device);
  impl_->flush();
  char* o = static_cast<char*>(out);
  for (int c = 0; c < spec.qwen.channels; ++c) {
    const gpu::PadCopy2D p = gpu::qwen_pad_copy(spec, from, to, c);
    MSCE_CUDA_CHECK(cudaMemcpy2DAsync(o + p.dst_offset, p.pitch, o + p.src_offset, p.pitch, p.width, p.height,
                                      cudaMemcpyDeviceToDevice, impl_->stream));
  }
}

void Transformer::discard() {
  // Nothing queued here was enqueued on the stream yet, so nothing needs waiting for.
  impl_->pending.clear();
  impl_->first_bytes.clear();
  Impl::Slot& s = impl_->slot();
  s.keep.clear();
  s.host_used = 0;
  s.frames = 0;
}

void Transformer::finish(bool synchronize) {
  DeviceScope scope(impl_->device);
  impl_->flush();
  for (auto& s : impl_->slots) {
    if (!s.keep.empty() || synchronize) impl_->reclaim(s);
  }
  if (synchronize) MSCE_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

Transformer::Stats Transformer::stats() const { return impl_->stats; }

namespace {

struct Pool {
  std::mutex mu;
  std::map<int, std::vector<std::unique_ptr<Transformer>>> idle;
};

// Never destroyed: tearing CUDA objects down during static destruction races the driver.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

std::shared_ptr<Transformer> acquire_transformer(int device, std::uintptr_t stream) {
  std::unique_ptr<Transformer> t;
  {
    std::lock_guard<std::mutex> lock(pool().mu);
    auto& v = pool().idle[device];
    if (!v.empty()) {
      t = std::move(v.back());
      v.pop_back();
    }
  }
  if (t) {
    t->set_stream(stream);
  } else {
    t = std::make_unique<Transformer>(device, stream);
  }
  return std::shared_ptr<Transformer>(t.release(), [device](Transformer* p) {
    std::unique_ptr<Transformer> owned(p);
    try {
      owned->discard();  // a call that failed half-way must not leak its frames into the next one
      owned->detach();   // the caller's stream may not outlive this call
    } catch (const std::exception&) {
      return;  // a broken transformer is destroyed, not pooled
    }
    std::lock_guard<std::mutex> lock(pool().mu);
    auto& v = pool().idle[device];
    if (v.size() < 4) v.push_back(std::move(owned));
  });
}

}  // namespace cuda
}  // namespace msce

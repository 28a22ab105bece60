// The only pybind11 file: exposes the native core as msce._C.
// Long calls release the GIL; C++ exceptions become msce.errors classes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/cpus.hpp"
#include "common/error.hpp"
#include "common/output_pool.hpp"
#include "decode/ffmpeg_log.hpp"
#include "decode/reader.hpp"
#include "face/hold.hpp"
#include "face/track.hpp"
#include "motion/energy.hpp"
#include "motion/spot.hpp"
#include "pipeline/load.hpp"
#include "pixel/pixel_math.hpp"
#include "pixel/resample.hpp"
#include "pixel/simd_dispatch.hpp"
#include "pixel/transform.hpp"
#include "pixel/transform_desc.hpp"
#include "select/plan.hpp"
#if defined(MSCE_HAVE_CUDA)
#include "pipeline/load_cuda.hpp"
#include "pixel/transform_cuda.hpp"
#if defined(MSCE_HAVE_FFMPEG)
#include "decode/reader_cuda.hpp"
#endif
#endif

namespace py = pybind11;
using namespace msce;

namespace {

// An enum argument given as the exported enum member (msce._C.Layout.qwen, ...) or its
// integer value; anything outside the enum is a TransformError naming the field.
template <typename E>
E enum_arg(const py::handle& value, const char* name, int count) {
  const int i = value.cast<int>();
  if (i < 0 || i >= count) {
    throw TransformError(std::string(name) + " must be one of 0.." + std::to_string(count - 1) + " (got " +
                         std::to_string(i) + ")");
  }
  return static_cast<E>(i);
}

void set_python_error(const char* cls, const char* what) {
  py::object errors = py::module_::import("msce.errors");
  py::object type = errors.attr(cls);
  PyErr_SetString(type.ptr(), what);
}

// ---- FFmpeg log lines -> the `msce.ffmpeg` logger ----------------------------------------
// FFmpeg's lines are buffered by the native callback (decode/ffmpeg_log.hpp) and emitted
// here, on a thread that holds the GIL: error-and-worse as WARNING, warnings as INFO, the
// rest as DEBUG. A NullHandler on the logger keeps them off stderr until the application
// configures logging. MSCE_LOG_LEVEL (an FFmpeg level name or number) sets which lines are
// kept; the default is "error".

int python_level(int av_level) {
  if (av_level <= ffmpeg_log::kError) return 30;    // logging.WARNING
  if (av_level <= ffmpeg_log::kWarning) return 20;  // logging.INFO
  return 10;                                        // logging.DEBUG
}

// Emits the buffered lines; needs the GIL. Never throws and leaves no Python error set.
void flush_ffmpeg_log() noexcept {
  std::size_t dropped = 0;
  std::vector<ffmpeg_log::Record> lines;
  try {
    lines = ffmpeg_log::drain(&dropped);
  } catch (...) {
    return;
  }
  if (lines.empty() && dropped == 0) return;
  PyObject *type = nullptr, *value = nullptr, *trace = nullptr;
  PyErr_Fetch(&type, &value, &trace);  // an error being raised stays as it was
  try {
    py::object logger = py::module_::import("logging").attr("getLogger")("msce.ffmpeg");
    for (const auto& r : lines) {
      auto text = py::reinterpret_steal<py::str>(
          PyUnicode_DecodeUTF8(r.text.data(), static_cast<py::ssize_t>(r.text.size()), "replace"));
      if (!text) throw py::error_already_set();
      logger.attr("log")(python_level(r.level), "%s", text);
    }
    if (dropped > 0) {
      logger.attr("log")(30, "%d more FFmpeg log lines were dropped (buffer full)", dropped);
    }
  } catch (...) {
    PyErr_Clear();
  }
  PyErr_Restore(type, value, trace);
}

// Flushes FFmpeg's lines when the native call that made them returns or throws (the GIL
// is held at that point in every binding that uses it).
struct FlushFfmpegLog {
  FlushFfmpegLog() = default;
  FlushFfmpegLog(const FlushFfmpegLog&) = delete;
  FlushFfmpegLog& operator=(const FlushFfmpegLog&) = delete;
  ~FlushFfmpegLog() { flush_ffmpeg_log(); }
};

void install_ffmpeg_log() {
  int level = ffmpeg_log::kError;
  if (const char* env = std::getenv("MSCE_LOG_LEVEL")) {
    int parsed = 0;
    if (ffmpeg_log::parse_level(env, &parsed)) level = parsed;
  }
  ffmpeg_log::install(level);
  py::module_ logging = py::module_::import("logging");
  logging.attr("getLogger")("msce.ffmpeg").attr("addHandler")(logging.attr("NullHandler")());
}

// A path from Python (str, bytes or os.PathLike) as the bytes the OS sees (os.fsencode,
// so undecodable names survive); a NUL byte is refused here, before any C string exists.
std::string fs_path(const py::object& path) {
  py::bytes raw = py::module_::import("os").attr("fsencode")(path);
  std::string s = raw;
  if (s.find('\0') != std::string::npos) {
    throw DecodeError("the video path " + std::string(py::repr(path)) +
                      " contains a NUL byte, so it cannot name a file");
  }
  return s;
}

py::dict metadata_dict(const VideoMetadata& m) {
  py::dict d;
  d["path"] = py::module_::import("os").attr("fsdecode")(py::bytes(m.path));
  d["container"] = m.container;
  d["codec"] = m.codec;
  d["pixel_format"] = m.pixel_format;
  d["bit_depth"] = m.bit_depth;
  d["coded_width"] = m.coded_width;
  d["coded_height"] = m.coded_height;
  d["width"] = m.width;
  d["height"] = m.height;
  d["rotation"] = m.rotation;
  d["num_frames"] = m.num_frames;
  d["header_num_frames"] = m.header_num_frames;
  d["duration"] = m.duration;
  d["average_fps"] = m.average_fps;
  d["variable_frame_rate"] = m.variable_frame_rate;
  d["color_space"] = m.color_space;
  d["color_range"] = m.color_range;
  d["color_matrix"] = static_cast<int>(m.matrix);
  d["full_range"] = m.range == ColorRange::kFull;
  d["timestamps"] = py::array_t<double>(static_cast<py::ssize_t>(m.timestamps.size()), m.timestamps.data());
  d["stream"] = m.stream;
  py::list streams;
  for (const VideoStreamInfo& v : m.video_streams) {
    py::dict s;
    s["index"] = v.index;
    s["codec"] = v.codec;
    s["width"] = v.width;
    s["height"] = v.height;
    s["rotation"] = v.rotation;
    s["fps"] = v.fps;
    s["duration"] = v.duration;
    s["frames"] = v.frames;
    s["default"] = v.is_default;
    s["attached_pic"] = v.attached_pic;
    streams.append(s);
  }
  d["video_streams"] = streams;
  return d;
}

TransformSpec spec_from_dict(const py::dict& d) {
  TransformSpec s;
  s.out_h = d["out_h"].cast<int>();
  s.out_w = d["out_w"].cast<int>();
  s.interp = enum_arg<Interp>(d["interp"], "interp", 3);
  s.layout = enum_arg<Layout>(d["layout"], "layout", 3);
  s.dtype = enum_arg<DType>(d["dtype"], "dtype", 4);
  s.normalize = d["normalize"].cast<bool>();
  auto mean = d["mean"].cast<std::vector<float>>();
  auto std_ = d["std"].cast<std::vector<float>>();
  if (mean.size() != 3 || std_.size() != 3) throw TransformError("mean and std need 3 values");
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = mean[c];
    s.std[c] = std_[c];
  }
  if (d.contains("resize_h")) {  // output crop (optional keys)
    s.resize_h = d["resize_h"].cast<int>();
    s.resize_w = d["resize_w"].cast<int>();
    s.crop_y = d["crop_y"].cast<int>();
    s.crop_x = d["crop_x"].cast<int>();
  }
  if (d.contains("pre_h")) {  // two-stage resample (optional keys)
    s.pre_h = d["pre_h"].cast<int>();
    s.pre_w = d["pre_w"].cast<int>();
  }
  if (s.layout == Layout::kQwen) {
    s.qwen.patch = d["patch"].cast<int>();
    s.qwen.temporal = d["temporal"].cast<int>();
    s.qwen.merge = d["merge"].cast<int>();
    s.qwen.channels = 3;
    if (s.qwen.patch > 0) {
      s.qwen.grid_h = s.out_h / s.qwen.patch;
      s.qwen.grid_w = s.out_w / s.qwen.patch;
    }
  }
  return s;
}

// The parts of a job dict that do not depend on where the output lives.
LoadJob job_from_dict(const py::dict& d) {
  LoadJob job;
  job.indices = d["indices"].cast<std::vector<int64_t>>();
  if (!d["crops"].is_none()) {
    for (const auto& c : d["crops"].cast<py::list>()) {
      auto t = c.cast<std::vector<int>>();
      if (t.size() != 4) throw TransformError("a crop box is (x, y, w, h)");
      job.crops.push_back(CropBox{t[0], t[1], t[2], t[3]});
    }
  }
  job.spec = spec_from_dict(d["spec"].cast<py::dict>());
  job.slots = d["slots"].cast<int64_t>();
  return job;
}

int64_t job_bytes(const LoadJob& job) {
  const int64_t esz = static_cast<int64_t>(job.spec.element_size());
  if (job.spec.layout == Layout::kQwen) {
    return (job.slots / job.spec.qwen.temporal) * job.spec.qwen.grid_h * job.spec.qwen.grid_w *
           px::qwen_row_width(job.spec.qwen) * esz;
  }
  return job.spec.buffer_elements(job.slots) * esz;
}

// Python job dicts -> LoadJobs writing into host arrays; `keep` holds the arrays so their
// memory outlives the call.
std::vector<LoadJob> jobs_from_list(const py::list& jobs, std::vector<py::array>& keep) {
  std::vector<LoadJob> out;
  for (const auto& item : jobs) {
    py::dict d = item.cast<py::dict>();
    LoadJob job = job_from_dict(d);
    py::array arr = d["out"].cast<py::array>();
    if (!(arr.flags() & py::array::c_style) || !arr.writeable()) {
      throw TransformError("output buffer must be a writable C-contiguous array");
    }
    const int64_t need_bytes = job_bytes(job);
    if (arr.nbytes() != need_bytes) {
      throw TransformError("output buffer holds " + std::to_string(arr.nbytes()) + " bytes, expected " +
                           std::to_string(need_bytes));
    }
    job.out = arr.mutable_data();
    keep.push_back(arr);
    out.push_back(std::move(job));
  }
  return out;
}

py::tuple plan_tuple(const PlanResult& r) {
  return py::make_tuple(r.indices, r.times, r.roles, r.groups);
}

}  // namespace

// ---- GPU transform and NVDEC (csrc/pixel/transform_cuda.cu, csrc/decode/reader_cuda.cpp) ----
// Device buffers cross the boundary through __cuda_array_interface__ (torch CUDA tensors,
// CuPy, Numba, ...), never as bare integers; streams are cudaStream_t handles as torch
// exposes them (torch.cuda.Stream.cuda_stream).
namespace {

// bfloat16 has no array-interface type code (torch refuses to export it): its buffers cross
// as int16 views of the same memory.
const char* typestr_for(DType t) {
  switch (t) {
    case DType::kU8: return "|u1";
    case DType::kF16: return "<f2";
    case DType::kBF16: return "<i2";
    default: return "<f4";
  }
}

// Host frames of any PixelLayout from dicts {layout, planes: [2-D uint8 arrays], width,
// height, matrix, full_range}; `keep` holds the arrays.
std::vector<Frame> frames_from_list(const py::list& frames, std::vector<py::array>& keep) {
  std::vector<Frame> out;
  for (const auto& item : frames) {
    py::dict d = item.cast<py::dict>();
    Frame f;
    f.layout = enum_arg<PixelLayout>(d["layout"], "layout", 3);
    f.width = d["width"].cast<int>();
    f.height = d["height"].cast<int>();
    f.matrix = enum_arg<ColorMatrix>(d["matrix"], "matrix", 3);
    f.range = d["full_range"].cast<bool>() ? ColorRange::kFull : ColorRange::kLimited;
    const int cw = (f.width + 1) / 2, ch = (f.height + 1) / 2;
    const int planes = f.layout == PixelLayout::kRGB24 ? 1 : (f.layout == PixelLayout::kNV12 ? 2 : 3);
    const int rows[3] = {f.height, ch, ch};
    const int min_bytes[3] = {f.layout == PixelLayout::kRGB24 ? 3 * f.width : f.width,
                              f.layout == PixelLayout::kNV12 ? 2 * cw : cw, cw};
    auto list = d["planes"].cast<py::list>();
    if (static_cast<int>(list.size()) != planes) {
      throw TransformError("frame layout " + std::to_string(static_cast<int>(f.layout)) + " needs " +
                           std::to_string(planes) + " planes");
    }
    for (int k = 0; k < planes; ++k) {
      auto a = list[k].cast<py::array_t<uint8_t, py::array::c_style>>();
      if (a.ndim() != 2 || a.shape(0) < rows[k] || a.shape(1) < min_bytes[k]) {
        throw TransformError("plane " + std::to_string(k) + " must be a 2-D uint8 array of at least " +
                             std::to_string(rows[k]) + " x " + std::to_string(min_bytes[k]));
      }
      f.data[k] = a.data();
      f.linesize[k] = static_cast<int>(a.shape(1));
      keep.push_back(a);
    }
    f.index = static_cast<int64_t>(out.size());
    out.push_back(f);
  }
  return out;
}

// Runs `fn(frame, box, spec, out, slot)` for every slot of every job, then Qwen padding
// with `pad(spec, out, from, to)`.
template <typename Fn, typename Pad>
void run_frame_list_host(const std::vector<Frame>& frames, std::vector<LoadJob>& jobs, Fn fn, Pad pad) {
  for (LoadJob& job : jobs) {
    job.spec.validate();
    if (!job.crops.empty() && job.crops.size() != job.indices.size()) {
      throw TransformError("one crop box per frame, or none");
    }
    for (size_t s = 0; s < job.indices.size(); ++s) {
      const int64_t idx = job.indices[s];
      if (idx < 0 || idx >= static_cast<int64_t>(frames.size())) throw PlanError("frame index out of range");
      fn(frames[idx], job.crops.empty() ? CropBox{} : job.crops[s], job.spec, job.out, static_cast<int64_t>(s));
    }
    const int64_t n = static_cast<int64_t>(job.indices.size());
    if (job.spec.layout == Layout::kQwen && n > 0) {
      for (int64_t s = n; s < job.slots; ++s) pad(job.spec, job.out, n - 1, s);
    }
  }
}

// A load's counters (LoadStats) as the dict the Python layer reads.
py::dict stats_dict(const LoadStats& st) {
  py::dict d;
  d["frames_decoded"] = st.frames_decoded;
  d["frames_transformed"] = st.frames_transformed;
  d["seeks"] = st.seeks;
  d["decode_seconds"] = st.decode_seconds;
  d["total_seconds"] = st.total_seconds;
  return d;
}

#if defined(MSCE_HAVE_CUDA)
struct CudaArray {
  void* ptr = nullptr;
  std::vector<int64_t> shape;
  std::string typestr;
  int64_t nbytes = 0;
};

// Reads __cuda_array_interface__ (v2/v3): C-contiguous, writable when `writable`.
CudaArray cuda_array(const py::handle& o, const std::string& what, bool writable) {
  if (!py::hasattr(o, "__cuda_array_interface__")) {
    throw TransformError(what + " must be a CUDA array (an object with __cuda_array_interface__, e.g. a torch "
                                "CUDA tensor), got " + std::string(py::str(py::type::of(o).attr("__name__"))));
  }
  py::dict cai = o.attr("__cuda_array_interface__");
  CudaArray a;
  auto data = cai["data"].cast<py::tuple>();
  a.ptr = reinterpret_cast<void*>(data[0].cast<std::uintptr_t>());
  if (writable && data[1].cast<bool>()) throw TransformError(what + " is read-only");
  a.shape = cai["shape"].cast<std::vector<int64_t>>();
  a.typestr = cai["typestr"].cast<std::string>();
  const int64_t itemsize = std::stoll(a.typestr.substr(2));
  int64_t n = 1;
  for (int64_t v : a.shape) n *= v;
  a.nbytes = n * itemsize;
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    auto strides = cai["strides"].cast<std::vector<int64_t>>();
    int64_t expect = itemsize;
    for (size_t k = a.shape.size(); k-- > 0;) {
      if (a.shape[k] > 1 && strides[k] != expect) throw TransformError(what + " must be C-contiguous");
      expect *= a.shape[k];
    }
  }
  return a;
}

std::vector<LoadJob> cuda_jobs(const py::list& jobs) {
  std::vector<LoadJob> out;
  for (const auto& item : jobs) {
    py::dict d = item.cast<py::dict>();
    LoadJob job = job_from_dict(d);
    const CudaArray a = cuda_array(d["out"], "output tensor", /*writable=*/true);
    const char* want = typestr_for(job.spec.dtype);
    if (a.typestr != want && !(a.typestr == "<u1" && job.spec.dtype == DType::kU8)) {
      throw TransformError("output tensor has dtype " + a.typestr + ", the target needs " + want);
    }
    if (a.nbytes != job_bytes(job)) {
      throw TransformError("output tensor holds " + std::to_string(a.nbytes) + " bytes, expected " +
                           std::to_string(job_bytes(job)));
    }
    job.out = a.ptr;
    out.push_back(std::move(job));
  }
  return out;
}

#endif

[[noreturn]] void no_cuda() {
  throw CudaError("msce was built without CUDA (no nvcc at build time, or MSCE_CUDA=OFF): rebuild with nvcc on "
                  "PATH or MSCE_CUDA=ON");
}

void register_cuda_bindings(py::module_& m) {
  m.def("cuda_status", []() {
    py::dict d;
#if defined(MSCE_HAVE_CUDA)
    const cuda::RuntimeStatus s = cuda::runtime_status();
    d["built_with_cuda"] = true;
    d["ok"] = s.ok;
    d["reason"] = s.reason;
    d["device_count"] = s.device_count;
    d["driver_version"] = s.driver_version;
    d["runtime_version"] = s.runtime_version;
#else
    d["built_with_cuda"] = false;
    d["ok"] = false;
    d["reason"] = "msce was built without CUDA (no nvcc at build time, or MSCE_CUDA=OFF)";
    d["device_count"] = 0;
    d["driver_version"] = 0;
    d["runtime_version"] = 0;
#endif
    return d;
  });
  m.def("nvdec_status", []() {
#if defined(MSCE_HAVE_CUDA) && defined(MSCE_HAVE_FFMPEG)
    std::string why;
    const bool ok = nvdec_supported(&why);
    return py::make_tuple(ok, why);
#elif defined(MSCE_HAVE_CUDA)
    return py::make_tuple(false, std::string("msce was built without FFmpeg, so it has no NVDEC decoder"));
#else
    return py::make_tuple(false, std::string("msce was built without CUDA"));
#endif
  });

  // CPU decode (the reader) + GPU transform into CUDA tensors.
  m.def(
      "cuda_run_jobs",
      [](VideoReader& reader, const py::list& jobs, int device, std::uintptr_t stream) -> py::dict {
        FlushFfmpegLog flush;
#if defined(MSCE_HAVE_CUDA)
        auto native = cuda_jobs(jobs);
        LoadStats st;
        {
          py::gil_scoped_release release;
          st = run_load_jobs_cuda(reader, native, CudaPlacement{device, stream});
        }
        return stats_dict(st);
#else
        (void)reader, (void)jobs, (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("reader"), py::arg("jobs"), py::arg("device"), py::arg("stream"));

  // NVDEC decode + GPU transform; UnsupportedError names why NVDEC cannot be used.
  m.def(
      "nvdec_run_jobs",
      [](VideoReader& reader, const py::list& jobs, int device, std::uintptr_t stream,
         int64_t seek_threshold) -> py::dict {
        FlushFfmpegLog flush;
#if defined(MSCE_HAVE_CUDA) && defined(MSCE_HAVE_FFMPEG)
        auto native = cuda_jobs(jobs);
        const VideoMetadata meta = reader.metadata();
        LoadStats st;
        {
          py::gil_scoped_release release;
          st = run_load_jobs_nvdec(meta, native, CudaPlacement{device, stream}, seek_threshold);
        }
        return stats_dict(st);
#else
        (void)reader, (void)jobs, (void)device, (void)stream, (void)seek_threshold;
#if defined(MSCE_HAVE_CUDA)
        throw UnsupportedError("msce was built without FFmpeg, so it has no NVDEC decoder");
#else
        no_cuda();
#endif
#endif
      },
      py::arg("reader"), py::arg("jobs"), py::arg("device"), py::arg("stream"), py::arg("seek_threshold") = 16);

  // The NVDEC reader's indexing and seeking, run with FFmpeg's software decoder: RGB frames
  // (N, H, W, 3) at `indices` and the reader's stats. For tests on machines without a GPU.
  m.def(
      "nvdec_reader_software_frames",
      [](VideoReader& reader, const std::vector<int64_t>& indices, int64_t seek_threshold) -> py::tuple {
        FlushFfmpegLog flush;
#if defined(MSCE_HAVE_CUDA) && defined(MSCE_HAVE_FFMPEG)
        const VideoMetadata meta = reader.metadata();
        py::array_t<uint8_t> out({static_cast<py::ssize_t>(indices.size()), static_cast<py::ssize_t>(meta.height),
                                  static_cast<py::ssize_t>(meta.width), py::ssize_t{3}});
        uint8_t* dst = out.mutable_data();
        std::vector<int64_t> got;
        VideoReader::Stats st;
        {
          py::gil_scoped_release release;
          NvdecReader nv(meta, 0, seek_threshold, /*hardware=*/false);
          TransformSpec spec;
          spec.out_h = meta.height;
          spec.out_w = meta.width;
          spec.layout = Layout::kNHWC;
          spec.dtype = DType::kU8;
          nv.decode(indices, [&](const Frame& f, std::shared_ptr<const void>) {
            if (got.size() >= indices.size()) throw DecodeError("NVDEC reader delivered too many frames");
            transform_frame_cpu(f, CropBox{}, spec, dst, static_cast<int64_t>(got.size()));
            got.push_back(f.index);
          });
          st = nv.last_stats();
        }
        py::dict d;
        d["frames_decoded"] = st.frames_decoded;
        d["seeks"] = st.seeks;
        d["packets_read"] = st.packets_read;
        d["indices"] = got;
        return py::make_tuple(out, d);
#else
        (void)reader, (void)indices, (void)seek_threshold;
        throw UnsupportedError("the NVDEC reader needs a build with CUDA and FFmpeg");
#endif
      },
      py::arg("reader"), py::arg("indices"), py::arg("seek_threshold") = 16);

  // (T, H, W, 3) uint8 RGB frames: a host array (staged + copied) or a CUDA array (in place).
  m.def(
      "cuda_run_array_jobs",
      [](const py::object& frames, const py::list& jobs, int device, std::uintptr_t stream) {
#if defined(MSCE_HAVE_CUDA)
        auto native = cuda_jobs(jobs);
        const uint8_t* data = nullptr;
        bool on_device = false;
        std::vector<int64_t> shape;
        py::array_t<uint8_t, py::array::c_style> host;
        if (py::hasattr(frames, "__cuda_array_interface__")) {
          const CudaArray a = cuda_array(frames, "frames", /*writable=*/false);
          if (a.typestr != "|u1" && a.typestr != "<u1") throw TransformError("frames must be uint8, got " + a.typestr);
          data = static_cast<const uint8_t*>(a.ptr);
          shape = a.shape;
          on_device = true;
        } else {
          host = frames.cast<py::array_t<uint8_t, py::array::c_style>>();
          data = host.data();
          for (py::ssize_t k = 0; k < host.ndim(); ++k) shape.push_back(host.shape(k));
        }
        if (shape.size() != 4 || shape[3] != 3) throw TransformError("frames must have shape (T, H, W, 3)");
        py::gil_scoped_release release;
        run_array_jobs_cuda(data, on_device, shape[0], static_cast<int>(shape[1]), static_cast<int>(shape[2]), native,
                            CudaPlacement{device, stream});
#else
        (void)frames, (void)jobs, (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("frames"), py::arg("jobs"), py::arg("device"), py::arg("stream"));

  // Host frames of any layout through one backend: "cpu" (transform_cpu.cpp), "emulate"
  // (the CUDA kernels' element bodies in host loops) or "cuda". Outputs: numpy arrays for
  // cpu/emulate, CUDA arrays for cuda. For tests of the three paths on identical input.
  m.def(
      "transform_frame_list",
      [](const py::list& frames, const py::list& jobs, const std::string& backend, int device, std::uintptr_t stream) {
        std::vector<py::array> keep;
        const std::vector<Frame> native_frames = frames_from_list(frames, keep);
        if (backend == "cpu" || backend == "emulate") {
          auto native = jobs_from_list(jobs, keep);
          py::gil_scoped_release release;
          if (backend == "cpu") {
            run_frame_list_host(native_frames, native, transform_frame_cpu, copy_qwen_slot);
          } else {
            run_frame_list_host(native_frames, native, gpu::transform_frame_emulated, gpu::copy_qwen_slot_emulated);
          }
          return;
        }
        if (backend != "cuda") throw TransformError("backend must be 'cpu', 'emulate' or 'cuda' (got '" + backend + "')");
#if defined(MSCE_HAVE_CUDA)
        auto native = cuda_jobs(jobs);
        py::gil_scoped_release release;
        run_frame_jobs_cuda(native_frames, native, CudaPlacement{device, stream});
#else
        (void)device, (void)stream;
        no_cuda();
#endif
      },
      py::arg("frames"), py::arg("jobs"), py::arg("backend"), py::arg("device") = 0, py::arg("stream") = 0);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "msce native core: decode, plan, fused transform";

  // The C++ enums, so Python names them instead of copying integer tables.
  py::enum_<Layout>(m, "Layout")
      .value("qwen", Layout::kQwen)
      .value("NCHW", Layout::kNCHW)
      .value("NHWC", Layout::kNHWC);
  py::enum_<DType>(m, "DType")
      .value("uint8", DType::kU8)
      .value("float16", DType::kF16)
      .value("float32", DType::kF32)
      .value("bfloat16", DType::kBF16);
  py::enum_<Interp>(m, "Interp")
      .value("bicubic", Interp::kBicubic)
      .value("bilinear", Interp::kBilinear)
      .value("lanczos", Interp::kLanczos);
  py::enum_<PixelLayout>(m, "PixelLayout")
      .value("yuv420p", PixelLayout::kYUV420P)
      .value("nv12", PixelLayout::kNV12)
      .value("rgb24", PixelLayout::kRGB24);
  py::enum_<ColorMatrix>(m, "ColorMatrix")
      .value("bt601", ColorMatrix::kBT601)
      .value("bt709", ColorMatrix::kBT709)
      .value("bt2020", ColorMatrix::kBT2020);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const UnsupportedError& e) {
      set_python_error("UnsupportedError", e.what());
    } catch (const DecodeError& e) {
      set_python_error("DecodeError", e.what());
    } catch (const PlanError& e) {
      set_python_error("PlanError", e.what());
    } catch (const TransformError& e) {
      set_python_error("TransformError", e.what());
    } catch (const CudaError& e) {
      set_python_error("CudaError", e.what());
    } catch (const Error& e) {
      set_python_error("MsceError", e.what());
    }
  });

#ifdef MSCE_HAVE_FFMPEG
  m.attr("has_ffmpeg") = true;
#else
  m.attr("has_ffmpeg") = false;
#endif
#ifdef MSCE_HAVE_CUDA
  m.attr("built_with_cuda") = true;
#else
  m.attr("built_with_cuda") = false;
#endif
  register_cuda_bindings(m);

  install_ffmpeg_log();
  m.def("flush_ffmpeg_log", &flush_ffmpeg_log, "Emits FFmpeg's buffered log lines to the msce.ffmpeg logger.");
  m.def("ffmpeg_log_level", &ffmpeg_log::level, "FFmpeg level of the lines kept (16 = error).");
  m.def(
      "set_ffmpeg_log_level",
      [](const py::object& level) {
        int v = 0;
        if (!ffmpeg_log::parse_level(py::str(level), &v)) {
          throw py::value_error("FFmpeg log level must be quiet, panic, fatal, error, warning, info, verbose, "
                                "debug, trace or a number in -8..56 (got " + std::string(py::repr(level)) + ")");
        }
        ffmpeg_log::set_level(v);
      },
      py::arg("level"));

  py::class_<VideoReader>(m, "VideoReader")
      .def(py::init([](const py::object& path, int threads, int64_t seek_threshold, const std::string& protocols,
                       int stream) {
             FlushFfmpegLog flush;
             ReaderOptions o;
             o.threads = threads;
             o.seek_threshold = seek_threshold;
             o.protocols = protocols;
             o.stream = stream;
             const std::string native = fs_path(path);
             py::gil_scoped_release release;
             return std::make_unique<VideoReader>(native, o);
           }),
           py::arg("path"), py::arg("threads") = 0, py::arg("seek_threshold") = 16, py::arg("protocols") = "",
           py::arg("stream") = -1)
      .def("metadata", [](const VideoReader& r) { return metadata_dict(r.metadata()); })
      .def("last_stats", [](const VideoReader& r) {
        const auto s = r.last_stats();
        py::dict d;
        d["frames_decoded"] = s.frames_decoded;
        d["seeks"] = s.seeks;
        d["packets_read"] = s.packets_read;
        d["damaged_frames"] = s.damaged;
        return d;
      })
      .def("run_jobs",
           [](VideoReader& r, const py::list& jobs, int threads) {
             FlushFfmpegLog flush;
             std::vector<py::array> keep;
             auto native = jobs_from_list(jobs, keep);
             LoadStats st;
             {
               py::gil_scoped_release release;
               st = run_load_jobs(r, native, threads);
             }
             return stats_dict(st);
           },
           py::arg("jobs"), py::arg("threads") = 0);

  m.def(
      "run_array_jobs",
      [](py::array_t<uint8_t, py::array::c_style> frames, const py::list& jobs, int threads) {
        if (frames.ndim() != 4 || frames.shape(3) != 3) {
          throw TransformError("frames must have shape (T, H, W, 3)");
        }
        std::vector<py::array> keep;
        auto native = jobs_from_list(jobs, keep);
        const uint8_t* data = frames.data();
        const int64_t t = frames.shape(0);
        const int h = static_cast<int>(frames.shape(1)), w = static_cast<int>(frames.shape(2));
        py::gil_scoped_release release;
        run_array_jobs(data, t, h, w, native, threads);
      },
      py::arg("frames"), py::arg("jobs"), py::arg("threads") = 0);

  // ---- plans -----------------------------------------------------------------------
  m.def("plan_uniform", [](const std::vector<double>& ts, double duration, double fps) {
    return plan_tuple(plan_uniform(ts, duration, fps));
  });
  m.def("plan_dense", [](const std::vector<double>& ts) { return plan_tuple(plan_dense(ts)); });
  m.def("plan_count", [](const std::vector<double>& ts, double duration, int64_t n) {
    return plan_tuple(plan_count(ts, duration, n));
  });
  m.def("plan_keyframes_with_gaps", [](const std::vector<double>& ts, double duration, double fps, int gaps) {
    return plan_tuple(plan_keyframes_with_gaps(ts, duration, fps, gaps));
  });
  m.def("nearest_frame", &nearest_frame);
  m.def("seeded_permutation", &seeded_permutation, py::arg("n"), py::arg("seed"));
  m.def("smart_resize", [](int h, int w, int factor, int64_t min_pixels, int64_t max_pixels) {
    int oh = 0, ow = 0;
    smart_resize(h, w, factor, min_pixels, max_pixels, &oh, &ow);
    return py::make_tuple(oh, ow);
  });

  // ---- pixel math, exposed for unit tests ------------------------------------------------
  m.def("resample_axis", [](int in_size, int out_size, const py::object& interp) {
    const ResampleAxis a = make_resample_axis(in_size, out_size, enum_arg<Interp>(interp, "interp", 3));
    py::dict d;
    d["first"] = a.first;
    d["count"] = a.count;
    d["weights"] = a.weights;
    d["taps"] = a.taps;
    d["precision"] = a.precision;
    return d;
  });
  m.def("yuv_to_rgb", [](const py::object& matrix, bool full, int y, int u, int v) {
    const px::ColorCoeffs c = px::make_color_coeffs(static_cast<int>(enum_arg<ColorMatrix>(matrix, "matrix", 3)), full);
    uint8_t rgb[3];
    px::yuv_to_rgb(c, y, u, v, rgb);
    return py::make_tuple(rgb[0], rgb[1], rgb[2]);
  });
  // The CPU transform's SIMD path: (active, detected); MSCE_SIMD forces the active one and a
  // bad or unsupported value raises TransformError here.
  m.def("simd_level", []() {
    return py::make_tuple(std::string(simd_level_name(active_simd_level())),
                          std::string(simd_level_name(detected_simd_level())));
  });
  // Output memory from the process's pool (common/output_pool.hpp): a writable byte buffer that
  // returns its block to the pool when the last reference (a tensor made by torch.frombuffer)
  // goes away.
  py::class_<PooledBuffer>(m, "OutputBuffer", py::buffer_protocol())
      .def(py::init([](int64_t nbytes) {
             if (nbytes <= 0) throw py::value_error("an output buffer needs a positive size");
             try {
               return new PooledBuffer(static_cast<size_t>(nbytes));
             } catch (const std::bad_alloc&) {
               throw TransformError("cannot map " + std::to_string(nbytes) + " bytes for the output");
             }
           }),
           py::arg("nbytes"))
      .def_property_readonly("nbytes", [](const PooledBuffer& b) { return static_cast<int64_t>(b.size()); })
      .def_buffer([](PooledBuffer& b) {
        return py::buffer_info(b.data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.size())}, {1}, /*readonly=*/false);
      });
  m.def("usable_cpus", &usable_cpus,
        "CPUs this process may use (affinity mask, capped by a cgroup v2 quota): the default worker count.");
  m.def("output_pool_stats", []() {
    const OutputPoolStats s = OutputPool::instance().stats();
    py::dict d;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["cached_bytes"] = s.cached_bytes;
    d["cached_blocks"] = s.cached_blocks;
    d["in_use_bytes"] = s.in_use_bytes;
    d["limit_bytes"] = s.limit_bytes;
    return d;
  });
  m.def("output_pool_set_limit", [](int64_t bytes) { OutputPool::instance().set_limit(bytes); }, py::arg("bytes"));
  m.def("output_pool_clear", []() { return OutputPool::instance().clear(); });
  m.def("float_to_half", [](float f) { return float_to_half(f); });
  m.def("float_to_bfloat16", [](float f) { return float_to_bfloat16(f); });
  // One 4:2:0 frame (planar Y, U, V or NV12 with `v` = None) through the CPU transform's
  // colour path at full size: RGB uint8 (H, W, 3). For tests and external decoders.
  m.def(
      "yuv420_to_rgb",
      [](py::array_t<uint8_t, py::array::c_style> y, py::array_t<uint8_t, py::array::c_style> u,
         py::object v, const py::object& matrix, bool full) {
        if (y.ndim() != 2 || u.ndim() != 2) throw TransformError("planes must be 2-D arrays");
        Frame f;
        f.width = static_cast<int>(y.shape(1));
        f.height = static_cast<int>(y.shape(0));
        const int cw = (f.width + 1) / 2, ch = (f.height + 1) / 2;
        f.data[0] = y.data();
        f.linesize[0] = f.width;
        py::array_t<uint8_t, py::array::c_style> va;
        if (v.is_none()) {
          if (u.shape(0) != ch || u.shape(1) != 2 * cw) throw TransformError("NV12 UV plane must be (ceil(H/2), 2*ceil(W/2))");
          f.layout = PixelLayout::kNV12;
          f.data[1] = u.data();
          f.linesize[1] = 2 * cw;
        } else {
          va = v.cast<py::array_t<uint8_t, py::array::c_style>>();
          if (u.shape(0) != ch || u.shape(1) != cw || va.shape(0) != ch || va.shape(1) != cw) {
            throw TransformError("U and V planes must be (ceil(H/2), ceil(W/2))");
          }
          f.layout = PixelLayout::kYUV420P;
          f.data[1] = u.data();
          f.data[2] = va.data();
          f.linesize[1] = f.linesize[2] = cw;
        }
        f.matrix = enum_arg<ColorMatrix>(matrix, "matrix", 3);
        f.range = full ? ColorRange::kFull : ColorRange::kLimited;
        TransformSpec spec;
        spec.out_h = f.height;
        spec.out_w = f.width;
        spec.layout = Layout::kNHWC;
        spec.dtype = DType::kU8;
        py::array_t<uint8_t> out({f.height, f.width, 3});
        transform_frame_cpu(f, CropBox{}, spec, out.mutable_data(), 0);
        return out;
      },
      py::arg("y"), py::arg("u"), py::arg("v"), py::arg("matrix") = 0, py::arg("full_range") = false);

  // ---- faces: tracking and crop boxes (csrc/face) ------------------------------------------
  // frames: [(time, boxes (N, 4) xywh, scores (N,), landmarks (N, K, 2))]; options: a dict of
  // face::TrackerOptions fields (enums as ints). Returns plain arrays for msce.faces.
  m.def(
      "face_track",
      [](const py::list& frames, const std::vector<double>& query_times, int width, int height, int num_landmarks,
         const py::dict& opt) {
        using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
        std::vector<face::DetectionFrame> native;
        for (const auto& item : frames) {
          const auto tup = item.cast<py::tuple>();
          if (tup.size() != 4) throw TransformError("a detection frame is (time, boxes, scores, landmarks)");
          const F64 boxes = tup[1].cast<F64>(), scores = tup[2].cast<F64>(), marks = tup[3].cast<F64>();
          const py::ssize_t n = scores.size();
          if (boxes.size() != n * 4 || marks.size() != n * num_landmarks * 2) {
            throw TransformError("detection arrays disagree: boxes (N, 4), scores (N,), landmarks (N, K, 2)");
          }
          face::DetectionFrame f;
          f.time = tup[0].cast<double>();
          for (py::ssize_t i = 0; i < n; ++i) {
            face::Detection d;
            const double* b = boxes.data() + i * 4;
            d.box = face::Box{b[0], b[1], b[2], b[3]};
            d.score = scores.data()[i];
            const double* l = marks.data() + i * num_landmarks * 2;
            d.landmarks.assign(l, l + num_landmarks * 2);
            f.detections.push_back(std::move(d));
          }
          native.push_back(std::move(f));
        }
        face::TrackerOptions o;
        o.min_iou = opt["min_iou"].cast<double>();
        o.max_gap = opt["max_gap"].cast<double>();
        o.min_hits = opt["min_hits"].cast<int>();
        o.select = static_cast<face::SelectPolicy>(opt["select"].cast<int>());
        o.track_id = opt["track_id"].cast<int>();
        o.sigma = opt["sigma"].cast<double>();
        o.hold = opt["hold"].cast<double>();
        o.margin = opt["margin"].cast<double>();
        o.fixed_size = opt["fixed_size"].cast<bool>();
        o.missing = static_cast<face::Missing>(opt["missing"].cast<int>());
        face::TrackerResult r;
        {
          py::gil_scoped_release release;
          r = face::track_faces(native, query_times, width, height, num_landmarks, o);
        }
        const auto q = static_cast<py::ssize_t>(query_times.size());
        py::array_t<int> status(q), crops({q, py::ssize_t{4}});
        py::array_t<double> boxes({q, py::ssize_t{4}}), scores(q), marks({q, py::ssize_t{num_landmarks}, py::ssize_t{2}});
        for (py::ssize_t i = 0; i < q; ++i) {
          status.mutable_at(i) = static_cast<int>(r.status[i]);
          const face::Box& b = r.faces[i];
          const double bv[4] = {b.x, b.y, b.w, b.h};
          const CropBox& c = r.crops[i];
          const int cv[4] = {c.x, c.y, c.w, c.h};
          for (int k = 0; k < 4; ++k) {
            boxes.mutable_at(i, k) = bv[k];
            crops.mutable_at(i, k) = cv[k];
          }
          scores.mutable_at(i) = r.scores[i];
        }
        if (!r.landmarks.empty()) {
          std::memcpy(marks.mutable_data(), r.landmarks.data(), r.landmarks.size() * sizeof(double));
        }
        py::list tracks;
        for (const auto& tr : r.tracks) tracks.append(py::make_tuple(tr.id, tr.points));
        py::dict d;
        d["tracks"] = tracks;
        d["selected"] = r.selected;
        d["status"] = status;
        d["faces"] = boxes;
        d["scores"] = scores;
        d["landmarks"] = marks;
        d["crops"] = crops;
        d["crop_side"] = r.crop_side;
        return d;
      },
      py::arg("frames"), py::arg("query_times"), py::arg("width"), py::arg("height"), py::arg("num_landmarks"),
      py::arg("options"));
  m.def("face_iou", [](const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != 4 || b.size() != 4) throw TransformError("face_iou takes two (x, y, w, h) boxes");
    return face::iou(face::Box{a[0], a[1], a[2], a[3]}, face::Box{b[0], b[1], b[2], b[3]});
  });
  m.def("face_smooth_at", &face::smooth_at, py::arg("times"), py::arg("values"), py::arg("at"), py::arg("sigma"));
  m.def("face_square_crop", [](double cx, double cy, int side, int width, int height) {
    const CropBox c = face::square_crop(cx, cy, side, width, height);
    return py::make_tuple(c.x, c.y, c.w, c.h);
  });
  // Decode once, crop later (csrc/face/hold.hpp): planned frames held as decoded.
  py::class_<face::HeldFrames>(m, "FaceHeldFrames")
      .def("__len__", [](const face::HeldFrames& h) { return h.frames.size(); })
      .def_property_readonly("nbytes", &face::HeldFrames::bytes)
      .def_property_readonly("indices", [](const face::HeldFrames& h) { return h.indices; });
  m.def(
      "face_decode_and_hold",
      [](VideoReader& r, const std::vector<int64_t>& hold, const py::list& jobs, int threads) {
        FlushFfmpegLog flush;
        std::vector<py::array> keep;
        auto native = jobs_from_list(jobs, keep);
        auto held = std::make_unique<face::HeldFrames>();
        LoadStats st;
        {
          py::gil_scoped_release release;
          st = face::decode_and_hold(r, hold, native, threads, *held);
        }
        return py::make_tuple(py::cast(std::move(held)), stats_dict(st));
      },
      py::arg("reader"), py::arg("hold"), py::arg("jobs"), py::arg("threads") = 0);
  m.def(
      "face_run_held_jobs",
      [](const face::HeldFrames& held, const py::list& jobs, int threads) {
        std::vector<py::array> keep;
        auto native = jobs_from_list(jobs, keep);
        py::gil_scoped_release release;
        face::run_held_jobs(held, native, threads);
      },
      py::arg("held"), py::arg("jobs"), py::arg("threads") = 0);

  // ---- motion: facial motion energy, micro-expression spotting, motion-aware gaps (csrc/motion) --
  // `options`: a dict of SpotOptions fields; missing keys keep the C++ defaults.
  using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
  auto spot_options = [](const py::dict& d) {
    SpotOptions o;
    const std::pair<const char*, double*> fields[] = {
        {"smooth_s", &o.smooth_s}, {"baseline_s", &o.baseline_s}, {"k_high", &o.k_high}, {"k_low", &o.k_low},
        {"merge_s", &o.merge_s},   {"min_s", &o.min_s},           {"max_s", &o.max_s},   {"min_peak", &o.min_peak}};
    for (const auto& [key, ptr] : fields)
      if (d.contains(key)) *ptr = d[key].cast<double>();
    return o;
  };
  auto to_vec = [](const F32& a) { return std::vector<float>(a.data(), a.data() + a.size()); };
  m.def(
      "motion_energy",
      [](py::array_t<uint8_t, py::array::c_style> frames, int block, double top_fraction, double regularization,
         int threads) {
        if (frames.ndim() != 3 && frames.ndim() != 4) throw TransformError("frames must be (T, H, W) or (T, H, W, C) uint8");
        MotionOptions o;
        o.block = block;
        o.top_fraction = top_fraction;
        o.regularization = regularization;
        o.threads = threads;
        const int channels = frames.ndim() == 4 ? static_cast<int>(frames.shape(3)) : 1;
        MotionCurves c;
        {
          py::gil_scoped_release release;
          c = motion_energy(frames.data(), frames.shape(0), static_cast<int>(frames.shape(1)),
                            static_cast<int>(frames.shape(2)), channels, o);
        }
        const auto n = static_cast<py::ssize_t>(c.energy.size());
        py::dict d;
        d["energy"] = py::array_t<float>(n, c.energy.data());
        d["difference"] = py::array_t<float>(n, c.difference.data());
        d["global_dx"] = py::array_t<float>(n, c.global_dx.data());
        d["global_dy"] = py::array_t<float>(n, c.global_dy.data());
        return d;
      },
      py::arg("frames"), py::arg("block") = 8, py::arg("top_fraction") = 0.05, py::arg("regularization") = 0.2,
      py::arg("threads") = 0);
  m.def(
      "motion_analyze",
      [spot_options, to_vec](const F32& energy, double fps, const py::dict& opt) {
        const EnergyAnalysis a = analyze_energy(to_vec(energy), fps, spot_options(opt));
        const auto n = static_cast<py::ssize_t>(a.excess.size());
        py::dict d;
        d["smoothed"] = py::array_t<float>(n, a.smoothed.data());
        d["baseline"] = py::array_t<float>(n, a.baseline.data());
        d["excess"] = py::array_t<float>(n, a.excess.data());
        d["raw_excess"] = py::array_t<float>(n, a.raw_excess.data());
        d["noise"] = a.noise;
        d["low"] = a.low;
        d["high"] = a.high;
        return d;
      },
      py::arg("energy"), py::arg("fps"), py::arg("options"));
  m.def(
      "motion_spot",
      [spot_options, to_vec](const F32& energy, double fps, const py::dict& opt) {
        py::list out;
        for (const Spot& s : spot_events(to_vec(energy), fps, spot_options(opt)))
          out.append(py::make_tuple(s.onset, s.apex, s.offset, s.peak, s.score));
        return out;
      },
      py::arg("energy"), py::arg("fps"), py::arg("options"));
  m.def(
      "plan_motion_aware_gaps",
      [spot_options, to_vec](const std::vector<double>& ts, double duration, double keyframe_fps, int gap_frames,
                             const F32& energy, double fps, const py::dict& opt, double separation_s) {
        return plan_tuple(plan_motion_aware_gaps(ts, duration, keyframe_fps, gap_frames, to_vec(energy), fps,
                                                 spot_options(opt), separation_s));
      },
      py::arg("timestamps"), py::arg("duration"), py::arg("keyframe_fps"), py::arg("gap_frames"), py::arg("energy"),
      py::arg("fps"), py::arg("options"), py::arg("separation_s"));
}

// The only pybind11 file: exposes the native core as msce._C.
// Long calls release the GIL; C++ exceptions become msce.errors classes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>

#include "common/error.hpp"
#include "decode/reader.hpp"
#include "face/track.hpp"
#include "pipeline/load.hpp"
#include "pixel/pixel_math.hpp"
#include "pixel/resample.hpp"
#include "pixel/transform.hpp"
#include "select/plan.hpp"

namespace py = pybind11;
using namespace msce;

namespace {

void set_python_error(const char* cls, const char* what) {
  py::object errors = py::module_::import("msce.errors");
  py::object type = errors.attr(cls);
  PyErr_SetString(type.ptr(), what);
}

py::dict metadata_dict(const VideoMetadata& m) {
  py::dict d;
  d["path"] = m.path;
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
  return d;
}

TransformSpec spec_from_dict(const py::dict& d) {
  TransformSpec s;
  s.out_h = d["out_h"].cast<int>();
  s.out_w = d["out_w"].cast<int>();
  s.interp = static_cast<Interp>(d["interp"].cast<int>());
  s.layout = static_cast<Layout>(d["layout"].cast<int>());
  s.dtype = static_cast<DType>(d["dtype"].cast<int>());
  s.normalize = d["normalize"].cast<bool>();
  auto mean = d["mean"].cast<std::vector<float>>();
  auto std_ = d["std"].cast<std::vector<float>>();
  if (mean.size() != 3 || std_.size() != 3) throw TransformError("mean and std need 3 values");
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = mean[c];
    s.std[c] = std_[c];
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

// Python job dicts -> LoadJobs; `keep` holds the arrays so their memory outlives the call.
std::vector<LoadJob> jobs_from_list(const py::list& jobs, std::vector<py::array>& keep) {
  std::vector<LoadJob> out;
  for (const auto& item : jobs) {
    py::dict d = item.cast<py::dict>();
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
    py::array arr = d["out"].cast<py::array>();
    if (!(arr.flags() & py::array::c_style) || !arr.writeable()) {
      throw TransformError("output buffer must be a writable C-contiguous array");
    }
    job.slots = d["slots"].cast<int64_t>();
    const int64_t need_bytes =
        job.spec.layout == Layout::kQwen
            ? (job.slots / job.spec.qwen.temporal) * job.spec.qwen.grid_h * job.spec.qwen.grid_w *
                  px::qwen_row_width(job.spec.qwen) * static_cast<int64_t>(job.spec.element_size())
            : job.spec.buffer_elements(job.slots) * static_cast<int64_t>(job.spec.element_size());
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

PYBIND11_MODULE(_C, m) {
  m.doc() = "msce native core: decode, plan, fused transform";

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

  py::class_<VideoReader>(m, "VideoReader")
      .def(py::init([](const std::string& path, int threads, int64_t seek_threshold) {
             ReaderOptions o;
             o.threads = threads;
             o.seek_threshold = seek_threshold;
             return std::make_unique<VideoReader>(path, o);
           }),
           py::arg("path"), py::arg("threads") = 0, py::arg("seek_threshold") = 16,
           py::call_guard<py::gil_scoped_release>())
      .def("metadata", [](const VideoReader& r) { return metadata_dict(r.metadata()); })
      .def("last_stats", [](const VideoReader& r) {
        const auto s = r.last_stats();
        py::dict d;
        d["frames_decoded"] = s.frames_decoded;
        d["seeks"] = s.seeks;
        d["packets_read"] = s.packets_read;
        return d;
      })
      .def("run_jobs",
           [](VideoReader& r, const py::list& jobs, int threads) {
             std::vector<py::array> keep;
             auto native = jobs_from_list(jobs, keep);
             LoadStats st;
             {
               py::gil_scoped_release release;
               st = run_load_jobs(r, native, threads);
             }
             py::dict d;
             d["frames_decoded"] = st.frames_decoded;
             d["frames_transformed"] = st.frames_transformed;
             d["seeks"] = st.seeks;
             d["decode_seconds"] = st.decode_seconds;
             d["total_seconds"] = st.total_seconds;
             return d;
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
  m.def("resample_axis", [](int in_size, int out_size, int interp) {
    const ResampleAxis a = make_resample_axis(in_size, out_size, static_cast<Interp>(interp));
    py::dict d;
    d["first"] = a.first;
    d["count"] = a.count;
    d["weights"] = a.weights;
    d["taps"] = a.taps;
    d["precision"] = a.precision;
    return d;
  });
  m.def("yuv_to_rgb", [](int matrix, bool full, int y, int u, int v) {
    const px::ColorCoeffs c = px::make_color_coeffs(matrix, full);
    uint8_t rgb[3];
    px::yuv_to_rgb(c, y, u, v, rgb);
    return py::make_tuple(rgb[0], rgb[1], rgb[2]);
  });
  m.def("float_to_half", [](float f) { return float_to_half(f); });
  // One 4:2:0 frame (planar Y, U, V or NV12 with `v` = None) through the CPU transform's
  // colour path at full size: RGB uint8 (H, W, 3). For tests and external decoders.
  m.def(
      "yuv420_to_rgb",
      [](py::array_t<uint8_t, py::array::c_style> y, py::array_t<uint8_t, py::array::c_style> u,
         py::object v, int matrix, bool full) {
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
        f.matrix = static_cast<ColorMatrix>(matrix);
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
        std::memcpy(marks.mutable_data(), r.landmarks.data(), r.landmarks.size() * sizeof(double));
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
}

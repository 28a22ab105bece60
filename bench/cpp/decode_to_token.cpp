// msce_bench: decode-to-token latency of the native core, without Python.
//
//   msce_bench VIDEO [PLAN [TARGET [THREADS [REPEATS]]]] [options]
//
//   PLAN     fps:<rate> (e.g. fps:1, fps:5) or dense                      (default fps:1)
//   TARGET   qwen2.5 | qwen2: Qwen2/2.5-VL pixel_values_videos (float32, or --dtype);
//            decode: decode the planned frames only (no transform, the reader's floor)
//                                                                         (default qwen2.5)
//   THREADS  decoder + transform threads, 0 = all cores                   (default 0)
//   REPEATS  timed repeats after the warm-up                              (default 5)
//   --plan P --target T --threads N --repeats N   the same as flags
//   --min-pixels N --max-pixels N   per-frame pixel budget (default HF video: 128*28*28, 768*28*28)
//   --warmup N                      untimed runs first (default 1)
//   --dtype float32|bfloat16        output element type (default float32, the HF processor's)
//   --seek-threshold N              the reader's seek threshold (default 16, as msce.VideoReader)
//   --decoder-threads N             FFmpeg decoder threads only (default: THREADS); THREADS then
//                                   sets the transform workers alone (0 = the library's split)
//
// Each repeat does what msce.load(path, plan, msce.QwenVL("2.5")) does in Python: open the file
// (packet index scan), resolve the plan from the frame timestamps, smart_resize, allocate the
// output uninitialised (as torch.empty), and run_load_jobs. Prints one JSON object on stdout:
// wall ms (median/min/p25/p75/max), process CPU ms (all threads), frames, frames/s, tokens, output bytes, peak RSS (getrusage).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/output_pool.hpp"
#include "decode/reader.hpp"
#include "pipeline/load.hpp"
#include "pixel/transform.hpp"
#include "select/plan.hpp"

namespace {

constexpr int kPatch = 14;
constexpr int kTemporal = 2;
constexpr int kMerge = 2;
// CLIP mean/std as python/msce/targets.py fuses them: float32(v) * 255.0f.
constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

struct Args {
  std::string video;
  std::string plan = "fps:1";
  std::string target = "qwen2.5";
  int threads = 0;
  int repeats = 5;
  int warmup = 1;
  int64_t min_pixels = 128LL * 28 * 28;
  int64_t max_pixels = 768LL * 28 * 28;
  int64_t seek_threshold = 16;
  int decoder_threads = -1;  // -1: THREADS
  std::string dtype = "float32";
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "msce_bench: %s\n"
               "usage: msce_bench VIDEO [PLAN [TARGET [THREADS [REPEATS]]]] [--plan fps:1|fps:5|dense]\n"
               "       [--target qwen2.5|qwen2|decode] [--threads N] [--repeats N] [--warmup N]\n"
               "       [--min-pixels N] [--max-pixels N] [--seek-threshold N] [--dtype float32|bfloat16]\n",
               why.c_str());
  std::exit(2);
}

int64_t parse_int(const std::string& s, const char* what) {
  try {
    size_t pos = 0;
    const long long v = std::stoll(s, &pos);
    if (pos != s.size()) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    usage(std::string(what) + " must be an integer (got '" + s + "')");
  }
}

Args parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) usage(std::string(name) + " needs a value");
      return argv[++i];
    };
    if (s == "-h" || s == "--help") usage("decode-to-token benchmark");
    else if (s == "--plan") a.plan = value("--plan");
    else if (s == "--target") a.target = value("--target");
    else if (s == "--threads") a.threads = static_cast<int>(parse_int(value("--threads"), "--threads"));
    else if (s == "--decoder-threads")
      a.decoder_threads = static_cast<int>(parse_int(value("--decoder-threads"), "--decoder-threads"));
    else if (s == "--repeats") a.repeats = static_cast<int>(parse_int(value("--repeats"), "--repeats"));
    else if (s == "--warmup") a.warmup = static_cast<int>(parse_int(value("--warmup"), "--warmup"));
    else if (s == "--min-pixels") a.min_pixels = parse_int(value("--min-pixels"), "--min-pixels");
    else if (s == "--max-pixels") a.max_pixels = parse_int(value("--max-pixels"), "--max-pixels");
    else if (s == "--dtype") a.dtype = value("--dtype");
    else if (s == "--seek-threshold") a.seek_threshold = parse_int(value("--seek-threshold"), "--seek-threshold");
    else if (s.size() > 2 && s.compare(0, 2, "--") == 0) usage("unknown option " + s);
    else pos.push_back(s);
  }
  if (pos.empty()) usage("missing VIDEO");
  if (pos.size() > 5) usage("too many arguments");
  a.video = pos[0];
  if (pos.size() > 1) a.plan = pos[1];
  if (pos.size() > 2) a.target = pos[2];
  if (pos.size() > 3) a.threads = static_cast<int>(parse_int(pos[3], "THREADS"));
  if (pos.size() > 4) a.repeats = static_cast<int>(parse_int(pos[4], "REPEATS"));
  if (a.threads < 0) usage("threads must be >= 0");
  if (a.decoder_threads < -1) usage("--decoder-threads must be >= 0");
  if (a.repeats < 1) usage("repeats must be >= 1");
  if (a.warmup < 0) usage("warmup must be >= 0");
  if (a.min_pixels <= 0 || a.max_pixels < a.min_pixels) usage("need 0 < min-pixels <= max-pixels");
  if (a.dtype != "float32" && a.dtype != "bfloat16") usage("dtype must be float32 or bfloat16");
  if (a.target == "qwen2") a.target = "qwen2.5";  // same geometry, mean/std and budget
  if (a.target != "qwen2.5" && a.target != "decode") usage("target must be qwen2.5, qwen2 or decode");
  return a;
}

msce::PlanResult make_plan(const std::string& plan, const msce::VideoMetadata& meta) {
  if (plan == "dense") return msce::plan_dense(meta.timestamps);
  if (plan.compare(0, 4, "fps:") == 0) {
    char* end = nullptr;
    const double fps = std::strtod(plan.c_str() + 4, &end);
    if (end == plan.c_str() + 4 || *end != '\0' || !(fps > 0) || !std::isfinite(fps)) usage("bad plan " + plan);
    return msce::plan_uniform(meta.timestamps, meta.duration, fps);
  }
  usage("plan must be fps:<rate> or dense (got '" + plan + "')");
}

struct RunResult {
  double wall_ms = 0;
  double cpu_ms = 0;    // user + system time of the process (all threads) during the run
  double open_ms = 0;   // VideoReader construction (demux index scan)
  double load_ms = 0;   // run_load_jobs (decode + transform)
  double decode_loop_ms = 0;
  int64_t frames = 0;
  int64_t frames_decoded = 0;
  int64_t seeks = 0;
  int out_h = 0, out_w = 0;
  int64_t grid_t = 0, grid_h = 0, grid_w = 0;
  int64_t tokens = 0;
  int64_t output_bytes = 0;
  double checksum = 0;  // a few output values, so the work cannot be optimised away
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double cpu_ms_now() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

RunResult run_once(const Args& a) {
  RunResult r;
  const double c0 = cpu_ms_now();
  const auto t0 = Clock::now();
  msce::ReaderOptions opts;
  opts.threads = a.decoder_threads >= 0 ? a.decoder_threads : a.threads;
  opts.seek_threshold = a.seek_threshold;
  msce::VideoReader reader(a.video, opts);
  r.open_ms = ms_since(t0);
  const msce::VideoMetadata& meta = reader.metadata();
  const msce::PlanResult plan = make_plan(a.plan, meta);
  r.frames = static_cast<int64_t>(plan.indices.size());

  if (a.target == "decode") {
    // The reader alone: every planned frame comes out of the decoder; nothing else happens.
    std::vector<int64_t> order = plan.indices;
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    const auto t1 = Clock::now();
    int64_t seen = 0;
    reader.decode(order, [&](const msce::Frame& f) {
      ++seen;
      r.checksum += f.data[0] ? f.data[0][0] : 0;
    });
    r.load_ms = r.decode_loop_ms = ms_since(t1);
    const auto st = reader.last_stats();
    r.frames_decoded = st.frames_decoded;
    r.seeks = st.seeks;
    r.wall_ms = ms_since(t0);
    r.cpu_ms = cpu_ms_now() - c0;
    return r;
  }

  msce::smart_resize(meta.height, meta.width, kPatch * kMerge, a.min_pixels, a.max_pixels, &r.out_h, &r.out_w);
  msce::TransformSpec spec;
  spec.out_h = r.out_h;
  spec.out_w = r.out_w;
  spec.interp = msce::Interp::kBicubic;
  spec.layout = msce::Layout::kQwen;
  spec.dtype = a.dtype == "bfloat16" ? msce::DType::kBF16 : msce::DType::kF32;
  spec.normalize = true;
  for (int c = 0; c < 3; ++c) {
    spec.mean[c] = kClipMean[c] * 255.0f;
    spec.std[c] = kClipStd[c] * 255.0f;
  }
  spec.qwen.patch = kPatch;
  spec.qwen.temporal = kTemporal;
  spec.qwen.merge = kMerge;
  spec.qwen.channels = 3;
  spec.qwen.grid_h = r.out_h / kPatch;
  spec.qwen.grid_w = r.out_w / kPatch;

  r.grid_t = (r.frames + kTemporal - 1) / kTemporal;
  r.grid_h = spec.qwen.grid_h;
  r.grid_w = spec.qwen.grid_w;
  r.tokens = r.grid_t * r.grid_h * r.grid_w / (kMerge * kMerge);
  const int64_t row_width = 3LL * kTemporal * kPatch * kPatch;
  const int64_t elements = r.grid_t * r.grid_h * r.grid_w * row_width;
  r.output_bytes = elements * static_cast<int64_t>(spec.element_size());
  // From msce's output pool, as msce.load's CPU tensors: the first call maps fresh memory
  // (page faults + zeroing on first touch, like torch.empty), later calls reuse it.
  msce::PooledBuffer buffer(static_cast<size_t>(r.output_bytes));
  uint8_t* out_data = static_cast<uint8_t*>(buffer.data());

  std::vector<msce::LoadJob> jobs(1);
  jobs[0].indices = plan.indices;
  jobs[0].spec = spec;
  jobs[0].out = out_data;
  jobs[0].slots = r.grid_t * kTemporal;

  const auto t1 = Clock::now();
  const msce::LoadStats st = msce::run_load_jobs(reader, jobs, a.threads);
  r.load_ms = ms_since(t1);
  r.decode_loop_ms = st.decode_seconds * 1e3;
  r.frames_decoded = st.frames_decoded;
  r.seeks = st.seeks;
  r.wall_ms = ms_since(t0);
  r.cpu_ms = cpu_ms_now() - c0;
  for (int64_t k = 0; k < elements; k += std::max<int64_t>(1, elements / 64)) {
    uint32_t bits = 0;  // float32, or bfloat16 widened (its bits are float32's upper half)
    if (spec.dtype == msce::DType::kBF16) {
      uint16_t h;
      std::memcpy(&h, out_data + 2 * k, 2);
      bits = static_cast<uint32_t>(h) << 16;
    } else {
      std::memcpy(&bits, out_data + 4 * k, 4);
    }
    float v;
    std::memcpy(&v, &bits, 4);
    r.checksum += v;
  }
  return r;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  if (v.size() == 1) return v[0];
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

std::string stats_json(const std::vector<double>& v) {
  std::ostringstream o;
  o << "{\"median\": " << num(percentile(v, 0.5)) << ", \"min\": " << num(percentile(v, 0.0))
    << ", \"p25\": " << num(percentile(v, 0.25)) << ", \"p75\": " << num(percentile(v, 0.75))
    << ", \"max\": " << num(percentile(v, 1.0)) << "}";
  return o.str();
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    const double rss_start = peak_rss_mib();
    for (int i = 0; i < a.warmup; ++i) run_once(a);
    std::vector<double> wall, cpu, open, load, decode_loop;
    RunResult last;
    double checksum = 0;
    for (int i = 0; i < a.repeats; ++i) {
      last = run_once(a);
      wall.push_back(last.wall_ms);
      cpu.push_back(last.cpu_ms);
      open.push_back(last.open_ms);
      load.push_back(last.load_ms);
      decode_loop.push_back(last.decode_loop_ms);
      checksum += last.checksum;
    }
    const double med = percentile(wall, 0.5);
    std::ostringstream o;
    o << "{\"tool\": \"msce_bench\", \"video\": " << json_string(a.video) << ", \"plan\": " << json_string(a.plan)
      << ", \"target\": " << json_string(a.target) << ", \"threads\": " << a.threads
      << ", \"decoder_threads\": " << a.decoder_threads << ", \"dtype\": " << json_string(a.dtype)
      << ", \"min_pixels\": " << a.min_pixels << ", \"max_pixels\": " << a.max_pixels
      << ", \"warmup\": " << a.warmup << ", \"repeats\": " << a.repeats
      << ", \"wall_ms\": " << stats_json(wall) << ", \"cpu_ms\": " << stats_json(cpu)
      << ", \"open_ms\": " << stats_json(open)
      << ", \"load_ms\": " << stats_json(load) << ", \"decode_loop_ms\": " << stats_json(decode_loop)
      << ", \"frames\": " << last.frames << ", \"frames_decoded\": " << last.frames_decoded
      << ", \"seeks\": " << last.seeks << ", \"frames_per_s\": " << num(last.frames / (med / 1e3))
      << ", \"out_h\": " << last.out_h << ", \"out_w\": " << last.out_w << ", \"grid_thw\": [" << last.grid_t
      << ", " << last.grid_h << ", " << last.grid_w << "], \"tokens\": " << last.tokens
      << ", \"output_bytes\": " << last.output_bytes
      << ", \"output_mib\": " << num(static_cast<double>(last.output_bytes) / (1024.0 * 1024.0))
      << ", \"rss_start_mib\": " << num(rss_start) << ", \"peak_rss_mib\": " << num(peak_rss_mib())
      << ", \"checksum\": " << num(checksum) << "}";
    std::printf("%s\n", o.str().c_str());
    return 0;
  } catch (const msce::Error& e) {
    std::fprintf(stderr, "msce_bench: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "msce_bench: unexpected error: %s\n", e.what());
    return 1;
  }
}

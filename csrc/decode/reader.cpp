// VideoReader over libavformat/libavcodec/libswscale (contract in reader.hpp).
//
// Conventions used throughout this file:
//  * "index" is a presentation-order frame number in [0, num_frames). The packet scan at
//    open records every frame's timestamp in the stream time base ("ticks") and sorts them,
//    so FrameIndex::ts[i] is the timestamp of frame i.
//  * When every packet carries a pts, decoded frames are mapped to indices by their
//    timestamp (exact match in the sorted table), which makes seeking, B-frames and VFR
//    safe. Otherwise (e.g. MPEG-4 part 2 with B-frames in AVI, where anchor frames carry
//    only a dts) frames are numbered by their output order from the start of the file and
//    the reader never seeks forward.
//  * position_ is the index of the last frame the decoder produced; -1 right after the
//    decoder was positioned at the start of the file.
//  * Rotation is clockwise degrees applied to decoded frames to reach display orientation.
#include "decode/reader.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <utility>

#include "common/cpus.hpp"
#include "common/error.hpp"
#include "decode/ffmpeg_common.hpp"
#include "decode/rotate.hpp"

extern "C" {
#include <libavutil/cpu.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace msce {

namespace {

using ffmpeg::error_string;
using ffmpeg::file_label;
using ffmpeg::kMaxReadRetries;
using ffmpeg::matrix_for;
using ffmpeg::PacketEntry;
using ffmpeg::range_for;
using ffmpeg::rotation_clockwise;
using ffmpeg::SharedFrame;
using ffmpeg::without_jpeg_range;

constexpr int kMaxConsecutiveDecodeErrors = 256;    // decode errors in a row with no new input
constexpr int64_t kNoSkip = std::numeric_limits<int64_t>::min();
constexpr size_t kMaxParked = 4;  // decoded frames kept for a later index (see fetch)

ffmpeg::CodecContextPtr open_decoder(const AVStream* st, const AVCodec* codec, int threads,
                                     const std::string& path) {
  ffmpeg::CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) throw std::bad_alloc();
  int err = avcodec_parameters_to_context(ctx.get(), st->codecpar);
  if (err < 0) throw ffmpeg::corrupt_or(path, "bad codec parameters", err);
  ctx->pkt_timebase = st->time_base;
  ctx->thread_count = std::max(0, threads);  // 0 = FFmpeg picks: one more than the CPUs it sees, at most 16
  if (threads <= 0) {
    // FFmpeg counts the affinity mask but not a container's CPU quota: under a quota, the same
    // rule over the CPUs this process may actually use
    const int usable = usable_cpus();
    if (usable < av_cpu_count()) ctx->thread_count = usable > 1 ? std::min(usable + 1, 16) : 1;
  }
  ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  err = avcodec_open2(ctx.get(), codec, nullptr);
  if (err < 0) throw ffmpeg::corrupt_or(path, std::string("cannot open the ") + codec->name + " decoder", err);
  return ctx;
}

// ---- colour --------------------------------------------------------------------------

int sws_colorspace(ColorMatrix m) {
  switch (m) {
    case ColorMatrix::kBT709: return SWS_CS_ITU709;
    case ColorMatrix::kBT2020: return SWS_CS_BT2020;
    default: return SWS_CS_ITU601;
  }
}

const char* name_or_unknown(const char* name) { return name != nullptr ? name : "unknown"; }

// Chroma sample position in 1/256 of a luma pixel from the top-left luma sample (the unit
// of swscale's src_h_chr_pos/src_v_chr_pos), along the subsampled axes of `format`;
// false for formats without subsampled chroma. Unspecified means MPEG-2/H.264's default,
// "left": co-sited horizontally, halfway between rows. Older swscale assumes centred
// chroma unless told, which shifts colour edges by half a pixel.
bool chroma_position(AVPixelFormat format, AVChromaLocation loc, int& x, int& y) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (desc == nullptr || (desc->flags & AV_PIX_FMT_FLAG_RGB) || desc->nb_components < 3 ||
      (desc->log2_chroma_w == 0 && desc->log2_chroma_h == 0)) {
    return false;
  }
  const bool centred_x = loc == AVCHROMA_LOC_CENTER || loc == AVCHROMA_LOC_TOP || loc == AVCHROMA_LOC_BOTTOM;
  const int row = loc == AVCHROMA_LOC_TOPLEFT || loc == AVCHROMA_LOC_TOP        ? 0
                  : loc == AVCHROMA_LOC_BOTTOMLEFT || loc == AVCHROMA_LOC_BOTTOM ? 256
                                                                                 : 128;
  x = desc->log2_chroma_w > 0 && centred_x ? 128 : 0;
  y = desc->log2_chroma_h > 0 ? row : 0;
  return true;
}

// ---- packet index --------------------------------------------------------------------

struct FrameIndex {
  std::vector<int64_t> ts;            // ticks of frame i, ascending (presentation order)
  std::vector<int64_t> keyframes;     // indices of keyframes, ascending
  std::vector<int64_t> keyframe_seek; // seek timestamp of keyframes[j]
  int64_t start_seek = 0;             // seek timestamp that lands on the first packet
  bool map_by_timestamp = true;       // false: frames are numbered by decoder output order
  int64_t last_duration = 0;          // ticks of the last frame, 0 when unknown
};

// Presentation timestamps for packets that carry only a dts, in a stream whose frames are
// reordered (B-frames). MPEG program streams put a timestamp only on pictures that start in
// a PES packet, so some anchor (I/P) pictures arrive with a dts alone, and an anchor is shown
// later than it is decoded: its dts is not its pts. With reordering delay D (the number of
// decode timestamps before the first presentation timestamp), the decoder presents a frame
// each time it takes a packet after the first D, at that packet's dts, and D more at the
// end: the presentation times are the dts from the (D+1)-th on, then the last dts plus 1..D
// frame intervals. The times the packets do carry must all be among them; the remaining
// ones go, in ascending order, to the packets without a pts in decode order (anchors are
// shown in decode order). `packets` is in decode order; returns false, changing nothing,
// when the stream does not fit this model (no reordering, missing or non-increasing dts,
// carried times outside the derived set).
bool derive_missing_pts(std::vector<PacketEntry>& packets) {
  const size_t n = packets.size();
  int64_t first_pts = std::numeric_limits<int64_t>::max();
  bool reordered = false;
  std::vector<int64_t> carried;
  for (size_t i = 0; i < n; ++i) {
    const PacketEntry& e = packets[i];
    if (e.dts == AV_NOPTS_VALUE || (i > 0 && e.dts <= packets[i - 1].dts)) return false;
    if (!e.has_pts) continue;
    first_pts = std::min(first_pts, e.ts);
    reordered = reordered || e.ts != e.dts;
    carried.push_back(e.ts);
  }
  if (!reordered || carried.size() == n) return false;
  size_t delay = 0;
  while (delay < n && packets[delay].dts < first_pts) ++delay;
  if (delay == 0 || delay >= n) return false;
  std::vector<int64_t> steps;
  for (size_t i = 1; i < n; ++i) steps.push_back(packets[i].dts - packets[i - 1].dts);
  std::nth_element(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(steps.size() / 2), steps.end());
  const int64_t step = steps[steps.size() / 2];
  std::vector<int64_t> shown;
  shown.reserve(n);
  for (size_t i = delay; i < n; ++i) shown.push_back(packets[i].dts);
  for (size_t k = 1; k <= delay; ++k) shown.push_back(packets[n - 1].dts + static_cast<int64_t>(k) * step);
  std::sort(carried.begin(), carried.end());
  if (!std::includes(shown.begin(), shown.end(), carried.begin(), carried.end())) return false;
  std::vector<int64_t> derived;
  std::set_difference(shown.begin(), shown.end(), carried.begin(), carried.end(), std::back_inserter(derived));
  if (derived.size() != n - carried.size()) return false;
  size_t next = 0;
  for (PacketEntry& e : packets) {
    if (!e.has_pts) e.ts = derived[next++];
  }
  return true;
}

FrameIndex build_index(std::vector<PacketEntry> packets, bool all_have_pts) {
  FrameIndex index;
  if (!all_have_pts) derive_missing_pts(packets);
  index.start_seek = std::min_element(packets.begin(), packets.end(), [](const auto& a, const auto& b) {
                       return a.seek_ts < b.seek_ts;
                     })->seek_ts;
  std::stable_sort(packets.begin(), packets.end(),
                   [](const PacketEntry& a, const PacketEntry& b) { return a.ts < b.ts; });
  index.map_by_timestamp = all_have_pts;
  index.ts.reserve(packets.size());
  for (size_t i = 0; i < packets.size(); ++i) {
    index.ts.push_back(packets[i].ts);
    if (packets[i].key) {
      index.keyframes.push_back(static_cast<int64_t>(i));
      index.keyframe_seek.push_back(packets[i].seek_ts);
    }
  }
  index.last_duration = packets.back().duration;
  return index;
}

// ---- timing ----------------------------------------------------------------------
//
// Container timing can lie: a flipped bit in one timestamp (mp4 ctts/stts, a TS PES header)
// puts one frame thousands of seconds away from the others, and a corrupt duration field
// (Matroska DefaultDuration, mp4 stts/mdhd, AVI headers) gives the last frame any length.
// Durations therefore come from the packet scan only, and:
//  * the typical frame interval is the median of the intervals between consecutive frames;
//  * a few frames at either end separated from all the others by a jump of more than
//    kJumpIntervals typical intervals and more than kJumpSeconds are stray timestamps: they
//    are reported one typical interval apart, next to their neighbours (a pause with many
//    frames after it is real and kept, as is the raw timestamp used to find the frame);
//  * the last frame lasts its packet's duration when that is at most kMaxLastIntervals
//    typical intervals, else one typical interval.
// AVI packets carry no time of their own: libavformat numbers them in the stream header's
// (strh) dwScale/dwRate time base, so a corrupt rate or scale stretches every timestamp
// alike and the packet scan cannot see it. The main header's frame period
// (avih.dwMicroSecPerFrame, which libavformat ignores) is the independent check: when the
// file has one video stream and the two periods differ by more than kHeaderAgreement, the
// avih period replaces strh's if it gives a frame rate in [kMinPlausibleFps,
// kMaxPlausibleFps] and strh's does not; otherwise strh stands (what FFmpeg reports).

constexpr double kJumpIntervals = 1000.0;
constexpr double kJumpSeconds = 10.0;
constexpr double kMaxLastIntervals = 2.0;
constexpr double kHeaderAgreement = 0.01;
constexpr double kMinPlausibleFps = 5.0;
constexpr double kMaxPlausibleFps = 300.0;

// Median of the positive intervals between consecutive entries of ascending `ts`, 0 when none.
double median_interval(const std::vector<int64_t>& ts) {
  std::vector<int64_t> d;
  d.reserve(ts.size());
  for (size_t i = 1; i < ts.size(); ++i) {
    if (ts[i] > ts[i - 1]) d.push_back(ts[i] - ts[i - 1]);
  }
  if (d.empty()) return 0.0;
  const size_t mid = d.size() / 2;
  std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid), d.end());
  return static_cast<double>(d[mid]);
}

// Ticks of one frame period from the stream's frame rate, 0 when unknown.
double rate_interval(const AVStream* st) {
  const double tb = av_q2d(st->time_base);
  const AVRational rate = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  if (rate.num > 0 && rate.den > 0 && tb > 0.0) return 1.0 / (av_q2d(rate) * tb);
  return 0.0;
}

// Ticks of frame i for reporting: `ts` with stray frames at either end moved next to
// their neighbours (see above).
std::vector<double> reported_ticks(const std::vector<int64_t>& ts, double typical, double tb) {
  const size_t n = ts.size();
  std::vector<double> out(ts.begin(), ts.end());
  if (n < 3 || typical <= 0.0) return out;
  const double jump = std::max(kJumpIntervals * typical, tb > 0.0 ? kJumpSeconds / tb : 0.0);
  const size_t max_stray = std::max<size_t>(1, n / 20);
  // Leading strays: the first jump among the first max_stray + 1 intervals.
  for (size_t i = 1; i <= std::min(max_stray, n - 2); ++i) {
    if (static_cast<double>(ts[i] - ts[i - 1]) > jump) {
      for (size_t k = i; k-- > 0;) out[k] = out[k + 1] - typical;
      break;
    }
  }
  // Trailing strays.
  for (size_t i = n - 1; i + max_stray >= n && i >= 2; --i) {
    if (static_cast<double>(ts[i] - ts[i - 1]) > jump) {
      for (size_t k = i; k < n; ++k) out[k] = out[k - 1] + typical;
      break;
    }
  }
  return out;
}

bool plausible_period(double seconds) {
  return seconds > 0.0 && 1.0 / seconds >= kMinPlausibleFps && 1.0 / seconds <= kMaxPlausibleFps;
}

// Seconds per tick of `st`: its time base, corrected for a lying AVI stream header (see
// above). `typical` is the typical frame interval in ticks; `m` carries the container, the
// path and the video stream list.
double seconds_per_tick(const AVStream* st, double typical, const VideoMetadata& m) {
  const double tb = av_q2d(st->time_base);
  size_t videos = 0;
  for (const VideoStreamInfo& v : m.video_streams) videos += v.attached_pic ? 0 : 1;
  if (m.container != "avi" || !m.protocols.empty() || videos != 1 || typical <= 0.0 || tb <= 0.0) return tb;
  const int64_t avih_us = ffmpeg::avi_header_frame_period_us(m.path);
  if (avih_us <= 0) return tb;
  const double strh = typical * tb, avih = static_cast<double>(avih_us) * 1e-6;
  if (std::fabs(strh / avih - 1.0) <= kHeaderAgreement) return tb;
  return plausible_period(avih) && !plausible_period(strh) ? tb * (avih / strh) : tb;
}

// Fills num_frames, timestamps, duration, average_fps and variable_frame_rate.
void describe_timing(const FrameIndex& index, const AVStream* st, VideoMetadata& m) {
  const std::vector<int64_t>& ts = index.ts;
  const size_t n = ts.size();
  m.num_frames = static_cast<int64_t>(n);
  m.header_num_frames = st->nb_frames > 0 ? st->nb_frames : -1;

  double typical = median_interval(ts);
  if (typical <= 0.0) typical = rate_interval(st);
  const double tb = seconds_per_tick(st, typical, m);
  const std::vector<double> ticks = reported_ticks(ts, typical, tb);
  m.timestamps.resize(n);
  for (size_t i = 0; i < n; ++i) m.timestamps[i] = (ticks[i] - ticks[0]) * tb;

  const double last_packet = static_cast<double>(index.last_duration);
  double last = typical;
  if (last_packet > 0.0 && (typical <= 0.0 || last_packet <= kMaxLastIntervals * typical)) last = last_packet;
  m.duration = (ticks.back() - ticks.front() + std::max(0.0, last)) * tb;
  m.average_fps = m.duration > 0.0 ? static_cast<double>(n) / m.duration : 0.0;

  // Variable frame rate: intervals differ by more than 1% of the mean, beyond the one-tick
  // jitter that coarse time bases (Matroska's milliseconds) put on a constant rate.
  if (n > 2) {
    const double mean_interval = (ticks.back() - ticks.front()) / static_cast<double>(n - 1);
    double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
    for (size_t i = 1; i < n; ++i) {
      lo = std::min(lo, ticks[i] - ticks[i - 1]);
      hi = std::max(hi, ticks[i] - ticks[i - 1]);
    }
    m.variable_frame_rate = hi - lo > std::max(1.0, 0.01 * mean_interval);
  }
}

void describe_format(const AVFormatContext* fmt, const AVStream* st, AVPixelFormat pix_fmt,
                     VideoMetadata& m) {
  const AVCodecParameters* par = st->codecpar;
  m.container = fmt->iformat->name;
  m.codec = avcodec_get_name(par->codec_id);
  m.pixel_format = name_or_unknown(av_get_pix_fmt_name(pix_fmt));
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(pix_fmt);
  m.bit_depth = desc != nullptr ? desc->comp[0].depth : 8;
  m.coded_width = par->width;
  m.coded_height = par->height;
  m.rotation = rotation_clockwise(st);
  rotate::rotated_size(par->width, par->height, m.rotation, m.width, m.height);
  m.color_space = name_or_unknown(av_color_space_name(par->color_space));
  m.color_range = name_or_unknown(av_color_range_name(par->color_range));
  m.matrix = matrix_for(par->color_space);
  m.range = range_for(par->color_range, pix_fmt);
}

// ---- output frames -------------------------------------------------------------------

SharedFrame alloc_image(AVPixelFormat format, int width, int height) {
  ffmpeg::FramePtr f = ffmpeg::make_frame();
  f->format = format;
  f->width = width;
  f->height = height;
  if (av_frame_get_buffer(f.get(), 0) < 0) throw std::bad_alloc();
  return SharedFrame(f.release(), ffmpeg::FrameDeleter());
}

// Points `out` at the planes of `image` and makes `out` keep it alive.
void attach(Frame& out, SharedFrame image, PixelLayout layout) {
  const int planes = layout == PixelLayout::kYUV420P ? 3 : layout == PixelLayout::kNV12 ? 2 : 1;
  for (int p = 0; p < 3; ++p) {
    out.data[p] = p < planes ? image->data[p] : nullptr;
    out.linesize[p] = p < planes ? image->linesize[p] : 0;
  }
  out.layout = layout;
  out.width = image->width;
  out.height = image->height;
  out.owner = std::move(image);
}

// Rotated (or, for cw == 0, copied) 4:2:0 frame; NV12 input is de-interleaved into yuv420p.
SharedFrame rotate_yuv420(const AVFrame* src, bool nv12, int cw) {
  int w = 0, h = 0;
  rotate::rotated_size(src->width, src->height, cw, w, h);
  SharedFrame out = alloc_image(AV_PIX_FMT_YUV420P, w, h);
  rotate::rotate_plane<1>(src->data[0], src->linesize[0], 1, src->width, src->height, out->data[0],
                          out->linesize[0], cw);
  const int cw_w = (src->width + 1) / 2, cw_h = (src->height + 1) / 2;  // chroma plane size
  for (int c = 0; c < 2; ++c) {
    const uint8_t* plane = nv12 ? src->data[1] + c : src->data[1 + c];
    const int stride = nv12 ? src->linesize[1] : src->linesize[1 + c];
    rotate::rotate_plane<1>(plane, stride, nv12 ? 2 : 1, cw_w, cw_h, out->data[1 + c],
                            out->linesize[1 + c], cw);
  }
  return out;
}

SharedFrame rotate_rgb24(const AVFrame* src, int cw) {
  int w = 0, h = 0;
  rotate::rotated_size(src->width, src->height, cw, w, h);
  SharedFrame out = alloc_image(AV_PIX_FMT_RGB24, w, h);
  rotate::rotate_plane<3>(src->data[0], src->linesize[0], 3, src->width, src->height, out->data[0],
                          out->linesize[0], cw);
  return out;
}

// For a >8-bit YUV format with vertically subsampled chroma (yuv420p10, p010, yuv440p12,
// ...), the 16-bit planar format with full vertical chroma (yuv422p16 or yuv444p16);
// AV_PIX_FMT_NONE for every other format.
//
// Why: newer swscale (FFmpeg >= 7, which PyAV wheels bundle) converts such formats to RGB
// by first interpolating chroma vertically (bilinear, at the tagged siting, kept at high
// precision) and then converting like 4:2:2; FFmpeg 5/6's single pass treats vertical
// chroma differently and differs from it by up to ~90 levels at horizontal colour edges
// (mean ~1). Doing the vertical step as its own pass into 16 bits gives the newer result
// (bit-exact on the test clips) with every version.
AVPixelFormat vertical_chroma_intermediate(AVPixelFormat format) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(format);
  if (d == nullptr || (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_HWACCEL)) ||
      d->nb_components < 3 || d->log2_chroma_h == 0 || d->comp[0].depth <= 8 || d->log2_chroma_w > 1) {
    return AV_PIX_FMT_NONE;
  }
  const bool half_width = d->log2_chroma_w == 1;
  return half_width ? AV_PIX_FMT_YUV422P16 : AV_PIX_FMT_YUV444P16;
}

// A swscale context for width x height from `src` to `dst` with FFmpeg's default flags
// (what PyAV's to_ndarray(format="rgb24") and the ffmpeg CLI use: bilinear, no full
// chroma interpolation) and `src`'s chroma siting. Null when swscale cannot convert.
ffmpeg::SwsContextPtr make_sws(AVPixelFormat src, AVPixelFormat dst, int width, int height, AVChromaLocation chroma) {
  ffmpeg::SwsContextPtr ctx(sws_alloc_context());
  if (!ctx) throw std::bad_alloc();
  SwsContext* c = ctx.get();
  av_opt_set_int(c, "srcw", width, 0);
  av_opt_set_int(c, "srch", height, 0);
  av_opt_set_int(c, "src_format", src, 0);
  av_opt_set_int(c, "dstw", width, 0);
  av_opt_set_int(c, "dsth", height, 0);
  av_opt_set_int(c, "dst_format", dst, 0);
  av_opt_set_int(c, "sws_flags", SWS_BILINEAR, 0);
  int chroma_x = 0, chroma_y = 0;
  if (chroma_position(src, chroma, chroma_x, chroma_y)) {
    av_opt_set_int(c, "src_h_chr_pos", chroma_x, 0);
    av_opt_set_int(c, "src_v_chr_pos", chroma_y, 0);
  }
  if (chroma_position(dst, chroma, chroma_x, chroma_y)) {
    av_opt_set_int(c, "dst_h_chr_pos", chroma_x, 0);
    av_opt_set_int(c, "dst_v_chr_pos", chroma_y, 0);
  }
  if (sws_init_context(c, nullptr, nullptr) < 0) return nullptr;
  return ctx;
}

// swscale conversion of any other format to full-range RGB24 at the same size, following
// FFmpeg's default conversion so that 10-bit, 4:2:2 and 4:4:4 sources keep the convention
// of the fused transform's 8-bit 4:2:0 path (the previous bicubic + full chroma
// interpolation differed from PyAV's rgb24 by up to ~230 levels at colour edges). The
// contexts are cached and rebuilt only when the input format, size or colour changes.
class RgbConverter {
 public:
  SharedFrame convert(const AVFrame* src, ColorMatrix matrix, ColorRange range) {
    const AVPixelFormat format = without_jpeg_range(static_cast<AVPixelFormat>(src->format));
    if (!ctx_ || format != format_ || src->width != width_ || src->height != height_ ||
        matrix != matrix_ || range != range_ || src->chroma_location != chroma_) {
      configure(format, src->width, src->height, matrix, range, src->chroma_location);
    }
    const uint8_t* const* planes = src->data;
    const int* strides = src->linesize;
    SharedFrame mid;
    if (pre_) {
      mid = alloc_image(mid_format_, src->width, src->height);
      sws_scale(pre_.get(), src->data, src->linesize, 0, src->height, mid->data, mid->linesize);
      planes = mid->data;
      strides = mid->linesize;
    }
    SharedFrame out = alloc_image(AV_PIX_FMT_RGB24, src->width, src->height);
    sws_scale(ctx_.get(), planes, strides, 0, src->height, out->data, out->linesize);
    return out;
  }

 private:
  void configure(AVPixelFormat format, int width, int height, ColorMatrix matrix, ColorRange range,
                 AVChromaLocation chroma) {
    ctx_.reset();
    pre_.reset();
    mid_format_ = vertical_chroma_intermediate(format);
    if (mid_format_ != AV_PIX_FMT_NONE) {
      pre_ = make_sws(format, mid_format_, width, height, chroma);
      if (!pre_) mid_format_ = AV_PIX_FMT_NONE;  // convert in one pass then
    }
    ctx_ = make_sws(mid_format_ != AV_PIX_FMT_NONE ? mid_format_ : format, AV_PIX_FMT_RGB24, width, height, chroma);
    if (!ctx_) {
      throw UnsupportedError(std::string("cannot convert pixel format ") +
                             name_or_unknown(av_get_pix_fmt_name(format)) + " to RGB");
    }
    // Source matrix and range as tagged (the intermediate keeps the source's values, so
    // only the last pass converts colour); destination is full-range RGB (table unused).
    const int* table = sws_getCoefficients(sws_colorspace(matrix));
    const int full = range == ColorRange::kFull ? 1 : 0;
    if (pre_) sws_setColorspaceDetails(pre_.get(), table, full, table, full, 0, 1 << 16, 1 << 16);
    sws_setColorspaceDetails(ctx_.get(), table, full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    format_ = format;
    width_ = width;
    height_ = height;
    matrix_ = matrix;
    range_ = range;
    chroma_ = chroma;
  }

  ffmpeg::SwsContextPtr pre_;  // vertical chroma pass, or null
  ffmpeg::SwsContextPtr ctx_;  // to RGB24
  AVPixelFormat mid_format_ = AV_PIX_FMT_NONE;
  AVPixelFormat format_ = AV_PIX_FMT_NONE;
  int width_ = 0;
  int height_ = 0;
  ColorMatrix matrix_ = ColorMatrix::kBT601;
  ColorRange range_ = ColorRange::kLimited;
  AVChromaLocation chroma_ = AVCHROMA_LOC_UNSPECIFIED;
};

bool has_negative_stride(const AVFrame* f, int planes) {
  for (int p = 0; p < planes; ++p) {
    if (f->linesize[p] < 0) return true;
  }
  return false;
}

// Where the decoder starts after positioning: a fresh open (trustworthy), or a seek that
// may have landed after the frame we want.
enum class Origin { kOpened, kSeek };

}  // namespace

// ---- the reader ----------------------------------------------------------------------

struct VideoReader::Impl {
  Impl(const std::string& path, ReaderOptions options);
  void decode(const std::vector<int64_t>& indices, const std::function<void(const Frame&)>& sink);

  // Positioning.
  void reopen();
  void rewind();
  bool seek_to(int64_t ticks);
  bool seek_to_keyframe(int64_t slot);
  void position_for(int64_t target);
  int64_t keyframe_slot_at_or_before(int64_t target) const;
  void reset_decoder();

  // Decoding.
  void fetch(int64_t target, const std::function<void(const Frame&)>& sink);
  AVFrame* next_frame();
  bool feed();
  bool read_packet();
  int64_t index_of(const AVFrame* f) const;
  void recover_or_throw(int64_t target, const char* why);
  Frame to_output(AVFrame* f, int64_t index);
  void validate(const std::vector<int64_t>& indices) const;

  AVStream* stream() const { return fmt_->streams[stream_index_]; }

  std::string path_;
  ReaderOptions options_;
  ffmpeg::FormatContextPtr fmt_;
  ffmpeg::CodecContextPtr dec_;
  const AVCodec* codec_ = nullptr;
  int stream_index_ = -1;
  FrameIndex index_;
  VideoMetadata meta_;
  Stats stats_;
  ffmpeg::PacketPtr packet_ = ffmpeg::make_packet();
  ffmpeg::FramePtr frame_ = ffmpeg::make_frame();
  RgbConverter rgb_;

  bool packet_pending_ = false;  // packet_ holds data the decoder has not accepted yet
  bool input_done_ = false;      // demuxer exhausted and the decoder told to drain
  std::string read_error_;       // why the demuxer stopped early, if it did
  int64_t position_ = -1;
  int64_t skip_before_ = kNoSkip;  // packets presented before this (ticks) may skip non-ref frames
  Origin origin_ = Origin::kOpened;
  bool dirty_ = false;           // an exception interrupted decode(): reopen before the next one
  // Frames the decoder produced ahead of frames it had yet to produce (a broken timestamp
  // puts a frame's index out of the decoder's output order), by index, for a later fetch.
  std::map<int64_t, SharedFrame> parked_;
};

VideoReader::Impl::Impl(const std::string& path, ReaderOptions options)
    : path_(path), options_(options) {
  fmt_ = ffmpeg::open_format(path_, options_.protocols);
  stream_index_ = ffmpeg::select_video_stream(fmt_.get(), path_, &codec_, options_.stream);
  ffmpeg::discard_other_streams(fmt_.get(), stream_index_);

  ffmpeg::PacketScan scan = ffmpeg::scan_packets(fmt_.get(), stream_index_);
  if (scan.packets.empty()) {
    if (scan.read_error != 0) throw ffmpeg::corrupt_or(path_, "the video stream has no frames", scan.read_error);
    throw DecodeError(file_label(path_) + ": the video stream has no frames");
  }
  ffmpeg::check_dimensions(stream()->codecpar, path_);
  index_ = build_index(std::move(scan.packets), scan.all_have_pts);
  dec_ = open_decoder(stream(), codec_, options_.threads, path_);

  AVPixelFormat pix_fmt = static_cast<AVPixelFormat>(stream()->codecpar->format);
  if (pix_fmt == AV_PIX_FMT_NONE) pix_fmt = dec_->pix_fmt;
  meta_.path = path_;
  meta_.protocols = options_.protocols;
  meta_.stream = stream_index_;
  meta_.video_streams = ffmpeg::list_video_streams(fmt_.get());
  describe_format(fmt_.get(), stream(), pix_fmt, meta_);
  describe_timing(index_, stream(), meta_);
  rewind();
  stats_ = Stats{};  // the rewind above is part of opening, not of a decode call
}

void VideoReader::Impl::validate(const std::vector<int64_t>& indices) const {
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t idx = indices[i];
    if (idx < 0 || idx >= meta_.num_frames) {
      throw PlanError(file_label(path_) + ": frame index " + std::to_string(idx) + " is out of range [0, " +
                      std::to_string(meta_.num_frames) + ")");
    }
    if (i > 0 && idx <= indices[i - 1]) {
      throw PlanError(file_label(path_) + ": frame indices must be strictly ascending, but " +
                      std::to_string(idx) + " follows " + std::to_string(indices[i - 1]));
    }
  }
}

void VideoReader::Impl::decode(const std::vector<int64_t>& indices,
                               const std::function<void(const Frame&)>& sink) {
  stats_ = Stats{};
  validate(indices);
  if (indices.empty()) return;
  if (dirty_) reopen();
  dirty_ = true;
  for (const int64_t target : indices) fetch(target, sink);
  dirty_ = false;
}

// ---- positioning ---------------------------------------------------------------------

void VideoReader::Impl::reset_decoder() {
  avcodec_flush_buffers(dec_.get());
  av_packet_unref(packet_.get());
  packet_pending_ = false;
  input_done_ = false;
  read_error_.clear();
  parked_.clear();
}

// Reopens the file: the one positioning that cannot land in the wrong place.
void VideoReader::Impl::reopen() {
  fmt_.reset();
  fmt_ = ffmpeg::open_format(path_, options_.protocols);
  if (stream_index_ >= static_cast<int>(fmt_->nb_streams) ||
      stream()->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) {
    throw DecodeError(file_label(path_) + ": the file changed while it was being read");
  }
  ffmpeg::discard_other_streams(fmt_.get(), stream_index_);
  reset_decoder();
  ++stats_.seeks;
  position_ = -1;
  origin_ = Origin::kOpened;
}

// Back to frame 0: a seek when frames map by timestamp (a bad landing is detected),
// otherwise a reopen (output-order numbering needs a certain start).
void VideoReader::Impl::rewind() {
  if (index_.map_by_timestamp && seek_to(index_.start_seek)) {
    position_ = -1;
    return;
  }
  reopen();
}

bool VideoReader::Impl::seek_to(int64_t ticks) {
  if (av_seek_frame(fmt_.get(), stream_index_, ticks, AVSEEK_FLAG_BACKWARD) < 0) return false;
  reset_decoder();
  ++stats_.seeks;
  origin_ = Origin::kSeek;
  return true;
}

// `slot` numbers keyframes: index_.keyframes[slot] is the frame index.
bool VideoReader::Impl::seek_to_keyframe(int64_t slot) {
  if (!seek_to(index_.keyframe_seek[slot])) return false;
  position_ = index_.keyframes[slot] - 1;
  return true;
}

// Slot of the last keyframe at or before `target`, or -1.
int64_t VideoReader::Impl::keyframe_slot_at_or_before(int64_t target) const {
  const auto& keys = index_.keyframes;
  return (std::upper_bound(keys.begin(), keys.end(), target) - keys.begin()) - 1;
}

// Seeks when the target is behind the decoder, or far enough ahead that jumping to the
// keyframe before it skips decoding work.
void VideoReader::Impl::position_for(int64_t target) {
  if (!index_.map_by_timestamp) {
    if (target <= position_) reopen();
    return;
  }
  const int64_t slot = keyframe_slot_at_or_before(target);
  const int64_t key = slot >= 0 ? index_.keyframes[slot] : -1;
  if (target <= position_) {
    if (key > 0 && seek_to_keyframe(slot)) return;
    rewind();
    return;
  }
  const bool far = options_.seek_threshold > 0 && target - position_ > options_.seek_threshold;
  if (far && key > position_ + 1) seek_to_keyframe(slot);  // on failure: decode forward
}

// ---- decoding ------------------------------------------------------------------------

void VideoReader::Impl::fetch(int64_t target, const std::function<void(const Frame&)>& sink) {
  if (const auto it = parked_.find(target); it != parked_.end()) {
    const SharedFrame parked = std::move(it->second);
    parked_.erase(it);
    sink(to_output(parked.get(), target));
    return;
  }
  position_for(target);
  // Frames shown before the target are decoded only as references: a frame nothing refers
  // to can be skipped (needs timestamps, since a skipped frame leaves no output to count).
  skip_before_ = index_.map_by_timestamp ? index_.ts[target] : kNoSkip;
  for (;;) {
    AVFrame* f = next_frame();
    if (f == nullptr) {
      recover_or_throw(target, "the stream ended before it");
      continue;
    }
    const int64_t idx = index_of(f);
    if (idx < 0) continue;  // a frame the index does not know (e.g. a broken tail)
    // Ahead of frames still to come: with a lying timestamp the decoder's output order is
    // not the index order. Keep a few such frames instead of giving up on those in between
    // (after a seek that landed late, the recovery below comes kMaxParked frames later).
    if (idx > target && idx > position_ + 1 && parked_.size() < kMaxParked && parked_.count(idx) == 0) {
      parked_.emplace(idx, ffmpeg::share_frame(f));
      continue;
    }
    position_ = idx;
    if (idx < target) continue;
    if (idx == target) {
      skip_before_ = kNoSkip;
      sink(to_output(f, idx));
      return;
    }
    recover_or_throw(target, "the decoder never produced it");
  }
}

// A missing frame after a seek may be the seek's fault: retry once from a fresh open.
void VideoReader::Impl::recover_or_throw(int64_t target, const char* why) {
  if (origin_ == Origin::kOpened) {
    throw DecodeError(file_label(path_) + ": frame " + std::to_string(target) + " could not be decoded (" +
                      why + (read_error_.empty() ? "" : "; read error: " + read_error_) +
                      "); the file may be truncated or corrupt");
  }
  reopen();
}

// The next frame out of the decoder (owned by frame_ until the next call), or nullptr when
// the decoder is drained.
AVFrame* VideoReader::Impl::next_frame() {
  int errors = 0;
  for (;;) {
    const int err = avcodec_receive_frame(dec_.get(), frame_.get());
    if (err == 0) {
      ++stats_.frames_decoded;
      return frame_.get();
    }
    if (err == AVERROR_EOF) return nullptr;
    if (err == AVERROR(EAGAIN)) {
      if (!feed()) return nullptr;
      errors = 0;
      continue;
    }
    // A frame that failed to decode (corrupt data): skip it. Errors without any input in
    // between would repeat forever, so give up after many.
    if (++errors > kMaxConsecutiveDecodeErrors) throw ffmpeg::corrupt_or(path_, "the decoder keeps failing", err);
  }
}

// Gives the decoder its next packet, or the drain signal once the file is exhausted.
// Returns false when there is nothing left to give.
bool VideoReader::Impl::feed() {
  if (input_done_) return false;
  if (!packet_pending_ && !read_packet()) {
    avcodec_send_packet(dec_.get(), nullptr);
    input_done_ = true;
    return true;
  }
  const bool unwanted = packet_->pts != AV_NOPTS_VALUE && packet_->pts < skip_before_;
  dec_->skip_frame = unwanted ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
  const int err = avcodec_send_packet(dec_.get(), packet_.get());
  if (err == AVERROR(EAGAIN)) {  // decoder full: take its frames first, then resend
    packet_pending_ = true;
    return true;
  }
  packet_pending_ = false;
  av_packet_unref(packet_.get());
  // Other errors, ENOMEM included (a damaged header asks for absurd buffers, while the
  // picture size was checked at open): the packet is dropped and the decoder resynchronises.
  return true;
}

bool VideoReader::Impl::read_packet() {
  int retries = 0;
  for (;;) {
    const int err = av_read_frame(fmt_.get(), packet_.get());
    if (err == AVERROR(EAGAIN) && ++retries < kMaxReadRetries) continue;
    if (err < 0) {
      if (err != AVERROR_EOF) read_error_ = error_string(err);
      return false;
    }
    if (packet_->stream_index == stream_index_) {
      ++stats_.packets_read;
      return true;
    }
    av_packet_unref(packet_.get());
  }
}

// Presentation index of a decoded frame, or -1 when it matches no indexed frame.
int64_t VideoReader::Impl::index_of(const AVFrame* f) const {
  const int64_t next = position_ + 1;
  const int64_t n = static_cast<int64_t>(index_.ts.size());
  int64_t ts = f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
  if (!index_.map_by_timestamp || ts == AV_NOPTS_VALUE) return next < n ? next : -1;
  const auto& table = index_.ts;
  const auto it = std::lower_bound(table.begin(), table.end(), ts);
  if (it == table.end() || *it != ts) return -1;
  int64_t idx = it - table.begin();
  // Frames sharing a timestamp take consecutive indices.
  if (idx <= position_ && next < n && table[next] == ts) idx = next;
  return idx;
}

// Wraps a decoded frame for the sink, in display orientation. yuv420p/yuvj420p and nv12
// pass through without a copy; everything else becomes RGB24 via swscale.
Frame VideoReader::Impl::to_output(AVFrame* f, int64_t index) {
  Frame out;
  out.index = index;
  out.timestamp = meta_.timestamps[index];
  out.damaged = f->decode_error_flags != 0 || (f->flags & AV_FRAME_FLAG_CORRUPT) != 0;
  if (out.damaged) stats_.damaged.push_back(index);
  ffmpeg::check_frame_dimensions(f->width, f->height, path_);
  const AVPixelFormat format = static_cast<AVPixelFormat>(f->format);
  const AVColorSpace cs = f->colorspace != AVCOL_SPC_UNSPECIFIED ? f->colorspace : stream()->codecpar->color_space;
  const AVColorRange cr = f->color_range != AVCOL_RANGE_UNSPECIFIED ? f->color_range : stream()->codecpar->color_range;
  out.matrix = matrix_for(cs);
  out.range = range_for(cr, format);
  const int cw = meta_.rotation;

  const bool yuv420 = format == AV_PIX_FMT_YUV420P || format == AV_PIX_FMT_YUVJ420P;
  const bool nv12 = format == AV_PIX_FMT_NV12;
  if (yuv420 || nv12) {
    if (cw == 0 && !has_negative_stride(f, yuv420 ? 3 : 2)) {
      attach(out, ffmpeg::share_frame(f), yuv420 ? PixelLayout::kYUV420P : PixelLayout::kNV12);
    } else {
      attach(out, rotate_yuv420(f, nv12, cw), PixelLayout::kYUV420P);
    }
    return out;
  }
  SharedFrame rgb;
  try {
    rgb = rgb_.convert(f, out.matrix, out.range);
  } catch (const UnsupportedError& e) {
    throw UnsupportedError(file_label(path_) + ": " + e.what());
  }
  attach(out, cw == 0 ? std::move(rgb) : rotate_rgb24(rgb.get(), cw), PixelLayout::kRGB24);
  return out;
}

// ---- public API ----------------------------------------------------------------------

VideoReader::VideoReader(const std::string& path, ReaderOptions options)
    : impl_(std::make_unique<Impl>(path, options)) {}

VideoReader::~VideoReader() = default;

const VideoMetadata& VideoReader::metadata() const { return impl_->meta_; }

void VideoReader::decode(const std::vector<int64_t>& indices,
                         const std::function<void(const Frame&)>& sink) {
  impl_->decode(indices, sink);
}

VideoReader::Stats VideoReader::last_stats() const { return impl_->stats_; }

}  // namespace msce

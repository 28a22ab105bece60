// NVDEC decoding through FFmpeg's CUDA hwaccel (see reader_cuda.hpp). Compiled into every
// FFmpeg build; the body exists only when msce is built with CUDA too.
#if defined(MSCE_HAVE_CUDA)

#include "decode/reader_cuda.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/hwcontext.h>
#include <libavutil/hwcontext_cuda.h>
#include <libavutil/pixdesc.h>
}

#include "common/error.hpp"
#include "decode/ffmpeg_common.hpp"

namespace msce {

namespace {

using ffmpeg::error_string;

// The stream the CPU reader decodes (`meta.stream`, the same choice, so the two indexes
// can agree).
ffmpeg::FormatContextPtr open_input(const VideoMetadata& meta, int* stream_index, const AVCodec** codec) {
  ffmpeg::FormatContextPtr fmt = ffmpeg::open_format(meta.path, meta.protocols);
  *stream_index = ffmpeg::select_video_stream(fmt.get(), meta.path, codec, meta.stream);
  ffmpeg::discard_other_streams(fmt.get(), *stream_index);
  return fmt;
}

struct KeyframeEntry {
  int64_t pts;
  int64_t seek_ts;  // what av_seek_frame needs to land on this packet
};

}  // namespace

bool nvdec_library_available(std::string* why) {
  void* h = dlopen("libnvcuvid.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    if (why) {
      const char* e = dlerror();
      *why = std::string("no NVDEC: libnvcuvid.so.1 (the NVIDIA driver's video decode library) cannot be loaded") +
             (e ? std::string(" (") + e + ")" : std::string()) +
             "; in containers, NVIDIA_DRIVER_CAPABILITIES must include 'video'";
    }
    return false;
  }
  dlclose(h);
  return true;
}

bool nvdec_supported(std::string* why) {
  bool cuda_type = false;
  for (AVHWDeviceType t = av_hwdevice_iterate_types(AV_HWDEVICE_TYPE_NONE); t != AV_HWDEVICE_TYPE_NONE;
       t = av_hwdevice_iterate_types(t)) {
    if (t == AV_HWDEVICE_TYPE_CUDA) cuda_type = true;
  }
  if (!cuda_type) {
    if (why) *why = "this FFmpeg build has no CUDA hwaccel (libavutil without --enable-cuda / ffnvcodec)";
    return false;
  }
  if (!nvdec_library_available(why)) return false;
  if (why) *why = "ok";
  return true;
}

struct NvdecReader::Impl {
  VideoMetadata meta;
  int device = 0;
  int64_t seek_threshold = 16;
  bool hardware = true;
  ffmpeg::FormatContextPtr fmt;
  ffmpeg::CodecContextPtr ctx;
  ffmpeg::BufferRefPtr hw_device;
  int stream_index = -1;
  AVRational time_base{1, 1};
  std::vector<int64_t> pts;          // presentation order: pts[i] of frame i
  std::vector<KeyframeEntry> keyframes;  // ascending pts
  int64_t first_seek = 0;             // seek timestamp that lands on the first packet
  VideoReader::Stats stats;
  bool hw_refused = false;

  static enum AVPixelFormat get_format(AVCodecContext* c, const enum AVPixelFormat* fmts) {
    auto* self = static_cast<Impl*>(c->opaque);
    for (const enum AVPixelFormat* p = fmts; *p != AV_PIX_FMT_NONE; ++p) {
      if (*p == AV_PIX_FMT_CUDA) return *p;
    }
    // FFmpeg offers CUDA only while its hwaccel can start for this stream; without it,
    // refuse software decoding: the caller falls back to the CPU reader instead.
    self->hw_refused = true;
    return AV_PIX_FMT_NONE;
  }

  std::string stream_desc() const {
    return meta.codec + " " + meta.pixel_format + " " + std::to_string(meta.width) + "x" + std::to_string(meta.height);
  }

  // Index of the frame with presentation timestamp `ts`, or -1 when no indexed frame has it.
  int64_t index_of(int64_t ts) const {
    auto it = std::lower_bound(pts.begin(), pts.end(), ts);
    if (it == pts.end() || *it != ts) return -1;
    return it - pts.begin();
  }

  void scan_packets() {
    int si = -1;
    const AVCodec* codec = nullptr;
    ffmpeg::FormatContextPtr scan_fmt = open_input(meta, &si, &codec);
    const ffmpeg::PacketScan scan = ffmpeg::scan_packets(scan_fmt.get(), si);
    if (scan.read_error != 0) {
      throw UnsupportedError(meta.path + ": packet scan stopped early (" + error_string(scan.read_error) + ")");
    }
    if (!scan.all_have_pts) {
      throw UnsupportedError(meta.path + ": packets without a pts (frames are numbered by decode order "
                             "there); the NVDEC path maps frames by timestamp");
    }
    if (scan.packets.empty()) throw DecodeError(meta.path + ": no video packets");
    pts.clear();
    keyframes.clear();
    first_seek = scan.packets.front().seek_ts;
    for (const ffmpeg::PacketEntry& p : scan.packets) {
      pts.push_back(p.ts);
      first_seek = std::min(first_seek, p.seek_ts);
      if (p.key) keyframes.push_back({p.ts, p.seek_ts});
    }
    std::sort(pts.begin(), pts.end());
    std::sort(keyframes.begin(), keyframes.end(),
              [](const KeyframeEntry& a, const KeyframeEntry& b) { return a.pts < b.pts; });

    // Same frames as the CPU reader, or this path is not used.
    if (static_cast<int64_t>(pts.size()) != meta.num_frames ||
        std::adjacent_find(pts.begin(), pts.end()) != pts.end()) {  // shared timestamps: left to the CPU reader
      throw UnsupportedError(meta.path + ": the packet index (" + std::to_string(pts.size()) +
                             " frames) differs from the CPU reader's (" + std::to_string(meta.num_frames) + ")");
    }
    const double tb = av_q2d(time_base);
    for (size_t i = 0; i < pts.size() && i < meta.timestamps.size(); ++i) {
      const double t = static_cast<double>(pts[i] - pts[0]) * tb;
      if (std::fabs(t - meta.timestamps[i]) > 1e-4) {
        throw UnsupportedError(meta.path + ": frame " + std::to_string(i) + " timestamp " + std::to_string(t) +
                               " s differs from the CPU reader's " + std::to_string(meta.timestamps[i]) + " s");
      }
    }
  }

  void open() {
    if (meta.rotation != 0) {
      throw UnsupportedError(meta.path + ": rotated video (" + std::to_string(meta.rotation) +
                             " degrees) is decoded on the CPU path");
    }
    if (meta.bit_depth != 8) {
      throw UnsupportedError(meta.path + ": " + std::to_string(meta.bit_depth) +
                             "-bit video; msce's NVDEC path reads 8-bit NV12 only");
    }
    const AVCodec* codec = nullptr;
    fmt = open_input(meta, &stream_index, &codec);
    AVStream* st = fmt->streams[stream_index];
    time_base = st->time_base;
    if (hardware) open_device(codec);
    scan_packets();

    ctx.reset(avcodec_alloc_context3(codec));
    if (!ctx) throw DecodeError(meta.path + ": out of memory allocating the decoder");
    int e = avcodec_parameters_to_context(ctx.get(), st->codecpar);
    if (e < 0) throw DecodeError(meta.path + ": bad codec parameters (" + error_string(e) + ")");
    ctx->pkt_timebase = st->time_base;
    if (hardware) {
      ctx->hw_device_ctx = av_buffer_ref(hw_device.get());
      ctx->opaque = this;
      ctx->get_format = &Impl::get_format;
    }
    ctx->thread_count = 1;  // NVDEC does the work; frame threads would only add latency and surfaces
    e = avcodec_open2(ctx.get(), codec, nullptr);
    if (e < 0) throw UnsupportedError(meta.path + ": cannot open the NVDEC decoder (" + error_string(e) + ")");
  }

  void open_device(const AVCodec* codec) {
    bool has_cuda = false;
    for (int i = 0;; ++i) {
      const AVCodecHWConfig* cfg = avcodec_get_hw_config(codec, i);
      if (!cfg) break;
      if (cfg->device_type == AV_HWDEVICE_TYPE_CUDA && (cfg->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX)) {
        has_cuda = true;
      }
    }
    if (!has_cuda) {
      throw UnsupportedError(meta.path + ": codec " + meta.codec + " is not supported by NVDEC in this FFmpeg build (" +
                             codec->name + " has no CUDA hwaccel)");
    }
    std::string why;
    if (!nvdec_library_available(&why)) throw UnsupportedError(why);

    AVBufferRef* hw = nullptr;
    const int err = av_hwdevice_ctx_create(&hw, AV_HWDEVICE_TYPE_CUDA, std::to_string(device).c_str(), nullptr,
                                           AV_CUDA_USE_PRIMARY_CONTEXT);
    if (err < 0) {
      throw UnsupportedError("FFmpeg cannot open CUDA device " + std::to_string(device) + " for NVDEC (" +
                             error_string(err) + ")");
    }
    hw_device.reset(hw);
  }

  void seek_to(int64_t ts) {
    const int err = av_seek_frame(fmt.get(), stream_index, ts, AVSEEK_FLAG_BACKWARD);
    if (err < 0) throw DecodeError(meta.path + ": seek failed (" + error_string(err) + ")");
    avcodec_flush_buffers(ctx.get());
    ++stats.seeks;
  }

  // The seek timestamp of the keyframe for `target`; nothing when decoding on is cheaper.
  std::optional<int64_t> seek_ts_for(int64_t target, int64_t last_index) const {
    if (seek_threshold <= 0 || target - last_index < seek_threshold) return std::nullopt;
    const int64_t target_pts = pts[target];
    auto it = std::upper_bound(keyframes.begin(), keyframes.end(), target_pts,
                               [](int64_t v, const KeyframeEntry& k) { return v < k.pts; });
    if (it == keyframes.begin()) return std::nullopt;
    --it;
    if (index_of(it->pts) <= last_index + 1) return std::nullopt;  // no keyframe in between: no work skipped
    return it->seek_ts;
  }

  void fail_refused() {
    std::string why;
    if (!nvdec_library_available(&why)) throw UnsupportedError(why);
    throw UnsupportedError(meta.path + ": NVDEC cannot decode this stream (" + stream_desc() +
                           "): FFmpeg's CUDA hwaccel refused it (profile, chroma format, bit depth or size "
                           "unsupported by this GPU)");
  }

  void decode(const std::vector<int64_t>& indices, const Sink& sink) {
    stats = {};
    for (size_t i = 0; i < indices.size(); ++i) {
      if (indices[i] < 0 || indices[i] >= static_cast<int64_t>(pts.size()) || (i > 0 && indices[i] <= indices[i - 1])) {
        throw PlanError("NVDEC decode needs strictly ascending frame indices within [0, " +
                        std::to_string(pts.size()) + ")");
      }
    }
    if (indices.empty()) return;
    ffmpeg::PacketPtr pkt = ffmpeg::make_packet();
    ffmpeg::FramePtr frame = ffmpeg::make_frame();
    size_t next = 0;
    int64_t last = -1;  // index of the last frame out of the decoder
    bool just_seeked = false;
    bool seeking_allowed = true;
    bool eof = false;
    bool pkt_pending = false;
    int read_retries = 0;

    // Rewind to the very first packet and stop seeking (a seek landed past its target).
    auto rewind = [&]() {
      seek_to(first_seek);
      seeking_allowed = false;
      just_seeked = false;
      eof = false;
      if (pkt_pending) av_packet_unref(pkt.get());
      pkt_pending = false;
      last = -1;
    };
    // The demuxer starts at the beginning (open() or the previous call's rewind below).
    if (const auto at = seek_ts_for(indices[0], -1)) {
      seek_to(*at);
      just_seeked = true;
    }

    while (next < indices.size()) {
      // Drain every frame the decoder has ready.
      int r = avcodec_receive_frame(ctx.get(), frame.get());
      if (r == 0) {
        ++stats.frames_decoded;
        if (hardware && (hw_refused || frame->format != AV_PIX_FMT_CUDA)) fail_refused();
        const int64_t ts = frame->pts != AV_NOPTS_VALUE ? frame->pts : frame->best_effort_timestamp;
        const int64_t idx = ts != AV_NOPTS_VALUE ? index_of(ts) : -1;
        if (idx < 0) {  // not an indexed frame (e.g. from a discarded packet)
          av_frame_unref(frame.get());
          continue;
        }
        if (just_seeked && idx > indices[next]) {
          av_frame_unref(frame.get());
          rewind();
          continue;
        }
        just_seeked = false;
        last = idx;
        if (idx == indices[next]) {
          deliver(frame.get(), idx, sink);
          ++next;
          if (next < indices.size() && seeking_allowed) {
            if (const auto at = seek_ts_for(indices[next], last)) {
              av_frame_unref(frame.get());
              seek_to(*at);
              just_seeked = true;
              eof = false;
              if (pkt_pending) av_packet_unref(pkt.get());
              pkt_pending = false;
              continue;
            }
          }
        } else if (idx > indices[next]) {
          throw DecodeError(meta.path + ": frame " + std::to_string(indices[next]) +
                            " was not produced by the NVDEC decoder (corrupt or missing data)");
        }
        av_frame_unref(frame.get());
        continue;
      }
      if (r == AVERROR_EOF) {
        throw DecodeError(meta.path + ": the stream ended before frame " + std::to_string(indices[next]) +
                          " was decoded (truncated or corrupt file)");
      }
      if (r != AVERROR(EAGAIN)) {
        if (hw_refused) fail_refused();
        throw DecodeError(meta.path + ": NVDEC decode failed (" + error_string(r) + ")");
      }
      if (eof) {
        throw DecodeError(meta.path + ": the decoder stalled before frame " + std::to_string(indices[next]));
      }
      // Feed one packet of our stream (or the flush packet at the end).
      if (!pkt_pending) {
        const int err = av_read_frame(fmt.get(), pkt.get());
        if (err == AVERROR(EAGAIN) && ++read_retries < 1000) continue;
        read_retries = 0;
        if (err == AVERROR_EOF) {
          eof = true;
          r = avcodec_send_packet(ctx.get(), nullptr);
          if (hw_refused) fail_refused();
          continue;
        }
        if (err < 0) throw DecodeError(meta.path + ": cannot read packets (" + error_string(err) + ")");
        if (pkt->stream_index != stream_index) {
          av_packet_unref(pkt.get());
          continue;
        }
        ++stats.packets_read;
      }
      r = avcodec_send_packet(ctx.get(), pkt.get());
      pkt_pending = r == AVERROR(EAGAIN);  // decoder full: drain it, then resend this packet
      if (!pkt_pending) av_packet_unref(pkt.get());
      if (hw_refused) fail_refused();
      if (r < 0 && r != AVERROR(EAGAIN) && r != AVERROR_INVALIDDATA) {
        throw DecodeError(meta.path + ": NVDEC decode failed (" + error_string(r) + ")");
      }
    }
    seek_to(first_seek);  // the next decode() starts from the beginning again
    --stats.seeks;
  }

  void deliver(AVFrame* f, int64_t idx, const Sink& sink) {
    if (!hardware) return deliver_software(f, idx, sink);
    auto* frames_ctx = f->hw_frames_ctx ? reinterpret_cast<AVHWFramesContext*>(f->hw_frames_ctx->data) : nullptr;
    if (!frames_ctx || frames_ctx->sw_format != AV_PIX_FMT_NV12) {
      const char* name = frames_ctx ? av_get_pix_fmt_name(frames_ctx->sw_format) : "unknown";
      throw UnsupportedError(meta.path + ": NVDEC outputs " + std::string(name ? name : "?") +
                             "; msce's CUDA transform reads 8-bit NV12 only");
    }
    if (f->width != meta.width || f->height != meta.height) {
      throw UnsupportedError(meta.path + ": NVDEC frame is " + std::to_string(f->width) + "x" +
                             std::to_string(f->height) + ", the CPU reader's " + std::to_string(meta.width) + "x" +
                             std::to_string(meta.height));
    }
    std::shared_ptr<const void> keep;
    AVFrame* held = hold(f, &keep);
    Frame out;
    out.layout = PixelLayout::kNV12;
    out.data[0] = held->data[0];
    out.data[1] = held->data[1];
    out.linesize[0] = held->linesize[0];
    out.linesize[1] = held->linesize[1];
    fill_common(held, idx, keep, &out);
    sink(out, keep);
  }

  static AVFrame* hold(AVFrame* f, std::shared_ptr<const void>* keep) {
    AVFrame* held = av_frame_alloc();
    if (!held) throw DecodeError("out of memory holding a decoded frame");
    av_frame_move_ref(held, f);
    *keep = std::shared_ptr<const void>(held, [](const void* p) {
      AVFrame* fr = const_cast<AVFrame*>(static_cast<const AVFrame*>(p));
      av_frame_free(&fr);
    });
    return held;
  }

  void deliver_software(AVFrame* f, int64_t idx, const Sink& sink) {
    if (f->format != AV_PIX_FMT_YUV420P && f->format != AV_PIX_FMT_YUVJ420P) {
      throw UnsupportedError(meta.path + ": software mode of the NVDEC reader handles yuv420p only");
    }
    std::shared_ptr<const void> keep;
    AVFrame* held = hold(f, &keep);
    Frame out;
    out.layout = PixelLayout::kYUV420P;
    for (int k = 0; k < 3; ++k) {
      out.data[k] = held->data[k];
      out.linesize[k] = held->linesize[k];
    }
    fill_common(held, idx, keep, &out);
    sink(out, keep);
  }

  void fill_common(const AVFrame* held, int64_t idx, const std::shared_ptr<const void>& keep, Frame* o) {
    Frame& out = *o;
    out.width = held->width;
    out.height = held->height;
    // Colour tags as the CPU reader reads them: the frame's, else the stream's; yuvj = full.
    const AVCodecParameters* par = fmt->streams[stream_index]->codecpar;
    const AVColorSpace cs = held->colorspace != AVCOL_SPC_UNSPECIFIED ? held->colorspace : par->color_space;
    const AVColorRange cr = held->color_range != AVCOL_RANGE_UNSPECIFIED ? held->color_range : par->color_range;
    out.matrix = ffmpeg::matrix_for(cs);
    out.range = ffmpeg::range_for(cr, ctx->sw_pix_fmt);
    out.index = idx;
    out.timestamp = idx < static_cast<int64_t>(meta.timestamps.size()) ? meta.timestamps[idx] : 0.0;
    out.owner = keep;
  }
};

NvdecReader::NvdecReader(const VideoMetadata& meta, int device, int64_t seek_threshold, bool hardware)
    : impl_(std::make_unique<Impl>()) {
  impl_->meta = meta;
  impl_->device = device;
  impl_->seek_threshold = seek_threshold;
  impl_->hardware = hardware;
  impl_->open();
}

NvdecReader::~NvdecReader() = default;

std::uintptr_t NvdecReader::decode_stream() const {
  if (!impl_->hw_device) return 0;
  auto* dev = reinterpret_cast<AVHWDeviceContext*>(impl_->hw_device->data);
  auto* cu = static_cast<AVCUDADeviceContext*>(dev->hwctx);
  return reinterpret_cast<std::uintptr_t>(cu->stream);
}

void NvdecReader::decode(const std::vector<int64_t>& indices, const Sink& sink) { impl_->decode(indices, sink); }

VideoReader::Stats NvdecReader::last_stats() const { return impl_->stats; }

}  // namespace msce

#endif  // MSCE_HAVE_CUDA

// FFmpeg helpers shared by the CPU and NVDEC readers (contract in ffmpeg_common.hpp).
#include "decode/ffmpeg_common.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/error.hpp"

namespace msce::ffmpeg {

namespace {

void reject_directory(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw DecodeError(file_label(path) + ": is a directory, not a video file");
  }
}

std::string codec_label(const AVCodecParameters* par) {
  std::string label = std::string("'") + avcodec_get_name(par->codec_id) + "'";
  if (par->codec_tag != 0) {
    char tag[AV_FOURCC_MAX_STRING_SIZE] = {0};
    av_fourcc_make_string(tag, par->codec_tag);
    label += std::string(" (fourcc ") + tag + ")";
  }
  return label;
}

bool is_cover_art(const AVStream* st) { return (st->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0; }

}  // namespace

std::string file_label(const std::string& path) { return "'" + path + "'"; }

FormatContextPtr open_format(const std::string& path) {
  reject_directory(path);
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err < 0) {  // avformat_open_input frees the context itself on failure
    throw DecodeError(file_label(path) + ": cannot open as a video: " + error_string(err));
  }
  FormatContextPtr fmt(raw);
  err = avformat_find_stream_info(fmt.get(), nullptr);
  if (err < 0) {
    throw DecodeError(file_label(path) + ": cannot read the stream layout: " + error_string(err));
  }
  return fmt;
}

int select_video_stream(AVFormatContext* fmt, const std::string& path, const AVCodec** decoder) {
  const int best = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, decoder, 0);
  if (best >= 0 && !is_cover_art(fmt->streams[best])) return best;
  const AVStream* undecodable = nullptr;
  bool has_cover = false;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
    if (is_cover_art(st)) {
      has_cover = true;
      continue;
    }
    if (const AVCodec* c = avcodec_find_decoder(st->codecpar->codec_id)) {
      *decoder = c;
      return static_cast<int>(i);
    }
    if (undecodable == nullptr) undecodable = st;
  }
  if (undecodable != nullptr) {
    throw UnsupportedError(file_label(path) + ": no decoder for the video codec " +
                           codec_label(undecodable->codecpar) + " in this FFmpeg build");
  }
  throw DecodeError(file_label(path) + ": no video stream" +
                    (has_cover ? " (only a cover picture)" : " (audio only or not a video)"));
}

void discard_other_streams(AVFormatContext* fmt, int keep) {
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    fmt->streams[i]->discard = static_cast<int>(i) == keep ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
  }
}

void check_dimensions(const AVCodecParameters* par, const std::string& path) {
  const int w = par->width, h = par->height;
  if (w <= 0 || h <= 0 || w > kMaxSide || h > kMaxSide || int64_t{w} * h > kMaxPixels) {
    throw UnsupportedError(file_label(path) + ": unsupported picture size " + std::to_string(w) + "x" +
                           std::to_string(h) + " (each side must be 1.." + std::to_string(kMaxSide) +
                           " and the area at most 2^27 pixels)");
  }
}
AVPixelFormat without_jpeg_range(AVPixelFormat f) {
  switch (f) {
    case AV_PIX_FMT_YUVJ420P: return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: return AV_PIX_FMT_YUV411P;
    default: return f;
  }
}

ColorMatrix matrix_for(AVColorSpace cs) {
  switch (cs) {
    case AVCOL_SPC_BT709: return ColorMatrix::kBT709;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return ColorMatrix::kBT2020;
    default: return ColorMatrix::kBT601;  // includes unspecified
  }
}

ColorRange range_for(AVColorRange range, AVPixelFormat format) {
  const bool full = range == AVCOL_RANGE_JPEG || without_jpeg_range(format) != format;
  return full ? ColorRange::kFull : ColorRange::kLimited;
}

// Most demuxers seek in a dts index (avi, flv, and the generic binary search used for
// MPEG-TS/PS); mov and a few others declare AVFMT_SEEK_TO_PTS, and Matroska/WebM seek in
// their pts-based Cues without declaring it. Seeking to a keyframe's pts in a dts index
// can land after the keyframe when frames are reordered, so use the matching timestamp.
int64_t seek_timestamp(const AVFormatContext* fmt, const AVPacket* pkt) {
  const bool by_pts = (fmt->iformat->flags & AVFMT_SEEK_TO_PTS) != 0 ||
                      std::strcmp(fmt->iformat->name, "matroska,webm") == 0;
  const int64_t first = by_pts ? pkt->pts : pkt->dts;
  return first != AV_NOPTS_VALUE ? first : (by_pts ? pkt->dts : pkt->pts);
}

PacketScan scan_packets(AVFormatContext* fmt, int stream_index) {
  PacketScan scan;
  PacketPtr pkt = make_packet();
  int retries = 0;
  for (;;) {
    const int err = av_read_frame(fmt, pkt.get());
    if (err == AVERROR(EAGAIN) && ++retries < kMaxReadRetries) continue;
    if (err < 0) {
      if (err != AVERROR_EOF) scan.read_error = err;  // truncated: keep what was read
      break;
    }
    retries = 0;
    PacketUnref unref(pkt.get());
    if (pkt->stream_index != stream_index) continue;
    // Frames of discard-flagged packets (outside an edit list) never leave the decoder, and
    // a corrupt packet (e.g. cut short by the end of a truncated file) may not make one.
    if (pkt->flags & (AV_PKT_FLAG_DISCARD | AV_PKT_FLAG_CORRUPT)) continue;
    PacketEntry e;
    e.ts = pkt->pts;
    if (e.ts == AV_NOPTS_VALUE) {
      scan.all_have_pts = false;
      e.ts = pkt->dts;
    }
    if (e.ts == AV_NOPTS_VALUE) {  // neither: continue from the previous packet
      e.ts = scan.packets.empty() ? 0 : scan.packets.back().ts + std::max<int64_t>(1, scan.packets.back().duration);
    }
    e.seek_ts = seek_timestamp(fmt, pkt.get());
    if (e.seek_ts == AV_NOPTS_VALUE) e.seek_ts = e.ts;
    e.duration = std::max<int64_t>(0, pkt->duration);
    e.key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
    scan.packets.push_back(e);
  }
  return scan;
}

}  // namespace msce::ffmpeg

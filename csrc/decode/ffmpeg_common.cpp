// FFmpeg helpers shared by the CPU and NVDEC readers (contract in ffmpeg_common.hpp).
#include "decode/ffmpeg_common.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <system_error>

#include "common/error.hpp"

extern "C" {
#include <libavutil/display.h>
}

namespace msce::ffmpeg {

namespace {

// What a stat() mode is, for messages about paths that are not regular files.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Local paths only: no NUL byte (the C string FFmpeg sees would name another file) and a
// regular file (or a link to one) that exists.
void check_local_file(const std::string& path) {
  if (path.find('\0') != std::string::npos) {
    throw DecodeError(file_label(path) + ": the path contains a NUL byte, so it cannot name a file");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    throw DecodeError(file_label(path) + ": cannot open: " + std::generic_category().message(err));
  }
  if (S_ISDIR(st.st_mode)) throw DecodeError(file_label(path) + ": is a directory, not a video file");
  if (!S_ISREG(st.st_mode)) {
    throw DecodeError(file_label(path) + ": is " + file_kind(st.st_mode) +
                      ", not a regular file; msce reads only regular files (pass protocols= to read URLs)");
  }
}

using IoOpen = decltype(AVFormatContext::io_open);

// FFmpeg's own io_open, taken from a fresh context (it is the same for every context).
IoOpen default_io_open() {
  static const IoOpen fn = [] {
    AVFormatContext* c = avformat_alloc_context();
    if (c == nullptr) throw std::bad_alloc();
    const IoOpen f = c->io_open;
    avformat_free_context(c);
    return f;
  }();
  return fn;
}

// io_open for local files: the demuxer may open the input itself and nothing else (HLS
// playlists, ffconcat scripts, mov data references and the like name other files).
int open_input_only(AVFormatContext* s, AVIOContext** pb, const char* url, int flags, AVDictionary** options) {
  if (s->url == nullptr || url == nullptr || std::strcmp(url, s->url) != 0 || (flags & AVIO_FLAG_WRITE) != 0) {
    av_log(s, AV_LOG_ERROR, "msce: refusing to open '%s': only the input file may be read\n", url ? url : "");
    return AVERROR(EPERM);
  }
  return default_io_open()(s, pb, url, flags, options);
}

// Demuxers that read other resources named inside the file (playlists, manifests, concat
// scripts); concat and IMF open them through a context of their own, past open_input_only.
bool names_other_files(const char* name) {
  static const char* const kDenied[] = {"concat", "hls", "dash", "imf"};
  for (const char* d : kDenied) {
    if (std::strcmp(name, d) == 0) return true;
  }
  return false;
}

// FFmpeg's format_whitelist for local files: every demuxer of this build but those.
const std::string& local_format_whitelist() {
  static const std::string list = [] {
    std::string out;
    void* it = nullptr;
    while (const AVInputFormat* f = av_demuxer_iterate(&it)) {
      if (names_other_files(f->name)) continue;
      if (!out.empty()) out += ',';
      out += f->name;
    }
    return out;
  }();
  return list;
}

// The demuxer FFmpeg would choose for the first bytes of `path`, or "" (for messages).
std::string probed_format(const std::string& path) {
  constexpr std::streamsize kProbe = 4096;
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> buf(kProbe + AVPROBE_PADDING_SIZE, 0);
  in.read(reinterpret_cast<char*>(buf.data()), kProbe);
  AVProbeData pd{};
  pd.filename = path.c_str();
  pd.buf = buf.data();
  pd.buf_size = static_cast<int>(in.gcount());
  const AVInputFormat* f = pd.buf_size > 0 ? av_probe_input_format(&pd, 1) : nullptr;
  return f != nullptr ? f->name : "";
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

// The stream's display matrix (9 int32 values), or nullptr. FFmpeg 6.1 moved stream side
// data into AVCodecParameters (libavcodec 60.30); older versions keep it on the AVStream.
const int32_t* display_matrix(const AVStream* st) {
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 30, 100)
  const AVPacketSideData* sd = av_packet_side_data_get(
      st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  if (sd == nullptr || sd->size < 9 * sizeof(int32_t)) return nullptr;
  return reinterpret_cast<const int32_t*>(sd->data);
#else
#if LIBAVFORMAT_VERSION_MAJOR >= 59
  size_t size = 0;
#else
  int size = 0;
#endif
  const uint8_t* data = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (data == nullptr || static_cast<size_t>(size) < 9 * sizeof(int32_t)) return nullptr;
  return reinterpret_cast<const int32_t*>(data);
#endif
}

// "0 (h264 320x240), 2 (mpeg4 160x120, cover picture)": the video streams, for messages.
std::string video_stream_list(const AVFormatContext* fmt) {
  std::string out;
  for (const VideoStreamInfo& v : list_video_streams(fmt)) {
    if (!out.empty()) out += ", ";
    out += std::to_string(v.index) + " (" + v.codec + " " + std::to_string(v.width) + "x" +
           std::to_string(v.height) + (v.attached_pic ? ", cover picture" : "") + ")";
  }
  return out.empty() ? "none" : out;
}

// The stream the caller asked for by its absolute index, checked.
int requested_video_stream(AVFormatContext* fmt, const std::string& path, const AVCodec** decoder, int requested) {
  const std::string head = file_label(path) + ": stream " + std::to_string(requested);
  const std::string tail = "; stream= is the container's stream index (as ffprobe numbers streams) and its "
                           "video streams are: " + video_stream_list(fmt);
  if (requested >= static_cast<int>(fmt->nb_streams)) {
    throw DecodeError(head + " does not exist (the file has " + std::to_string(fmt->nb_streams) + " streams)" + tail);
  }
  const AVStream* st = fmt->streams[requested];
  if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) {
    const char* type = av_get_media_type_string(st->codecpar->codec_type);
    throw DecodeError(head + " is " + (type != nullptr ? std::string("an ") + type : std::string("a non-video")) +
                      " stream, not video" + tail);
  }
  if (is_cover_art(st)) throw DecodeError(head + " is a cover picture (attached_pic), not video" + tail);
  const AVCodec* c = avcodec_find_decoder(st->codecpar->codec_id);
  if (c == nullptr) {
    throw UnsupportedError(head + ": no decoder for the video codec " + codec_label(st->codecpar) +
                           " in this FFmpeg build");
  }
  *decoder = c;
  return requested;
}

}  // namespace

std::string file_label(const std::string& path) {
  std::string quoted = "'";
  for (const char c : path) {
    if (c == '\0') {
      quoted += "\\0";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

bool looks_corrupt(int err) {
  return err == AVERROR_INVALIDDATA || err == AVERROR_EOF || err == AVERROR(ENOMEM) || err == AVERROR_PATCHWELCOME ||
         err == AVERROR_BUG || err == AVERROR_BUG2 || err == AVERROR(EINVAL) || err == AVERROR(ERANGE) ||
         err == AVERROR(ENOSYS) || err == AVERROR(EIO) || err == AVERROR_DECODER_NOT_FOUND || err == AVERROR_STREAM_NOT_FOUND;
}

DecodeError corrupt_or(const std::string& path, const std::string& what, int err) {
  if (looks_corrupt(err)) {
    return DecodeError(file_label(path) + ": " + what + ": the file looks corrupt or truncated (FFmpeg: " +
                       error_string(err) + ")");
  }
  return DecodeError(file_label(path) + ": " + what + ": " + error_string(err));
}

FormatContextPtr open_format(const std::string& path, const std::string& protocols) {
  const bool local = protocols.empty();
  if (local) {
    check_local_file(path);
  } else if (path.find('\0') != std::string::npos) {
    throw DecodeError(file_label(path) + ": the URL contains a NUL byte");
  }
  AVDictionary* opts = nullptr;
  if (av_dict_set(&opts, "protocol_whitelist", local ? "file" : protocols.c_str(), 0) < 0 ||
      (local && av_dict_set(&opts, "format_whitelist", local_format_whitelist().c_str(), 0) < 0)) {
    av_dict_free(&opts);
    throw std::bad_alloc();
  }
  AVFormatContext* raw = avformat_alloc_context();
  if (raw == nullptr) {
    av_dict_free(&opts);
    throw std::bad_alloc();
  }
  if (local) raw->io_open = open_input_only;
  // "file:" makes FFmpeg read the path as a file name even where it looks like a URL
  // ("concat:a|b" and "http:x" are legal file names).
  const std::string url = local ? "file:" + path : path;
  int err = avformat_open_input(&raw, url.c_str(), nullptr, &opts);
  av_dict_free(&opts);
  if (err < 0) {  // avformat_open_input frees the context itself on failure
    if (!local) {
      throw DecodeError(file_label(path) + ": cannot open: " + error_string(err) + " (allowed protocols: " +
                        protocols + ")");
    }
    const std::string probed = err == AVERROR(EINVAL) ? probed_format(path) : std::string();
    if (!probed.empty() && names_other_files(probed.c_str())) {  // refused by the format whitelist
      throw DecodeError(file_label(path) + ": is a " + probed +
                        " playlist or script naming other files; msce reads only media files");
    }
    throw corrupt_or(path, "cannot open as a video", err);
  }
  FormatContextPtr fmt(raw);
  err = avformat_find_stream_info(fmt.get(), nullptr);
  if (err < 0) throw corrupt_or(path, "cannot read the stream layout", err);
  return fmt;
}

// Clockwise degrees (0, 90, 180, 270) to apply to decoded frames. av_display_rotation_get
// reports the counter-clockwise angle the matrix applies, so clockwise = -that. Flips
// (a mirrored matrix) are ignored.
int rotation_clockwise(const AVStream* st) {
  const int32_t* matrix = display_matrix(st);
  if (matrix == nullptr) return 0;
  const double ccw = av_display_rotation_get(matrix);
  if (std::isnan(ccw)) return 0;
  const long quarter_turns = std::lround(-ccw / 90.0);
  return static_cast<int>(((quarter_turns % 4) + 4) % 4) * 90;
}


std::vector<VideoStreamInfo> list_video_streams(const AVFormatContext* fmt) {
  std::vector<VideoStreamInfo> out;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    const AVCodecParameters* par = st->codecpar;
    if (par->codec_type != AVMEDIA_TYPE_VIDEO) continue;
    VideoStreamInfo v;
    v.index = static_cast<int>(i);
    v.codec = avcodec_get_name(par->codec_id);
    v.width = par->width;
    v.height = par->height;
    v.rotation = rotation_clockwise(st);
    const AVRational rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate
                                                                                    : st->r_frame_rate;
    const double tb = av_q2d(st->time_base);
    v.attached_pic = is_cover_art(st);
    if (!v.attached_pic) {  // a cover picture has no rate or length of its own
      v.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
      v.duration = st->duration != AV_NOPTS_VALUE && st->duration > 0 && tb > 0.0 ? st->duration * tb : -1.0;
      v.frames = st->nb_frames > 0 ? st->nb_frames : -1;
    }
    v.is_default = (st->disposition & AV_DISPOSITION_DEFAULT) != 0;
    out.push_back(std::move(v));
  }
  return out;
}

int select_video_stream(AVFormatContext* fmt, const std::string& path, const AVCodec** decoder, int requested) {
  if (requested >= 0) return requested_video_stream(fmt, path, decoder, requested);
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
  if (undecodable != nullptr && undecodable->codecpar->codec_id == AV_CODEC_ID_NONE &&
      undecodable->codecpar->codec_tag == 0) {
    throw DecodeError(file_label(path) + ": the video stream names no codec; the file looks corrupt or truncated");
  }
  if (undecodable != nullptr) {
    throw UnsupportedError(file_label(path) + ": no decoder for the video codec " +
                           codec_label(undecodable->codecpar) + " in this FFmpeg build" +
                           (undecodable->codecpar->codec_id == AV_CODEC_ID_NONE
                                ? " (an unknown fourcc can also mean the file is corrupt)"
                                : ""));
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

void check_frame_dimensions(int width, int height, const std::string& path) {
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide || int64_t{width} * height > kMaxPixels) {
    throw DecodeError(file_label(path) + ": the decoder produced a " + std::to_string(width) + "x" +
                      std::to_string(height) + " picture; the stream looks corrupt");
  }
}

int64_t avi_header_frame_period_us(const std::string& path) {
  // "RIFF" size "AVI " "LIST" size "hdrl" "avih" size, then dwMicroSecPerFrame (little endian):
  // avih is the first chunk of the first list, as the AVI format requires.
  constexpr std::streamsize kHead = 36;
  unsigned char b[kHead] = {0};
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(b), kHead)) return 0;
  const auto is = [&b](int at, const char* tag) { return std::memcmp(b + at, tag, 4) == 0; };
  if (!is(0, "RIFF") || !is(8, "AVI ") || !is(12, "LIST") || !is(20, "hdrl") || !is(24, "avih")) return 0;
  return int64_t{b[32]} | int64_t{b[33]} << 8 | int64_t{b[34]} << 16 | int64_t{b[35]} << 24;
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
    e.dts = pkt->dts;
    if (e.ts == AV_NOPTS_VALUE) {
      scan.all_have_pts = false;
      e.has_pts = false;
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

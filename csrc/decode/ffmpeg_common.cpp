// FFmpeg helpers shared by the CPU and NVDEC readers (contract in ffmpeg_common.hpp).
#include "decode/ffmpeg_common.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "common/error.hpp"

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

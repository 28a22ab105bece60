// The FFmpeg helpers shared by the CPU reader (reader.cpp) and the NVDEC reader
// (reader_cuda.cpp): owning pointers with custom deleters, av_strerror text, opening a
// file and choosing its video stream, the colour tags the transform uses, and the packet
// scan that builds the presentation-order index.
//
// Every FFmpeg allocation in the decoders is owned by one of these aliases from the moment
// it exists, so an exception thrown anywhere unwinds without leaking. Only this header's
// users in csrc/decode include FFmpeg headers.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/frame.hpp"
#include "decode/reader.hpp"

namespace msce::ffmpeg {

struct FormatContextDeleter {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsContextDeleter {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};
struct BufferRefDeleter {
  void operator()(AVBufferRef* p) const { av_buffer_unref(&p); }
};

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextDeleter>;
using BufferRefPtr = std::unique_ptr<AVBufferRef, BufferRefDeleter>;

// A frame that shares its buffers with whoever holds a copy of the pointer (Frame::owner).
using SharedFrame = std::shared_ptr<AVFrame>;

inline FramePtr make_frame() {
  FramePtr f(av_frame_alloc());
  if (!f) throw std::bad_alloc();
  return f;
}

inline PacketPtr make_packet() {
  PacketPtr p(av_packet_alloc());
  if (!p) throw std::bad_alloc();
  return p;
}

// Takes over the references held by `src` (leaving it blank) into a new shared frame.
inline SharedFrame share_frame(AVFrame* src) {
  FramePtr dst = make_frame();
  av_frame_move_ref(dst.get(), src);
  return SharedFrame(dst.release(), FrameDeleter());
}

// FFmpeg's text for an AVERROR code, e.g. "No such file or directory".
inline std::string error_string(int errnum) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  if (av_strerror(errnum, buf, sizeof(buf)) < 0) return "FFmpeg error " + std::to_string(errnum);
  return buf;
}

// Drops a packet's payload when it goes out of scope (the AVPacket itself stays allocated).
class PacketUnref {
 public:
  explicit PacketUnref(AVPacket* p) : p_(p) {}
  ~PacketUnref() { av_packet_unref(p_); }
  PacketUnref(const PacketUnref&) = delete;
  PacketUnref& operator=(const PacketUnref&) = delete;

 private:
  AVPacket* p_;
};

// ---- limits ---------------------------------------------------------------------------

constexpr int kMaxSide = 16384;                   // largest accepted width or height
constexpr int64_t kMaxPixels = int64_t{1} << 27;  // largest accepted width * height
constexpr int kMaxReadRetries = 64;               // av_read_frame returning EAGAIN in a row

// ---- opening ----------------------------------------------------------------------------

// The path as error messages quote it (a NUL byte shows as \0).
std::string file_label(const std::string& path);

// Opens `path` and reads its stream layout. Throws DecodeError naming the path.
//
// With `protocols` empty (the default) only a local regular file is read: the path is
// checked with stat() first (missing, unreadable, a directory, FIFO, socket or device ->
// DecodeError saying what it is; a FIFO would otherwise block forever), a path holding a
// NUL byte is refused, FFmpeg's protocol whitelist is "file" and the path is opened as
// "file:<path>", so "concat:a|b", "http://..." or "subfile:..." name files, not protocols;
// and nothing but that file is read: the demuxer's io_open refuses every other name (HLS
// segments, mov external references, image sequences) and the demuxers that open files
// named inside the input themselves (concat, hls, dash, imf) are off the format whitelist.
// A non-empty `protocols` (FFmpeg's comma-separated whitelist, e.g. "file,http,https,tcp,tls")
// opens `path` as a URL restricted to those protocols, for callers that opted in.
FormatContextPtr open_format(const std::string& path, const std::string& protocols = {});

// A DecodeError for FFmpeg failing with `err` while doing `what` on `path`. Errors that
// corrupt or cut-off data produce (invalid data, end of file, out of memory for a bogus
// size, "patches welcome" for nonsense fields, ...) say that the file looks corrupt or
// truncated, with FFmpeg's own text in brackets.
DecodeError corrupt_or(const std::string& path, const std::string& what, int err);

// Whether FFmpeg's error `err` is what damaged input typically produces.
bool looks_corrupt(int err);

// The video stream to decode; sets *decoder. `requested` < 0: the best video stream that
// FFmpeg can decode (av_find_best_stream; cover art is not video). Otherwise the container's
// absolute stream index (AVStream::index: ffprobe's "index", `-map 0:<i>`, PyAV's
// `stream.index`), which must be a video stream that is not a cover picture.
// Throws UnsupportedError (no decoder in this FFmpeg) or DecodeError (no video stream; a
// requested index that is out of range, not video or a cover picture: the message names the
// index and lists the file's video streams).
int select_video_stream(AVFormatContext* fmt, const std::string& path, const AVCodec** decoder, int requested = -1);

// Every video stream of `fmt`, in index order, from the header (no packets are read).
std::vector<VideoStreamInfo> list_video_streams(const AVFormatContext* fmt);

// Clockwise degrees (0, 90, 180, 270) to apply to `st`'s decoded frames for display.
int rotation_clockwise(const AVStream* st);

// Makes the demuxer drop every packet of the other streams.
void discard_other_streams(AVFormatContext* fmt, int keep);

// Throws UnsupportedError unless 1 <= side <= kMaxSide and area <= kMaxPixels.
void check_dimensions(const AVCodecParameters* par, const std::string& path);
// The same limits for a decoded frame (a damaged stream can switch to an absurd size
// mid-file): throws DecodeError saying the stream looks corrupt.
void check_frame_dimensions(int width, int height, const std::string& path);

// The frame period an AVI file's main header (avih.dwMicroSecPerFrame) declares, in
// microseconds; 0 when `path` is not a RIFF AVI with the standard header layout or the field
// is 0. libavformat does not use this field (its timestamps come from the stream header strh
// alone), which makes it an independent check of strh's rate/scale.
int64_t avi_header_frame_period_us(const std::string& path);

// ---- colour -----------------------------------------------------------------------------

// yuvj* formats are plain YUV layouts that imply full range: the plain format, else `f`.
AVPixelFormat without_jpeg_range(AVPixelFormat f);
// The conversion matrix for a colour-space tag (unspecified and unknown -> BT.601).
ColorMatrix matrix_for(AVColorSpace cs);
// Full range for the JPEG range tag or a yuvj* format, limited otherwise.
ColorRange range_for(AVColorRange range, AVPixelFormat format);

// ---- packet scan ------------------------------------------------------------------------

struct PacketEntry {
  int64_t ts = 0;        // pts, or dts when the packet has no pts
  int64_t dts = AV_NOPTS_VALUE;
  bool has_pts = true;   // ts is the packet's own pts
  int64_t seek_ts = 0;   // what av_seek_frame needs to land on this packet (see seek_timestamp)
  int64_t duration = 0;  // ticks, 0 when unknown
  bool key = false;
};

// The timestamp av_seek_frame must be given to land on the packet `pkt` in `fmt`'s index.
int64_t seek_timestamp(const AVFormatContext* fmt, const AVPacket* pkt);

struct PacketScan {
  std::vector<PacketEntry> packets;  // decode order; discarded and corrupt packets left out
  bool all_have_pts = true;
  int read_error = 0;  // the error that ended the scan early (0: clean end of file)
};

// Reads every packet of the video stream once (no decoding).
PacketScan scan_packets(AVFormatContext* fmt, int stream_index);

}  // namespace msce::ffmpeg

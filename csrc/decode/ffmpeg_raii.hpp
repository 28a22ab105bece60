// FFmpeg objects behind std::unique_ptr with custom deleters, and av_strerror text.
//
// Every FFmpeg allocation in the decoder is owned by one of these aliases from the moment
// it exists, so an exception thrown anywhere unwinds without leaking. Only this header and
// the reader include FFmpeg headers.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <new>
#include <string>

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

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextDeleter>;

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

}  // namespace msce::ffmpeg

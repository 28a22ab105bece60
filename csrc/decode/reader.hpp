// Video reader over libavformat/libavcodec.
//
// Opening a file demuxes it once without decoding (packets only) to build an exact
// presentation-order index: the true frame count and every frame's timestamp, whatever
// the container header claims. Frame i is the i-th frame in presentation order.
// Decoding then visits only the requested indices, in ascending order, seeking to the
// nearest keyframe when that skips work and never decoding past the last index.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/frame.hpp"

namespace msce {

// What the container header says about one video stream (the selected one is described
// exactly by VideoMetadata's own fields, from the packet scan).
struct VideoStreamInfo {
  int index = 0;              // the container's stream index (AVStream::index, ffprobe's "index")
  std::string codec;          // e.g. "h264"
  int width = 0;              // coded size
  int height = 0;
  int rotation = 0;           // clockwise degrees from the display matrix
  double fps = 0.0;           // header frame rate (average, else real base), 0 when unknown
  double duration = -1.0;     // header duration in seconds, -1 when unknown
  int64_t frames = -1;        // header frame count (nb_frames), -1 when unknown
  bool is_default = false;    // default disposition
  bool attached_pic = false;  // a cover picture, not video (never selected)
};

struct VideoMetadata {
  std::string path;
  int stream = -1;             // the container's index of the decoded stream (AVStream::index)
  std::vector<VideoStreamInfo> video_streams;  // every video stream of the file, index order
  std::string container;       // AVInputFormat name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;           // e.g. "h264"
  std::string pixel_format;    // decoder output format name, e.g. "yuv420p"
  int bit_depth = 8;
  int coded_width = 0;         // as stored in the stream
  int coded_height = 0;
  int width = 0;               // as displayed (after rotation)
  int height = 0;
  int rotation = 0;            // clockwise degrees applied to decoded frames: 0, 90, 180, 270
  int64_t num_frames = 0;      // true count, from the packet index
  int64_t header_num_frames = -1;  // what the container claims (nb_frames), -1 when absent
  double duration = 0.0;       // seconds: last timestamp + last frame duration (bounded, see reader.cpp)
  double average_fps = 0.0;    // num_frames / duration
  bool variable_frame_rate = false;
  std::string color_space;     // "bt709", "bt470bg", "smpte170m", "unknown", ...
  std::string color_range;     // "tv", "pc", "unknown"
  ColorMatrix matrix = ColorMatrix::kBT601;  // what the transform uses (unknown -> BT.601)
  ColorRange range = ColorRange::kLimited;   // (unknown -> limited, yuvj* -> full)
  std::vector<double> timestamps;  // seconds from the first frame (timestamps[0] == 0), ascending
  std::string protocols;       // ReaderOptions::protocols the file was opened with (NVDEC reopens it)
};

struct ReaderOptions {
  int threads = 0;             // FFmpeg decoder threads; 0 = FFmpeg's choice (all cores)
  // Seek only when the next wanted frame is at least this many frames past the current
  // position and a keyframe lies in between; 0 = always decode sequentially.
  int64_t seek_threshold = 16;
  // FFmpeg protocols `path` may use. Empty (the default): `path` must be a local regular
  // file, read through the "file" protocol only (see ffmpeg::open_format). Otherwise a
  // comma-separated FFmpeg protocol whitelist, e.g. "file,http,https,tcp,tls", and `path`
  // is a URL: an explicit opt-in, since a dataset listing "concat:", "http:" or "pipe:"
  // entries could make the reader fetch or read anything.
  std::string protocols;
  // The video stream to decode: -1 (the default) = FFmpeg's best video stream
  // (av_find_best_stream); otherwise the container's absolute stream index, as ffprobe
  // numbers streams (`-map 0:<i>`, not `0:v:<i>`). An index that is out of range, not a
  // video stream or a cover picture throws DecodeError listing the video streams.
  int stream = -1;
};

class VideoReader {
 public:
  // Throws DecodeError (missing file, directory, FIFO/socket/device, NUL in the path, not
  // a video, no video stream, a bad requested stream, zero frames, corrupt) or UnsupportedError (codec without
  // decoder, absurd dimensions).
  // Messages name the path and carry FFmpeg's error text.
  explicit VideoReader(const std::string& path, ReaderOptions options = {});
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  const VideoMetadata& metadata() const;

  // Decodes the frames at `indices` (strictly ascending, each in [0, num_frames)),
  // calling `sink` exactly once per index, in order. Throws PlanError for bad indices
  // and DecodeError when a wanted frame cannot be produced (truncated/corrupt data).
  void decode(const std::vector<int64_t>& indices, const std::function<void(const Frame&)>& sink);

  // Statistics of the last decode() call (for benchmarks and tests).
  struct Stats {
    int64_t frames_decoded = 0;   // frames that came out of the decoder
    int64_t seeks = 0;
    int64_t packets_read = 0;
    std::vector<int64_t> damaged;  // delivered indices whose picture the decoder flagged as damaged
  };
  Stats last_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace msce

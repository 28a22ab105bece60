// Stand-in reader for builds without FFmpeg (MSCE_FFMPEG=OFF): every open fails with a
// clear reason, everything else (plans, transforms of user-supplied frames) still works.
#include "common/error.hpp"
#include "decode/reader.hpp"

namespace msce {

struct VideoReader::Impl {};

VideoReader::VideoReader(const std::string& path, ReaderOptions) {
  throw UnsupportedError(path + ": msce was built without FFmpeg (MSCE_FFMPEG=OFF), so it cannot decode video files");
}
VideoReader::~VideoReader() = default;
const VideoMetadata& VideoReader::metadata() const { throw UnsupportedError("msce was built without FFmpeg"); }
void VideoReader::decode(const std::vector<int64_t>&, const std::function<void(const Frame&)>&) {
  throw UnsupportedError("msce was built without FFmpeg");
}
VideoReader::Stats VideoReader::last_stats() const { return {}; }

}  // namespace msce

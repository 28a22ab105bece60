// Stand-in reader for builds without FFmpeg (MSCE_FFMPEG=OFF): every open fails with a
// clear reason, everything else (plans, transforms of user-supplied frames) still works.
#include "common/error.hpp"
#include "decode/ffmpeg_log.hpp"
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

// Without FFmpeg there is nothing to log: the level is kept, the queue stays empty.
namespace ffmpeg_log {
namespace {
int g_level = kError;
}
void install(int level) { g_level = level; }
void set_level(int level) { g_level = level; }
int level() { return g_level; }
bool parse_level(const std::string& text, int* level) {
  static const char* const kNames[] = {"quiet", "panic", "fatal", "error", "warning", "info", "verbose", "debug", "trace"};
  static const int kLevels[] = {kQuiet, kPanic, kFatal, kError, kWarning, kInfo, kVerbose, kDebug, kTrace};
  for (int i = 0; i < 9; ++i) {
    if (text == kNames[i]) {
      *level = kLevels[i];
      return true;
    }
  }
  return false;
}
std::vector<Record> drain(std::size_t* dropped) {
  if (dropped != nullptr) *dropped = 0;
  return {};
}
}  // namespace ffmpeg_log

}  // namespace msce

// FFmpeg's log lines ("moov atom not found", "[h264 @ 0x...] error while decoding MB ...")
// kept away from stderr: an av_log callback buffers each complete line at or above a
// chosen severity, and the caller drains the buffer on its own thread (the Python binding
// turns the lines into records of the `msce.ffmpeg` logger).
//
// The callback runs on any thread FFmpeg logs from (decoder frame threads included) and
// never calls back into Python; it only appends to a bounded queue, so it is safe at any
// time, also while the interpreter shuts down. Lines beyond the queue's capacity are
// counted and dropped. Levels are FFmpeg's (AV_LOG_ERROR = 16, AV_LOG_WARNING = 24, ...;
// smaller is more severe). Free of FFmpeg headers so that builds without FFmpeg compile it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace msce::ffmpeg_log {

constexpr int kQuiet = -8;
constexpr int kPanic = 0;
constexpr int kFatal = 8;
constexpr int kError = 16;
constexpr int kWarning = 24;
constexpr int kInfo = 32;
constexpr int kVerbose = 40;
constexpr int kDebug = 48;
constexpr int kTrace = 56;
constexpr std::size_t kCapacity = 1000;  // lines kept between two drains

struct Record {
  int level = kError;
  std::string text;  // one line without its newline, "[h264 @ 0x...] " prefix included
};

// Installs the callback (idempotent) and keeps lines with level <= `level`.
void install(int level);
void set_level(int level);
int level();

// FFmpeg's level for a name ("quiet", "panic", "fatal", "error", "warning", "info",
// "verbose", "debug", "trace", any case) or a decimal number; false when neither.
bool parse_level(const std::string& text, int* level);

// The buffered lines, oldest first, and how many were dropped since the last drain.
std::vector<Record> drain(std::size_t* dropped);

}  // namespace msce::ffmpeg_log

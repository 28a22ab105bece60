// The av_log callback and its queue (contract in ffmpeg_log.hpp).
#include "decode/ffmpeg_log.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

extern "C" {
#include <libavutil/log.h>
}

namespace msce::ffmpeg_log {

namespace {

constexpr std::size_t kMaxLine = 4096;  // longer lines are cut (FFmpeg's own limit is 1024)

struct Queue {
  std::mutex mu;
  std::deque<Record> lines;
  std::size_t dropped = 0;
};

// Never destroyed: FFmpeg threads may still log while static objects are torn down.
Queue& queue() {
  static Queue* q = new Queue();
  return *q;
}

std::atomic<int> g_level{kError};

void push(int level, std::string text) {
  Queue& q = queue();
  std::lock_guard<std::mutex> lock(q.mu);
  if (q.lines.size() >= kCapacity) {
    ++q.dropped;
    return;
  }
  q.lines.push_back(Record{level, std::move(text)});
}

void callback(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > g_level.load(std::memory_order_relaxed)) return;
  // A line can arrive in pieces (several av_log calls before the newline): collect them
  // per thread, as FFmpeg's default callback does with its prefix state.
  thread_local int print_prefix = 1;
  thread_local std::string pending;
  thread_local int pending_level = kError;
  char part[1024];
  va_list copy;
  va_copy(copy, vl);
  av_log_format_line2(avcl, level, fmt, copy, part, sizeof(part), &print_prefix);
  va_end(copy);
  if (pending.empty()) pending_level = level;
  if (pending.size() < kMaxLine) pending.append(part, std::min(kMaxLine - pending.size(), std::strlen(part)));
  if (!pending.empty() && pending.back() == '\n') {
    while (!pending.empty() && (pending.back() == '\n' || pending.back() == '\r')) pending.pop_back();
    if (!pending.empty()) push(std::min(pending_level, level), std::move(pending));
    pending.clear();
  }
}

}  // namespace

void install(int level) {
  set_level(level);
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(callback); });
}

void set_level(int level) { g_level.store(level, std::memory_order_relaxed); }

int level() { return g_level.load(std::memory_order_relaxed); }

bool parse_level(const std::string& text, int* level) {
  std::string t;
  for (const char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  static const struct {
    const char* name;
    int level;
  } kNames[] = {{"quiet", kQuiet},   {"panic", kPanic}, {"fatal", kFatal},     {"error", kError},
                {"warning", kWarning}, {"warn", kWarning}, {"info", kInfo}, {"verbose", kVerbose},
                {"debug", kDebug},   {"trace", kTrace}};
  for (const auto& n : kNames) {
    if (t == n.name) {
      *level = n.level;
      return true;
    }
  }
  if (t.empty()) return false;
  char* end = nullptr;
  const long v = std::strtol(t.c_str(), &end, 10);
  if (end == nullptr || *end != '\0' || v < kQuiet || v > kTrace) return false;
  *level = static_cast<int>(v);
  return true;
}

std::vector<Record> drain(std::size_t* dropped) {
  Queue& q = queue();
  std::lock_guard<std::mutex> lock(q.mu);
  std::vector<Record> out(std::make_move_iterator(q.lines.begin()), std::make_move_iterator(q.lines.end()));
  q.lines.clear();
  if (dropped != nullptr) *dropped = q.dropped;
  q.dropped = 0;
  return out;
}

}  // namespace msce::ffmpeg_log

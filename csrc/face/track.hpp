// Face tracking over a clip: box math, association of per-frame detections into tracks
// by IoU, one track chosen by a policy, then resampled at every planned frame with a
// zero-phase smoother, and turned into square crop boxes clamped to the frame.
//
// Conventions: boxes are (x, y, w, h) in display pixels with x, y the top-left corner;
// times are seconds from the first frame. No image data here, only numbers, so the whole
// file is unit-testable without a detector or a decoder.
#pragma once

#include <cstdint>
#include <vector>

#include "pixel/transform.hpp"

namespace msce::face {

struct Box {
  double x = 0.0;
  double y = 0.0;
  double w = 0.0;
  double h = 0.0;
  double cx() const { return x + 0.5 * w; }
  double cy() const { return y + 0.5 * h; }
  double area() const { return (w > 0.0 && h > 0.0) ? w * h : 0.0; }
};

// Intersection over union; 0 when either box is empty.
double iou(const Box& a, const Box& b);

struct Detection {
  Box box;
  double score = 0.0;
  std::vector<double> landmarks;  // num_landmarks * 2 values (x0, y0, x1, y1, ...); NaN = not given
};

// Every detection found on one frame of the detection subsample.
struct DetectionFrame {
  double time = 0.0;
  std::vector<Detection> detections;
};

// A face followed over time: (frame, detection) pairs into the DetectionFrame list,
// in time order. Ids count from 0 in order of first appearance (left to right within a frame).
struct Track {
  int id = 0;
  std::vector<std::pair<int, int>> points;
};

enum class SelectPolicy : int {
  kLargest = 0,  // greatest summed box area over its detections (size x time on screen)
  kCentral = 1,  // greatest summed closeness of the box centre to the frame centre
  kTrackId = 2,  // the track with a given id
};

enum class Missing : int {
  kFull = 0,    // crop = the whole frame
  kCenter = 1,  // crop = a centred square of the clip's face-crop side (min(W, H) without any face)
  kError = 2,   // crop as kCenter; the caller raises when any frame has no face
};

// What a planned frame's face box rests on.
enum class FrameStatus : int {
  kDetected = 0,      // a detection of the chosen track at this very time
  kInterpolated = 1,  // between two detections of the chosen track
  kHeld = 2,          // before the first / after the last detection, within `hold` seconds
  kNone = 3,          // no face: the `missing` policy's crop
};

struct TrackerOptions {
  // association
  double min_iou = 0.2;  // a detection continues a track when IoU with its predicted box >= this
  double max_gap = 1.0;  // seconds a track may go undetected and still be continued
  int min_hits = 1;      // tracks with fewer detections are ignored by the policy
  // choice
  SelectPolicy select = SelectPolicy::kLargest;
  int track_id = -1;
  // resampling
  double sigma = 0.25;  // seconds: Gaussian width of the local-linear smoother (0 = interpolate only)
  double hold = 0.5;    // seconds the first/last box is held outside the detected span
  // crops
  double margin = 1.5;    // crop side = margin * max(face w, face h)
  bool fixed_size = true; // one crop side for the whole clip (the largest smoothed face)
  Missing missing = Missing::kCenter;

  void validate() const;
};

struct TrackerResult {
  std::vector<Track> tracks;          // every track found (ignoring min_hits)
  int selected = -1;                  // index into tracks, -1 when no face at all
  std::vector<FrameStatus> status;    // per query time
  std::vector<Box> faces;             // smoothed face box per query (zeros when kNone)
  std::vector<double> scores;         // per query (0 when kNone)
  std::vector<double> landmarks;      // query * num_landmarks * 2 (NaN when kNone or not given)
  std::vector<CropBox> crops;         // per query: integer crop box inside the frame
  int crop_side = 0;                  // the fixed square side (0 when fixed_size is off)
};

// Greedy association: for each detection frame in time order, pairs of (live track,
// detection) are matched best IoU first (IoU >= min_iou), against the track's box predicted
// at that time by constant velocity from its last two detections. Pairs left over may still
// match, nearest first, when the centre moved by at most 1.5 face sizes and the size changed
// by at most 1.5x (fast motion between sparse detections). Unmatched detections start
// tracks; tracks unseen for more than max_gap seconds end.
std::vector<Track> associate(const std::vector<DetectionFrame>& frames, double min_iou, double max_gap);

// Index of the chosen track, or -1 (no eligible track, or no track with that id).
int select_track(const std::vector<Track>& tracks, const std::vector<DetectionFrame>& frames, int width, int height,
                 const TrackerOptions& options);

// Local-linear Gaussian-kernel regression of samples (t_i, v_i) at time t: zero phase (the
// kernel is symmetric), exact on linear motion, and continuous in t. The bandwidth is
// max(sigma, half the distance to the second-nearest sample), so between sparse samples it
// interpolates linearly instead of snapping to the nearest one.
double smooth_at(const std::vector<double>& t, const std::vector<double>& v, double at, double sigma);

// Integer square of `side` centred on (cx, cy), shrunk to fit and shifted inside the frame.
CropBox square_crop(double cx, double cy, int side, int width, int height);

// The whole pipeline over one clip's detections, resampled at `query_times` (ascending or
// not; each is resolved independently).
TrackerResult track_faces(const std::vector<DetectionFrame>& frames, const std::vector<double>& query_times,
                          int width, int height, int num_landmarks, const TrackerOptions& options);

}  // namespace msce::face

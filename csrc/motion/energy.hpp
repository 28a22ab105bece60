// Facial motion energy at full frame rate, from small frames (a face crop resized to
// ~64..128 px): block Lucas-Kanade flow between consecutive frames, minus the head's own
// motion, summarized per frame. No FFmpeg and no Python here.
#pragma once

#include <cstdint>
#include <vector>

namespace msce {

struct MotionOptions {
  int block = 8;                  // LK block side, pixels of the analysis frames
  double top_fraction = 0.05;     // energy = mean of this share of the largest block residuals
  double regularization = 0.2;    // Tikhonov weight, relative to the mean block gradient energy
  int threads = 0;                // worker threads over frame ranges (0 = hardware threads)
};

// Per frame t (index 0 has no predecessor: every curve is 0 there):
//   energy[t]     local facial motion between frames t-1 and t, pixels per frame: the
//                 mean of the top `top_fraction` block residuals |r_b| (see motion_energy)
//   difference[t] mean |I_t - I_{t-1}| of the photometrically normalized frames (in
//                 units of the frame's own contrast; no motion compensation)
//   global_dx/dy  the head motion fitted at the frame centre, pixels per frame
struct MotionCurves {
  std::vector<float> energy;
  std::vector<float> difference;
  std::vector<float> global_dx;
  std::vector<float> global_dy;
};

// `frames`: count x height x width x channels uint8, C-contiguous; channels 1 (grey) or 3
// (RGB, converted to BT.601 luma). Each frame is blurred (5-tap binomial) and normalized
// to zero mean and unit variance, which cancels global gain and offset changes of the
// lighting. For a pair (t-1, t), block Lucas-Kanade (normal equations A_b v = -c_b from
// the gradients of the two frames' mean and I_t = I1 - I0, solved with A_b + lambda I)
// gives a flow per block. The head motion is an affine field g fitted to the block flows
// by least squares weighted by each block's smaller eigenvalue of A_b (corner strength)
// and refitted once without the 30 % of blocks that fit worst; it is estimated coarse to
// fine (on 2x2-averaged frames first, then at full size on frame t-1 warped by that
// estimate), so head motion of a few pixels per frame stays within LK's range. The
// residual r_b = (A_b + lambda I)^-1 (-c_b - A_b dg(x_b)), dg the full-size refinement,
// is the motion the head does not explain; it tends to 0 on flat blocks (no evidence).
MotionCurves motion_energy(const uint8_t* frames, int64_t count, int height, int width, int channels,
                           const MotionOptions& options);

}  // namespace msce

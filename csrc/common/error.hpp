// Error tree shared by every native module. Python sees each class as the
// msce.errors subclass of the same name (see bindings/bindings.cpp).
#pragma once

#include <stdexcept>
#include <string>

namespace msce {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The file cannot be opened, demuxed or decoded (missing, truncated, corrupt, no video).
class DecodeError : public Error {
 public:
  using Error::Error;
};

// The codec or pixel format is known but msce (or this FFmpeg build) cannot handle it.
class UnsupportedError : public DecodeError {
 public:
  using DecodeError::DecodeError;
};

// A frame plan that cannot be satisfied by the clip (past the end, empty, bad parameters).
class PlanError : public Error {
 public:
  using Error::Error;
};

// Bad transform/target parameters or input frames of the wrong shape.
class TransformError : public Error {
 public:
  using Error::Error;
};

class CudaError : public Error {
 public:
  using Error::Error;
};

}  // namespace msce

#define MSCE_CHECK(cond, ExcType, msg)                                 \
  do {                                                                 \
    if (!(cond)) throw ExcType(std::string(msg));                      \
  } while (0)

// Checks a CUDA runtime call (only in files that include <cuda_runtime.h>): throws
// msce::CudaError naming the call and carrying cudaGetErrorString's text.
#define MSCE_CUDA_CHECK(expr)                                                                        \
  do {                                                                                               \
    const cudaError_t msce_cuda_err_ = (expr);                                                       \
    if (msce_cuda_err_ != cudaSuccess) {                                                             \
      throw ::msce::CudaError(std::string(#expr) + " failed: " + cudaGetErrorString(msce_cuda_err_) + \
                              " (" + cudaGetErrorName(msce_cuda_err_) + ")");                        \
    }                                                                                                \
  } while (0)

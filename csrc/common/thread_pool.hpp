// A small fixed-size thread pool with a bounded number of tasks in flight, so a producer
// (the decoder) blocks instead of queueing a whole clip of decoded frames.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace msce {

class BoundedPool {
 public:
  BoundedPool(int threads, int max_in_flight) : max_in_flight_(max_in_flight < 1 ? 1 : max_in_flight) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~BoundedPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_task_.notify_all();
    for (auto& t : workers_) t.join();
  }
  BoundedPool(const BoundedPool&) = delete;
  BoundedPool& operator=(const BoundedPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()); }

  // Runs `fn` on a worker (inline when the pool has no workers). Blocks while
  // max_in_flight tasks are queued or running.
  void submit(std::function<void()> fn) {
    if (workers_.empty()) {
      run_guarded(fn);
      rethrow();
      return;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_space_.wait(lock, [this] { return in_flight_ < max_in_flight_ || error_; });
    if (error_) {
      lock.unlock();
      wait();
      return;
    }
    ++in_flight_;
    tasks_.push_back(std::move(fn));
    cv_task_.notify_one();
  }

  // Waits for every submitted task; rethrows the first exception a task raised.
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [this] { return in_flight_ == 0; });
    lock.unlock();
    rethrow();
  }

 private:
  void run_guarded(const std::function<void()>& fn) {
    try {
      fn();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() {
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      e = error_;
      error_ = nullptr;
    }
    if (e) std::rethrow_exception(e);
  }
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_task_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        fn = std::move(tasks_.front());
        tasks_.pop_front();
      }
      run_guarded(fn);
      {
        std::lock_guard<std::mutex> lock(mu_);
        --in_flight_;
      }
      cv_space_.notify_one();
      cv_done_.notify_all();
    }
  }

  const int max_in_flight_;
  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> tasks_;
  std::mutex mu_;
  std::condition_variable cv_task_, cv_space_, cv_done_;
  int in_flight_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace msce

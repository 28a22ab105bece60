#include "common/cpus.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace msce {

int usable_cpus() {
  unsigned n = std::thread::hardware_concurrency();  // the machine's, whatever this process may use
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    n = static_cast<unsigned>(CPU_COUNT(&set));  // taskset, cpusets (docker --cpuset-cpus)
  }
  // a cgroup v2 CPU quota (docker --cpus, Kubernetes limits): "max PERIOD" or "QUOTA PERIOD"
  if (FILE* f = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    char quota[32] = {0};
    long long period = 0;
    if (std::fscanf(f, "%31s %lld", quota, &period) == 2 && std::strcmp(quota, "max") != 0 && period > 0) {
      const long long q = std::atoll(quota);
      if (q > 0) n = std::min<unsigned>(n, static_cast<unsigned>(std::max(1LL, (q + period - 1) / period)));
    }
    std::fclose(f);
  }
#endif
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace msce

// How many CPUs this process may use, for default thread counts.
#pragma once

namespace msce {

// The affinity mask (taskset, cpusets such as docker --cpuset-cpus), capped by the cgroup v2 CPU
// quota in /sys/fs/cgroup/cpu.max (a container's own: docker --cpus, Kubernetes limits), rather
// than the machine's hardware threads; at least 1.
int usable_cpus();

}  // namespace msce

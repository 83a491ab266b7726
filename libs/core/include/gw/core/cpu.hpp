#pragma once
/// The build targets x86-64-v3 by default (simdjson's fast path needs AVX2): check at
/// start that this CPU has what the binary was compiled for, and say so if not.

#include <cstddef>
#include <string>

namespace gw {

/// Empty if the CPU runs this build; else the missing instruction sets, e.g. "avx2 bmi2".
std::string missing_cpu_features();

/// The CPUs this process may really use: the CPUs in its affinity mask, capped by the
/// CPU quota of its cgroup (v2 `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`),
/// rounded up. In a container with `cpu: 2` on a 64-core node this is 2, not 64 (what
/// std::thread::hardware_concurrency says), so the default thread counts fit the
/// container. At least 1.
std::size_t usable_cpus();

/// The same from given inputs (tests): `sys_cgroup` is the cgroup mount (normally
/// /sys/fs/cgroup), `proc_self_cgroup` the text of /proc/self/cgroup, `affinity` the
/// number of CPUs in the affinity mask.
std::size_t usable_cpus_from(const std::string& sys_cgroup, const std::string& proc_self_cgroup, std::size_t affinity);

}  // namespace gw

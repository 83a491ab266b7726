#include "gw/core/cpu.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

namespace gw {
namespace {

bool read_small_file(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

/// The quota as a number of CPUs, or 0 for none ("max", missing, unreadable).
double cgroup_v2_quota(const std::string& dir) {
  std::string text;
  if (!read_small_file(dir + "/cpu.max", text)) return -1;  // no such file: not this cgroup
  std::istringstream in(text);
  std::string quota;
  double period = 0;
  in >> quota >> period;
  if (quota == "max" || period <= 0) return 0;
  try {
    double q = std::stod(quota);
    return q > 0 ? q / period : 0;
  } catch (...) {
    return 0;
  }
}

double cgroup_v1_quota(const std::string& dir) {
  std::string q, p;
  if (!read_small_file(dir + "/cpu.cfs_quota_us", q) || !read_small_file(dir + "/cpu.cfs_period_us", p)) return -1;
  try {
    double quota = std::stod(q), period = std::stod(p);
    return quota > 0 && period > 0 ? quota / period : 0;
  } catch (...) {
    return 0;
  }
}

}  // namespace

std::size_t usable_cpus_from(const std::string& sys_cgroup, const std::string& proc_self_cgroup,
                             std::size_t affinity) {
  std::size_t n = std::max<std::size_t>(1, affinity);
  double quota = -1;
  // The process's own cgroup first (as /proc/self/cgroup names it), then the mount
  // root (a container sees its own cgroup there).
  std::istringstream lines(proc_self_cgroup);
  std::string line;
  while (std::getline(lines, line) && quota < 0) {
    // v2: "0::/path"; v1: "N:cpu,cpuacct:/path"
    auto a = line.find(':');
    auto b = a == std::string::npos ? std::string::npos : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (path == "/") path.clear();
    if (controllers.empty()) {
      quota = cgroup_v2_quota(sys_cgroup + path);
    } else if (("," + controllers + ",").find(",cpu,") != std::string::npos) {
      for (const char* mount : {"/cpu,cpuacct", "/cpu"}) {
        quota = cgroup_v1_quota(sys_cgroup + mount + path);
        if (quota < 0) quota = cgroup_v1_quota(sys_cgroup + mount);
        if (quota >= 0) break;
      }
    }
  }
  if (quota < 0) quota = cgroup_v2_quota(sys_cgroup);
  if (quota > 0) n = std::min(n, std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(quota - 1e-9))));
  return n;
}

std::size_t usable_cpus() {
  std::size_t affinity = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) affinity = static_cast<std::size_t>(CPU_COUNT(&set));
  if (affinity == 0) affinity = std::max(1u, std::thread::hardware_concurrency());
  std::string self;
  read_small_file("/proc/self/cgroup", self);
  return usable_cpus_from("/sys/fs/cgroup", self, affinity);
}

std::string missing_cpu_features() {
  std::string missing;
#if defined(__x86_64__)
  __builtin_cpu_init();
#if defined(__AVX2__)
  if (!__builtin_cpu_supports("avx2")) missing += "avx2 ";
#endif
#if defined(__BMI2__)
  if (!__builtin_cpu_supports("bmi2")) missing += "bmi2 ";
#endif
#if defined(__FMA__)
  if (!__builtin_cpu_supports("fma")) missing += "fma ";
#endif
#endif
  if (!missing.empty()) missing.pop_back();
  return missing;
}

}  // namespace gw

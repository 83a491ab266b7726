#include "gw/core/cpu.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace {

namespace fs = std::filesystem;

struct temp_root {
  fs::path dir;
  temp_root() {
    dir = fs::temp_directory_path() / ("gw-cpu-test-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir);
  }
  ~temp_root() { fs::remove_all(dir); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel) << text;
  }
  std::string str() const { return dir.string(); }
};

TEST(UsableCpus, CgroupV2QuotaCapsTheAffinity) {
  temp_root r;
  r.write("kubepods/pod1/cpu.max", "200000 100000\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "0::/kubepods/pod1\n", 64), 2u);
  // A fractional quota rounds up; never below one.
  r.write("kubepods/pod1/cpu.max", "150000 100000\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "0::/kubepods/pod1\n", 64), 2u);
  r.write("kubepods/pod1/cpu.max", "10000 100000\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "0::/kubepods/pod1\n", 64), 1u);
  // The quota never raises the count above the affinity mask.
  r.write("kubepods/pod1/cpu.max", "800000 100000\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "0::/kubepods/pod1\n", 4), 4u);
}

TEST(UsableCpus, NoQuotaMeansTheAffinity) {
  temp_root r;
  r.write("cpu.max", "max 100000\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "0::/\n", 8), 8u);
  EXPECT_EQ(gw::usable_cpus_from(r.str() + "/missing", "", 8), 8u);
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "garbage", 0), 1u);
}

TEST(UsableCpus, ContainerSeesItsOwnCgroupAtTheRoot) {
  // In a cgroup namespace /proc/self/cgroup says "0::/" and the quota is at the mount.
  temp_root r;
  r.write("cpu.max", "300000 100000\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "0::/\n", 16), 3u);
}

TEST(UsableCpus, CgroupV1Quota) {
  temp_root r;
  r.write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
  r.write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n", 32), 3u);
  r.write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  EXPECT_EQ(gw::usable_cpus_from(r.str(), "4:cpu,cpuacct:/docker/abc\n", 32), 32u);
}

TEST(UsableCpus, ThisMachine) {
  auto n = gw::usable_cpus();
  EXPECT_GE(n, 1u);
  EXPECT_LE(n, 4096u);
}

}  // namespace

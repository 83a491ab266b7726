#include "gw/core/cpu.hpp"

namespace gw {

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

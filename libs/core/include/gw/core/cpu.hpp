#pragma once
/// The build targets x86-64-v3 by default (simdjson's fast path needs AVX2): check at
/// start that this CPU has what the binary was compiled for, and say so if not.

#include <string>

namespace gw {

/// Empty if the CPU runs this build; else the missing instruction sets, e.g. "avx2 bmi2".
std::string missing_cpu_features();

}  // namespace gw

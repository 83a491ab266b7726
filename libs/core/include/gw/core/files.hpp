#pragma once
/// Small file helpers.

#include <string>
#include <string_view>

namespace gw {

/// Writes `content` to `path` through a temporary file and rename(2), so a reader
/// never sees a partial file. False on any error.
bool write_file_atomic(const std::string& path, std::string_view content);

}  // namespace gw

#pragma once
/// `llm-gateway healthcheck`: one HTTP/1.1 GET to a health route, for container health
/// checks (Docker HEALTHCHECK, ECS) in images that carry no curl.

#include <cstdint>
#include <string>

namespace gw::app {

/// GETs `path` from host:port within `timeout_ms` (connect, send and answer together).
/// Returns the HTTP status, or 0 with `why` set when no answer came.
int http_get_status(const std::string& host, std::uint16_t port, const std::string& path, int timeout_ms,
                    std::string& why);

}  // namespace gw::app

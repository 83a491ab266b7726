#pragma once
/// Listening sockets shared by several io threads on one port (SO_REUSEPORT): the
/// kernel spreads new connections over them.

#include <cstdint>
#include <string>

#include "gw/http/asio.hpp"

namespace gw::http {

/// Opens `a` on host:port with SO_REUSEADDR and SO_REUSEPORT, binds and listens.
/// Returns the bound port (useful with port 0). Throws std::runtime_error naming
/// host:port and the reason.
std::uint16_t listen_reuseport(acceptor_type& a, const std::string& host, std::uint16_t port);

}  // namespace gw::http

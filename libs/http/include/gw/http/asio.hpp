#pragma once
/// The one include for Asio and Beast, with the namespace aliases the project uses.
/// On Boost 1.74 + GCC 12 in C++20, <utility> must come before any Asio header.

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace gw::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
// Sockets bound to the concrete io_context executor: the type-erased default
// (any_io_executor) costs a copy and a destroy per operation on the request path.
using executor_type = asio::io_context::executor_type;
using socket_type = tcp::socket::rebind_executor<executor_type>::other;
using acceptor_type = tcp::acceptor::rebind_executor<executor_type>::other;
using resolver_type = tcp::resolver::rebind_executor<executor_type>::other;
}  // namespace gw::http

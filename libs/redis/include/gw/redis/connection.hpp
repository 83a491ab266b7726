#pragma once
/// One Redis connection driven by an io thread's io_context: hiredis' async API (0.14)
/// with its socket watched by an Asio descriptor, commands pipelined (replies come back
/// in order), one timer for every command's deadline, AUTH and SELECT on each new
/// connection, reconnection with exponential backoff for ever, TLS through an in-process
/// bridge (hiredis 0.14 has none; src/tls_bridge.hpp). A command not answered in time,
/// an error on the connection or a failed handshake drops the connection: every command
/// still waiting gets std::nullopt, once, and it reconnects until stop().
///
/// io-thread owned: one per io thread, every call (but up() and status()) and every
/// callback on the thread running its io_context.

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)
#include <boost/asio/io_context.hpp>

#include "gw/redis/command.hpp"
#include "gw/redis/reply.hpp"
#include "gw/redis/settings.hpp"

namespace gw::redis {

class connection {
 public:
  /// The reply, or std::nullopt when none came: timeout, connection lost, stop(). An error
  /// reply is a reply (is_error()).
  using callback = std::function<void(std::optional<reply>)>;
  /// A handshake step's check: whether the (non-error) reply is what the step needs.
  using setup_check = std::function<bool(const reply&)>;

  connection(boost::asio::io_context& io, settings s);
  /// Callbacks of commands still waiting are dropped (destroyed, never called).
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Connects (asynchronously; never blocks) and keeps reconnecting until stop().
  void start();
  /// Closes the connection; callbacks still waiting get std::nullopt, now.
  void stop();
  /// Drops the current connection as failed (`why` is logged) and reconnects with
  /// backoff; callbacks still waiting get std::nullopt, now.
  void reset(const std::string& why);

  /// Connected and handshake done (any thread).
  bool up() const noexcept;
  connection_status status() const;

  /// Pipelines `c` (reusable as soon as this returns: hiredis copies it). true: `cb`
  /// runs exactly once, later, on the io thread, with the reply or std::nullopt; false:
  /// nothing was sent (no connection, or hiredis refused it), `cb` is dropped uncalled.
  bool send(command& c, callback cb);
  /// Like send, but `cb` always runs: when nothing was sent, with std::nullopt, posted.
  void call(command& c, callback cb);
  void call(std::initializer_list<std::string_view> argv, callback cb);

  /// Hooks, set before start(). on_connect runs on each new connection once AUTH and
  /// SELECT are queued: the steps it adds with send_setup() are part of the handshake
  /// (pipelined, under connect_timeout), and the connection is up once every step is
  /// answered and its check passed (else it is dropped: "<what> failed[: error]").
  /// on_up runs each time it comes up; on_down each time a connection is given up
  /// (after the callbacks still waiting got std::nullopt), or an attempt failed.
  void on_connect(std::function<void()> f);
  void on_up(std::function<void()> f);
  void on_down(std::function<void()> f);
  /// Only inside on_connect. false: not sent (the attempt then fails).
  bool send_setup(command& c, std::string what, setup_check check);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::redis

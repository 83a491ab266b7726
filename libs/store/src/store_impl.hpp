#pragma once
/// pg_store's private state, shared by the files that implement its methods: the
/// connection (opened lazily, dropped after a failure and re-opened by the next call),
/// the LISTEN receiver, and run(), which maps every database failure to store_error.

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gw/store/pg_store.hpp"

namespace gw::store {

/// The channel pg_store::notify/listen use.
inline constexpr const char* changes_channel = "llm_gateway_changes";

/// Collects NOTIFY payloads on changes_channel; pqxx calls it from get_notifs().
class change_receiver final : public pqxx::notification_receiver {
 public:
  change_receiver(pqxx::connection_base& c, std::vector<std::string>& sink)
      : pqxx::notification_receiver(c, changes_channel), sink_(sink) {}
  void operator()(const std::string& payload, int) override { sink_.push_back(payload); }

 private:
  std::vector<std::string>& sink_;
};

struct pg_store::impl {
  explicit impl(std::string database_url) : url(std::move(database_url)) {}
  ~impl() { disconnect(); }

  /// The open connection, connecting first if there is none (or it broke; a listening
  /// store throws store_error instead, once, so that its owner re-syncs).
  pqxx::connection& connection();
  /// Drops the connection (and the receiver registered on it).
  void disconnect() noexcept;
  /// Whether the open connection turns out closed by the server while it was idle.
  bool lost_while_idle();

  /// Runs `body(connection)` and returns its result. Deadlocks and serialization
  /// failures retry the body (it must open its own transaction); every other
  /// failure throws store_error("<op>: ...") and, when the connection is unusable,
  /// drops it so the next call reconnects.
  template <class Body>
  auto run(std::string_view op, Body&& body) -> decltype(body(std::declval<pqxx::connection&>()));

  /// Throws store_error for `op` from the exception being handled (in a catch block),
  /// dropping the connection if it is unusable.
  [[noreturn]] void fail(std::string_view op, const std::exception& e, bool connection_lost);

  std::string url;
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<change_receiver> receiver;  // destroyed before conn
  bool listening = false;                     // re-LISTEN after a reconnect
  std::vector<std::string> notifications;
  std::chrono::steady_clock::time_point next_prune{};  // apply(): old batch ids, leases
};

template <class Body>
auto pg_store::impl::run(std::string_view op, Body&& body) -> decltype(body(std::declval<pqxx::connection&>())) {
  constexpr int attempts = 3;
  bool reconnected = false;
  for (int attempt = 1;; ++attempt) {
    // A connection the server ended while it sat idle is not always visible before the
    // first statement on it (lost_while_idle() can read the server's goodbye before its
    // EOF arrives). Such a failure happens before anything was committed (a lost commit
    // is in_doubt_error, never retried), so the body runs once more on a new connection.
    // A listening store does not: it must learn it may have missed notifications.
    const bool reused = conn && conn->is_open();
    try {
      return body(connection());
    } catch (const pqxx::deadlock_detected& e) {
      if (attempt == attempts) fail(op, e, false);
    } catch (const pqxx::serialization_failure& e) {
      if (attempt == attempts) fail(op, e, false);
    } catch (const pqxx::in_doubt_error& e) {
      fail(op, e, true);
    } catch (const pqxx::broken_connection& e) {
      if (!reused || reconnected || listening || attempt == attempts) fail(op, e, true);
      disconnect();
      reconnected = true;
    } catch (const store_error& e) {
      throw store_error(std::string(op) + ": " + e.what());  // connect or decode failures
    } catch (const std::exception& e) {
      fail(op, e, conn && !conn->is_open());
    }
  }
}

}  // namespace gw::store

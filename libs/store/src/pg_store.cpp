/// pg_store: the connection's life cycle, ping and change notifications. Records,
/// budgets and spend are in records.cpp, budgets.cpp and spend.cpp.

#include "gw/store/pg_store.hpp"

#include <poll.h>

#include "store_impl.hpp"

namespace gw::store {

// ---- pg_store::impl ----

pqxx::connection& pg_store::impl::connection() {
  if (conn && conn->is_open()) {
    if (!lost_while_idle()) return *conn;
    disconnect();
    // A listener must learn that it may have missed notifications; anyone else just
    // gets a new connection.
    if (listening) throw store_error("the connection was lost (notifications may have been missed)");
  }
  disconnect();
  try {
    conn = std::make_unique<pqxx::connection>(url);
    // Timestamps are read and written as UTC text (codec.hpp). set_variable (rather
    // than a plain SET) is restored by libpqxx if it ever re-opens the session itself.
    conn->set_variable("TimeZone", "'UTC'");
    conn->set_variable("DateStyle", "'ISO'");
    if (listening) receiver = std::make_unique<change_receiver>(*conn, notifications);
  } catch (const std::exception& e) {
    disconnect();
    throw store_error(std::string("connect: ") + e.what());
  }
  return *conn;
}

bool pg_store::impl::lost_while_idle() {
  // Between calls the server sends nothing unprompted but notifications, notices and,
  // when it ends the session (restart, idle timeout), an error and EOF. Reading those
  // now finds a dead connection before a statement runs on it: a failed statement is an
  // error for the caller (and libpqxx 6.4 leaks its result).
  pollfd p{conn->sock(), POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  try {
    conn->get_notifs();  // queues notifications for take_notifications()
  } catch (const std::exception&) {
    return true;
  }
  return !conn->is_open();
}

void pg_store::impl::disconnect() noexcept {
  // Close the session before the receiver goes: a receiver removed from an open
  // connection sends UNLISTEN, and libpqxx 6.4 leaks that statement's result when the
  // connection is broken. Closing the session unlistens anyway.
  if (conn) conn->disconnect();
  receiver.reset();
  conn.reset();
}

void pg_store::impl::fail(std::string_view op, const std::exception& e, bool connection_lost) {
  if (connection_lost) disconnect();
  throw store_error(std::string(op) + ": " + e.what());
}

// ---- pg_store ----

pg_store::pg_store(std::string database_url) : impl_(std::make_unique<impl>(std::move(database_url))) {}

pg_store::~pg_store() = default;

bool pg_store::connected() const noexcept { return impl_->conn && impl_->conn->is_open(); }

void pg_store::ping() {
  impl_->run("ping", [](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec("SELECT 1");
  });
}

void pg_store::notify(const std::string& payload) {
  impl_->run("notify", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("SELECT pg_notify($1, $2)", changes_channel, payload);
    tx.commit();
  });
}

void pg_store::listen() {
  impl_->run("listen", [&](pqxx::connection& c) {
    // The receiver issues LISTEN when it registers.
    if (!impl_->receiver) impl_->receiver = std::make_unique<change_receiver>(c, impl_->notifications);
    impl_->listening = true;
  });
}

int pg_store::socket() const noexcept { return impl_->conn ? impl_->conn->sock() : -1; }

std::vector<std::string> pg_store::take_notifications() {
  // A lost listening connection throws here once (see impl::connection()); the next
  // call connects and listens again.
  if (impl_->listening) impl_->run("take_notifications", [](pqxx::connection& c) { return c.get_notifs(); });
  return std::exchange(impl_->notifications, {});
}

}  // namespace gw::store

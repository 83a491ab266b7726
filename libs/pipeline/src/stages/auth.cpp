// The auth stage: the method (model routes take POST), then who is calling: the master
// key (compared in constant time), a virtual key (its SHA-256 looked up in this io
// thread's table; an unknown one once in the database, then again here), or nobody
// when no master key is configured.

#include "gw/core/strings.hpp"
#include "gw/keys/admin_json.hpp"
#include "gw/pipeline/stages.hpp"

namespace gw::pipeline {
namespace {

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string_view strip_bearer(std::string_view v) {
  v = trim(v);
  if (v.size() >= 7 && iequals(v.substr(0, 7), "bearer ")) return trim(v.substr(7));
  return v;
}

std::string expiry_message(keys::sys_time expires, keys::sys_time now) {
  return "Authentication Error - Expired Key. Key Expiry time " + keys::iso_time(expires) + " and current time " +
         keys::iso_time(now);
}

}  // namespace

std::string_view presented_key(const http::request& req) noexcept {
  if (auto v = req["x-litellm-api-key"]; !v.empty()) return strip_bearer(sv(v));
  if (auto v = req[http::bhttp::field::authorization]; !v.empty()) {
    auto t = trim(sv(v));
    if (t.size() >= 7 && iequals(t.substr(0, 7), "bearer ")) return trim(t.substr(7));
    // Anything else (Basic, a bare key) is not a key, as in LiteLLM.
  }
  if (auto v = req["api-key"]; !v.empty()) return trim(sv(v));
  if (auto v = req["x-api-key"]; !v.empty()) return trim(sv(v));
  return {};
}

auth_outcome authenticate(const services& svc, http::session& s, bool& master, accounts::auth_entry_ptr& entry,
                          error& refusal, std::function<void()> retry) {
  master = false;
  entry.reset();
  auto key = presented_key(s.req());
  auto refuse = [&](std::string msg) {
    refusal = error{errc::auth_error, std::move(msg), ""};
    return auth_outcome::refused;
  };
  if (!svc.master_key.empty() && !key.empty() && secure_equals(key, svc.master_key)) {
    master = true;
    return auth_outcome::ok;
  }
  if (key.empty()) {
    if (svc.master_key.empty()) {
      master = true;
      return auth_outcome::ok;
    }
    return refuse("Authentication Error: no API key passed in. Send it as 'Authorization: Bearer <key>'.");
  }
  if (!svc.accounts) {
    if (svc.master_key.empty()) {
      master = true;
      return auth_outcome::ok;
    }
    return refuse("Authentication Error: invalid API key.");
  }
  std::size_t shard = s.thread().index();
  auto& io = svc.accounts->io(shard);
  // The key's SHA-256, once per connection (a keep-alive client repeats its key).
  auto& memo = s.memo();
  if (memo.presented.empty() || !secure_equals(key, memo.presented)) {
    memo.wipe();
    memo.derived = keys::hash_key(key);
    memo.presented.assign(key);
  }
  const std::string& token = memo.derived;
  switch (io.find(token, entry)) {
    case accounts::io_accounts::lookup_status::found:
      if (entry->expires) {
        auto now = std::chrono::system_clock::now();
        if (*entry->expires <= now) {
          auto msg = expiry_message(*entry->expires, now);
          entry.reset();
          return refuse(std::move(msg));
        }
      }
      if (entry->blocked) {
        auto msg = "Authentication Error, " + entry->blocked_reason;
        entry.reset();
        return refuse(std::move(msg));
      }
      return auth_outcome::ok;
    case accounts::io_accounts::lookup_status::unknown:
      entry.reset();
      if (svc.master_key.empty()) {
        master = true;
        return auth_outcome::ok;
      }
      return refuse("Authentication Error: invalid API key.");
    case accounts::io_accounts::lookup_status::ask:
      io.ask(token, [&ioc = s.io(), token = std::string(token), &io, retry = std::move(retry)](accounts::auth_entry_ptr e) {
        boost::asio::post(ioc, [token, e = std::move(e), &io, retry] {
          if (e)
            io.upsert(e);
          else
            io.remember_miss(token);
          retry();  // found or negatively cached now: no second look-up
        });
      });
      return auth_outcome::pending;
  }
  return refuse("Authentication Error: invalid API key.");
}

flow auth_stage::on_request(request_context& ctx) const {
  auto& req = ctx.req();
  if (req.method() != http::bhttp::verb::post) {
    std::string path(sv(req.target()).substr(0, sv(req.target()).find('?')));
    ctx.fail(error{errc::method_not_allowed,
                   "Method " + std::string(sv(req.method_string())) + " is not allowed on " + path + "; use POST.", ""},
             "allow: POST\r\n");
    return flow::answered;
  }
  // An internal call acts with the key it was given (entry set by the caller) or as
  // the master key.
  if (ctx.sink.internal()) {
    ctx.master = !ctx.entry;
    return flow::next;
  }
  error refusal;
  switch (authenticate(ctx.svc, *ctx.sink.session(), ctx.master, ctx.entry, refusal,
                       [c = ctx.shared_from_this()] { c->rerun(); })) {
    case auth_outcome::ok:
      return flow::next;
    case auth_outcome::pending:
      return flow::pending;
    case auth_outcome::refused:
      break;
  }
  ctx.fail(refusal);
  return flow::answered;
}

}  // namespace gw::pipeline

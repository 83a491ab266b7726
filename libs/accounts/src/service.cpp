#include <poll.h>
#include <unistd.h>

#include <caf/scoped_actor.hpp>

#include <random>
#include <thread>

#include "gw/core/log.hpp"
#include "internal.hpp"

namespace gw::accounts {

std::unique_ptr<backend> open_backend(const settings& s, const std::shared_ptr<memory_db>& mem) {
  if (!s.database_url.empty()) return make_pg_backend(s.database_url);
  return make_memory_backend(mem);
}

/// LISTEN/NOTIFY and the periodic resync, on a thread of its own (it blocks in poll).
struct service::listener {
  service& svc;
  std::atomic<bool> stop{false};
  std::thread th;

  explicit listener(service& s) : svc(s) { th = std::thread([this] { run(); }); }
  ~listener() {
    stop = true;
    if (th.joinable()) th.join();
  }

  void forward(store::pg_store& db, const std::string& payload) {
    auto colon = payload.find(':');
    if (colon == std::string::npos) return;
    auto kind = payload.substr(0, colon);
    auto id = payload.substr(colon + 1);
    record_change c;
    c.id = id;
    if (kind == "key") {
      c.kind = record_change::what::key;
      c.key = db.load_key(id);
    } else if (kind == "user") {
      c.kind = record_change::what::user;
      c.user = db.load_user(id);
    } else if (kind == "team") {
      c.kind = record_change::what::team;
      c.team = db.load_team(id);
    } else {
      return;
    }
    caf::anon_send(svc.key_service_actor(), changed_atom::value, std::move(c));
  }

  void run() {
    using clock = std::chrono::steady_clock;
    store::pg_store db(svc.settings_.database_url);
    bool listening = false;
    auto next_resync = clock::now() + svc.settings_.resync_interval;
    auto next_maintenance = clock::now() + std::chrono::minutes(10);
    while (!stop) {
      try {
        if (!listening) {
          db.listen();
          listening = true;
          // Whatever changed while we were not listening: resync now.
          caf::anon_send(svc.key_service_actor(), all_atom::value, db.load_all());
          next_resync = clock::now() + svc.settings_.resync_interval;
          svc.health_.db_ok = true;
        }
        pollfd p{db.socket(), POLLIN, 0};
        ::poll(&p, 1, 200);
        for (auto& payload : db.take_notifications()) forward(db, payload);
        auto now = clock::now();
        if (now >= next_resync) {
          caf::anon_send(svc.key_service_actor(), all_atom::value, db.load_all());
          next_resync = now + svc.settings_.resync_interval;
        }
        if (now >= next_maintenance) {
          int dropped = db.maintain_partitions(3, svc.settings_.spend_log_retention_days);
          if (dropped > 0) log::info("spend logs: dropped " + std::to_string(dropped) + " partitions past retention");
          next_maintenance = now + std::chrono::hours(1);
        }
      } catch (const std::exception& e) {
        if (listening || svc.health_.db_ok) log::warn(std::string("database listener: ") + e.what() + "; retrying");
        listening = false;
        svc.health_.db_ok = false;
        for (int i = 0; i < 10 && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
};

namespace {
std::string make_node_id() {
  char host[128] = {0};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  return std::string(host) + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000);
}
}  // namespace

service::service(caf::actor_system& sys, settings s, std::size_t io_threads, io_poster post)
    : sys_(sys), settings_(std::move(s)), post_(std::move(post)) {
  if (settings_.node_id.empty()) settings_.node_id = make_node_id();
  if (settings_.spool_path.empty()) settings_.spool_path = "/tmp/llm-gateway-spend-spool.jsonl";
  bool pg = !settings_.database_url.empty();
  health_.persistent = pg;
  if (pg) {
    std::vector<std::string> log_lines;
    try {
      int v = store::migrate(settings_.database_url, log_lines);
      for (auto& l : log_lines) log::info("migrate: " + l);
      log::info("database schema at version " + std::to_string(v));
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("database: ") + e.what());
    }
  } else {
    memory_ = make_memory_db();
  }
  for (std::size_t i = 0; i < io_threads; ++i) io_.push_back(std::make_unique<io_accounts>(*this, i));
  all_records initial;
  try {
    initial = open_backend(settings_, memory_)->load_all();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("database: cannot load keys: ") + e.what());
  }
  log::info("accounts: " + std::to_string(initial.keys.size()) + " keys, " + std::to_string(initial.users.size()) +
            " users, " + std::to_string(initial.teams.size()) + " teams loaded" +
            (pg ? "" : " (in memory: keys made through the API are lost at restart)"));
  key_service_ = spawn_key_service(sys_, this);
  caf::anon_send(key_service_, all_atom::value, std::move(initial));
  ledger_db_ = spawn_ledger_db(sys_, open_backend(settings_, memory_), settings_);
  std::string err;
  auto spooled = read_spool(settings_.spool_path, err);
  if (!err.empty()) log::warn(err);
  if (!spooled.empty())
    log::info("spend spool: " + std::to_string(spooled.size()) + " batches from an earlier run will be written");
  ledger_ = spawn_ledger(sys_, this, ledger_db_, std::move(spooled));
  for (std::size_t i = 0; i < std::max<std::size_t>(1, settings_.db_pool_size); ++i)
    admin_workers_.push_back(spawn_admin_worker(sys_, this, open_backend(settings_, memory_)));
  if (pg) listener_ = std::make_unique<listener>(*this);
}

service::~service() { stop_actors(); }

void service::stop_actors() {
  if (stopped_) return;
  stopped_ = true;
  listener_.reset();
  // The key service uses admin_workers_ (unknown-key look-ups): let it finish first.
  if (key_service_) {
    caf::anon_send_exit(key_service_, caf::exit_reason::user_shutdown);
    caf::scoped_actor self{sys_};
    self->wait_for(key_service_);
  }
  for (auto* a : {&key_service_, &ledger_, &ledger_db_}) {
    caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
    *a = caf::actor{};  // a detached actor's thread ends only when no handle is left
  }
  for (auto& a : admin_workers_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  admin_workers_.clear();
}

void service::admin(std::string route, std::string body, std::string query, admin_callback cb) {
  if (admin_workers_.empty()) return cb(503, to_openai_json(error{errc::service_unavailable, "shutting down", ""}));
  auto& w = admin_workers_[next_admin_++ % admin_workers_.size()];
  caf::anon_send(w, admin_atom::value, admin_request{std::move(route), std::move(body), std::move(query), std::move(cb)});
}

void service::ensure_key(const std::string& plain, const std::string& alias) {
  auto b = open_backend(settings_, memory_);
  auto token = keys::hash_key(plain);
  if (b->load_key(token)) return;
  keys::key_record k;
  k.token = token;
  k.key_name = keys::abbreviate_key(plain);
  k.key_alias = alias;
  k.created_at = k.updated_at = std::chrono::system_clock::now();
  k.created_by = "environment";
  if (!b->insert_key(k)) {
    k.key_alias.clear();  // the alias is taken by another key: keep the key anyway
    if (!b->insert_key(k)) return;
  }
  record_change c;
  c.kind = record_change::what::key;
  c.id = token;
  c.key = b->load_key(token);
  caf::anon_send(key_service_, changed_atom::value, std::move(c));
  try {
    b->notify("key:" + token);
  } catch (const std::exception&) {
  }
  log::info("default virtual key " + k.key_name + " created from the environment");
}

void service::shutdown(std::chrono::milliseconds timeout) {
  if (shut_) return;
  shut_ = true;
  caf::scoped_actor self{sys_};
  bool written = false;
  self->request(ledger_, timeout, final_atom::value)
      .receive([&](bool ok) { written = ok; },
               [&](caf::error&) {
                 // Timed out: make sure what is left is on disk.
                 self->request(ledger_, std::chrono::seconds(5), release_atom::value)
                     .receive([](bool) {}, [](caf::error&) {});
               });
  if (written) {
    self->request(ledger_db_, std::chrono::seconds(5), release_atom::value).receive([](bool) {}, [](caf::error&) {});
  } else {
    log::warn("shutdown: spend not written to the database was kept in " + settings_.spool_path);
  }
  listener_.reset();
}

}  // namespace gw::accounts

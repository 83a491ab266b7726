#pragma once
/// Virtual keys, budgets and spend at run time.
///
/// - Each io thread has an `io_accounts`: its own copy of the auth table (token hash ->
///   auth_entry) kept current by the key service, a bounded negative cache, and a buffer
///   of finished requests' charges sent to the ledger once per tick. Authentication
///   never leaves the io thread and never waits for the database.
/// - The key service actor owns the records (keys, users, teams) and derives the
///   auth entries; changes come from the admin API, from other nodes (LISTEN/NOTIFY)
///   and from a periodic resync.
/// - The ledger actor keeps the budgets: it leases slices of each budget from the
///   backend and hands each io thread a slice of the node's lease; the io thread admits
///   and reserves from its own slice without leaving the thread, and asks the ledger for
///   more (in the background, or waiting only when it has nothing left). The ledger
///   writes spend in batches (spooling to a local file when the database is away).
/// - Blocking database work runs on detached actors and one listener thread.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gw/accounts/backend.hpp"
#include "gw/core/error.hpp"
#include "gw/limits/limits.hpp"

namespace gw::accounts {

/// What the request path needs to know about a virtual key (with its user and team).
struct auth_entry {
  std::string token;
  std::string key_alias, key_name;
  std::string user_id, team_id;
  std::vector<std::string> models;       ///< key's models; empty = all
  std::vector<std::string> team_models;  ///< team's models; empty = all
  std::optional<keys::sys_time> expires;
  bool blocked = false;
  std::string blocked_reason;
  /// Budgeted entities (those with a max_budget): key, user, team, and key_model for
  /// each model with a model_max_budget.
  std::vector<entity_ref> budgets;
  /// Names for refusal messages, parallel to `budgets`.
  std::vector<std::string> budget_names;
  /// Soft budgets, parallel to `budgets` (an entity with only a soft budget is listed
  /// too: its spend is followed, never refused).
  std::vector<std::optional<keys::money>> soft_budgets;
  std::vector<bool> hard;  ///< parallel: has a max_budget

  /// Rate-limit scopes (key, user, team: those with rpm_limit, tpm_limit or
  /// max_parallel_requests), for a request to any model group; empty: none.
  std::vector<limits::scope> limit_scopes;
  /// The same plus the key x model scope, for each model group with a model_rpm_limit or
  /// model_tpm_limit (the model scope is last).
  std::vector<std::pair<std::string, std::vector<limits::scope>>> model_limit_scopes;
  /// The key x model scope alone, per model group (parallel to model_limit_scopes).
  std::vector<std::pair<std::string, std::vector<limits::scope>>> model_only_scopes;
  /// The scopes a request to `model_group` counts against (null: none).
  const std::vector<limits::scope>* scopes_for(std::string_view model_group) const noexcept;
  /// The key x model scope of `model_group` alone (null: none): what a fallback to that
  /// group must acquire in addition.
  const std::vector<limits::scope>* model_scope_for(std::string_view model_group) const noexcept;

  /// Entities this request's spend accrues to (key, user, team, key_model for the group).
  std::vector<entity_ref> spend_entities(std::string_view model_group) const;
  /// True if some budget applies to `model_group` (a reservation is needed).
  bool budgeted_for(std::string_view model_group) const noexcept;

  /// True if `model_group` is allowed by the key and its team ("*" and "all-proxy-models"
  /// allow everything; an entry ending in "/*" allows that prefix).
  bool allows(std::string_view model_group) const noexcept;
};
using auth_entry_ptr = std::shared_ptr<const auth_entry>;

/// One finished request, as the io thread reports it.
struct charge {
  keys::money cost = 0;
  std::vector<entity_ref> entities;  ///< everything the spend accrues to
  spend_log_row log;
  /// Set when the key (or its user or team) has a soft budget: the ledger follows it.
  auth_entry_ptr soft;
};

struct entity_hash {
  std::size_t operator()(const entity_ref& e) const noexcept {
    auto h = std::hash<std::string>{}(e.id);
    h ^= std::hash<std::string>{}(e.model) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h ^ static_cast<std::size_t>(e.kind);
  }
};

/// What one request reserved from its io thread's slices of its budgets (a hard budget
/// each); settle() gives it back and takes the actual cost instead.
struct budget_hold {
  struct part {
    entity_ref entity;
    keys::money amount = 0;
  };
  std::vector<part> parts;
  bool empty() const noexcept { return parts.empty(); }
};

/// How budgets admit a request.
enum class budget_mode {
  /// Admitted while something of every budget is left after what is in flight (each
  /// request in flight counts at its estimate): LiteLLM's rule, exact across the
  /// cluster, overshooting by at most what is in flight when a budget runs out.
  spend,
  /// A hard ceiling: the request's worst case must fit in what is left.
  strict,
};

/// The most one request reserves (about $144,000): a request whose estimate saturates
/// (max_tokens near 2^63) reserves this, so sums over requests in flight and io threads
/// stay within int64.
inline constexpr keys::money k_max_reservation = std::numeric_limits<keys::money>::max() / 64;

enum class admission { admitted, refused, waiting };

/// What the ledger tells an io thread about one of its budget slices (posted to it).
struct slice_grant {
  entity_ref entity;
  keys::money granted = 0;  ///< added to the thread's slice
  bool unlimited = false;   ///< the budget has no cap (any more)
  bool exhausted = false;   ///< nothing more to give for now
  bool failed = false;      ///< the database could not be asked
  std::chrono::steady_clock::time_point valid_until{};  ///< the node's lease is good until then
  /// What this thread's requests have reserved and spent that the ledger has not been
  /// told yet: added to by the thread, taken from by the ledger as reports come, and read
  /// by the ledger when it hands out more (so a thread's overspending is seen at once).
  std::shared_ptr<std::atomic<keys::money>> used;
  // For refusal messages.
  std::string name;
  keys::money max = 0, spent = 0, in_flight_elsewhere = 0;
  std::optional<keys::sys_time> reset_at;
};

/// Admin response, delivered on an actor thread.
using admin_callback = std::function<void(int status, std::string body)>;

/// Settings (from the config's general_settings / gateway_settings).
struct settings {
  std::string database_url;            ///< empty: in-memory
  std::string node_id;                 ///< unique per process
  std::chrono::milliseconds flush_interval{1000};
  std::chrono::seconds lease_ttl{60};
  double slice_fraction = 0.05;        ///< a lease slice: this share of max_budget ...
  keys::money min_slice = keys::pico_per_dollar / 1'000'000;  ///< ... but at least this ($0.000001)
  std::chrono::seconds resync_interval{30};
  std::chrono::seconds negative_ttl{5};
  std::size_t negative_cache_size = 10'000;
  std::string spool_path;              ///< empty: <tmp>/llm-gateway-spend-<node>.jsonl
  int spend_log_retention_days = 30;   ///< 0: keep
  std::size_t db_pool_size = 2;        ///< admin workers
  std::int64_t default_max_output_tokens = 4096;  ///< worst case when max_tokens is absent
  budget_mode mode = budget_mode::spend;          ///< gateway_settings.budget_enforcement
};

/// Health of the backend, for readiness and metrics.
struct health {
  std::atomic<bool> persistent{false};
  std::atomic<bool> db_ok{true};
  std::atomic<std::int64_t> spooled_batches{0};
  std::atomic<std::int64_t> soft_budget_crossings{0};
  std::atomic<std::int64_t> budget_refusals{0};
  std::atomic<std::int64_t> flushed_batches{0};
  std::atomic<std::int64_t> flush_failures{0};
};

class service;

/// Per-io-thread state. io-thread owned: only its thread calls these.
class io_accounts {
 public:
  io_accounts(service& s, std::size_t index);

  enum class lookup_status { found, unknown, ask };
  /// Finds the entry for a key's token (keys::hash_key of the plain key). `ask`: not
  /// known here and not negatively cached: call ask() (which may consult the database).
  lookup_status find(std::string_view token, auth_entry_ptr& out);
  /// Asks the key service about an unknown token; `cb` runs on an actor thread with the
  /// entry or null (and the miss is then cached).
  void ask(const std::string& token, std::function<void(auth_entry_ptr)> cb);
  void remember_miss(const std::string& token);

  void add_charge(charge c) { charges_.push_back(std::move(c)); }
  /// Sends the buffered charges (and budget slices given back) to the ledger: each tick,
  /// and at drain with `final` (every slice goes back).
  void flush(bool final = false);

  /// Budget admission of a request by `e` for `model_group` from this thread's slices of
  /// the node's leases, without leaving the thread: `amount` is reserved against each
  /// hard budget when each has room (strict: for the whole amount; spend: for anything).
  /// `waiting`: a slice is being refilled by the ledger; `wake` runs on this thread when
  /// it is (admit again then). `refused`: `refusal` says why (429 budget exceeded, 503
  /// when the database cannot be asked).
  admission admit(const auth_entry& e, std::string_view model_group, keys::money amount, budget_mode mode,
                  budget_hold& hold, error& refusal, std::function<void()> wake);
  /// The request is over: what `hold` reserved goes back to the slices, `cost` comes off
  /// them (the charge itself goes to the ledger with add_charge()). Empties `hold`.
  void settle(budget_hold& hold, keys::money cost);

  // Called (posted) by the ledger.
  void on_grant(const slice_grant& g);
  /// Every slice's lease was renewed (a spend batch was applied).
  void extend(std::chrono::steady_clock::time_point valid_until);
  /// The entity's budget changed: the slice goes back, the next request asks again.
  void invalidate(const entity_ref& e);

  // Called (posted) by the key service.
  void upsert(auth_entry_ptr e);
  void erase(const std::string& token);
  void replace(std::shared_ptr<const std::vector<auth_entry_ptr>> all);

 private:
  service& svc_;
  std::size_t index_;
  struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  /// This thread's own handle on each entry: `local()` gives it a control block of this
  /// thread's, so the reference counting of every request stays on this core instead of
  /// bouncing one shared counter between the io threads.
  static auth_entry_ptr local(const auth_entry_ptr& e);
  std::unordered_map<std::string, auth_entry_ptr, text_hash, std::equal_to<>> table_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point, text_hash, std::equal_to<>> misses_;
  std::deque<std::string> miss_order_;
  std::vector<charge> charges_;

  /// This thread's share of one budget: granted by the ledger, minus what requests in
  /// flight reserved and what finished ones cost (negative when they cost more).
  struct slice {
    keys::money avail = 0;
    keys::money reserved = 0;  ///< by requests in flight
    bool known = false;        ///< the ledger has answered (a grant, or unlimited)
    bool unlimited = false;
    bool asking = false;       ///< a request for more is out
    std::chrono::steady_clock::time_point valid_until{}, exhausted_until{}, failed_until{}, last_used{};
    slice_grant view;          ///< the last answer, for refusal messages (and `used`)
    std::vector<std::function<void()>> waiting;
    keys::money consumed = 0, returned = 0;  ///< not yet reported to the ledger
  };
  void ask(const entity_ref& e, slice& s, const std::string& name, keys::money need);
  std::unordered_map<entity_ref, slice, entity_hash> slices_;
  std::chrono::steady_clock::time_point next_idle_check_{};
};

/// Posts a job to io thread `i`'s executor.
using io_poster = std::function<void(std::size_t i, std::function<void()> job)>;

class service {
 public:
  /// Opens the backend (migrating a database first) and loads every record; throws
  /// std::runtime_error with a clear message if the database cannot be used.
  service(caf::actor_system& sys, settings s, std::size_t io_threads, io_poster post);
  ~service();

  io_accounts& io(std::size_t i) { return *io_[i]; }
  const settings& config() const noexcept { return settings_; }
  health& state() noexcept { return health_; }
  bool persistent() const noexcept { return health_.persistent.load(); }

  /// Runs an admin route ("/key/generate", ...). `query` is the URL query string.
  void admin(std::string route, std::string body, std::string query, admin_callback cb);

  /// Creates a key from the environment if it does not exist (startWithDefaults).
  void ensure_key(const std::string& plain, const std::string& alias);

  /// Final flush on shutdown (after the io threads flushed): writes what is left,
  /// spools what cannot be written, returns leases. Blocks up to `timeout`.
  void shutdown(std::chrono::milliseconds timeout);
  /// Sends the actors their exit messages and stops the listener (the actor system
  /// then joins them). io_accounts stay usable (charges are then dropped).
  void stop_actors();

  // internal
  caf::actor_system& system() noexcept { return sys_; }
  caf::actor key_service_actor() const { return key_service_; }
  caf::actor ledger_actor() const { return ledger_; }
  caf::actor admin_worker_for_lookup() { return admin_workers_[next_admin_++ % admin_workers_.size()]; }
  void post(std::size_t i, std::function<void()> job) { post_(i, std::move(job)); }
  std::size_t io_count() const noexcept { return io_.size(); }

 private:
  void start_listener();

  caf::actor_system& sys_;
  settings settings_;
  io_poster post_;
  health health_;
  std::shared_ptr<memory_db> memory_;
  std::vector<std::unique_ptr<io_accounts>> io_;
  caf::actor key_service_, ledger_, ledger_db_;
  std::vector<caf::actor> admin_workers_;
  std::atomic<std::size_t> next_admin_{0};
  struct listener;
  std::unique_ptr<listener> listener_;
  bool shut_ = false;
  bool stopped_ = false;
};

/// Builds the backend for `s` (pg when database_url is set, else memory on `mem`).
std::unique_ptr<backend> open_backend(const settings& s, const std::shared_ptr<memory_db>& mem);

}  // namespace gw::accounts

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::auth_entry_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<gw::accounts::charge>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::admin_callback)

#pragma once
// Messages and spawn functions shared by the accounts actors (private to the library).

#include <caf/all.hpp>

#include "gw/accounts/accounts.hpp"

namespace gw::accounts {

using changed_atom = caf::atom_constant<caf::atom("changed")>;
using reload_atom = caf::atom_constant<caf::atom("reload")>;
using all_atom = caf::atom_constant<caf::atom("all")>;
using ask_atom = caf::atom_constant<caf::atom("ask")>;
using grant_atom = caf::atom_constant<caf::atom("grant")>;
using charges_atom = caf::atom_constant<caf::atom("charges")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using lease_atom = caf::atom_constant<caf::atom("lease")>;
using apply_atom = caf::atom_constant<caf::atom("apply")>;
using budget_atom = caf::atom_constant<caf::atom("budget")>;
using admin_atom = caf::atom_constant<caf::atom("admin")>;
using final_atom = caf::atom_constant<caf::atom("final")>;
using release_atom = caf::atom_constant<caf::atom("release")>;

/// A change to one record, or the whole set (resync). Absent optional = deleted.
struct record_change {
  enum class what { key, user, team } kind = what::key;
  std::string id;
  std::optional<keys::key_record> key;
  std::optional<keys::user_record> user;
  std::optional<keys::team_record> team;
  std::string old_token;  ///< key renamed (regenerate): the token it had
};

struct lookup_request {
  std::string token;
  std::function<void(auth_entry_ptr)> cb;
};

/// An io thread asks for more of one budget for its slice.
struct grant_request {
  std::size_t io = 0;
  entity_ref entity;
  keys::money need = 0;  ///< at least this much would let the waiting request in
  std::string name;      ///< for messages ("key 'x'")
  bool reclaimed = false;  ///< other io threads' idle slices were asked back for it (once)
};

/// What an io thread reports each tick: finished requests' charges, and per budget slice
/// what its requests consumed and what it gives back.
struct io_report {
  std::size_t io = 0;
  std::vector<charge> charges;
  struct slice_change {
    entity_ref entity;
    keys::money consumed = 0, returned = 0;
  };
  std::vector<slice_change> slices;
};

struct admin_request {
  std::string route, body, query;
  admin_callback cb;
};

/// A batch on its way to the database, with what it takes off local accounts.
struct pending_batch {
  std::string id;
  spend_batch batch;
  bool from_spool_only = false;  ///< read back from the spool at start: no local accounts
};

struct lease_reply {
  entity_ref entity;
  keys::money want = 0;
  std::optional<lease_grant> grant;  ///< none: the database failed
  std::string failure;
};

struct apply_reply {
  std::string id;
  bool ok = false;  ///< applied (or found applied before)
  std::string failure;
};

/// Money for messages: "$0.000123" (up to 6 decimals, trailing zeros removed).
std::string money_text(keys::money m);

/// Builds the auth entry of a key from its record and its user's and team's.
auth_entry_ptr derive_entry(const keys::key_record& k, const keys::user_record* u, const keys::team_record* t);

caf::actor spawn_key_service(caf::actor_system& sys, service* svc);
caf::actor spawn_ledger(caf::actor_system& sys, service* svc, caf::actor db, std::vector<pending_batch> spooled);
caf::actor spawn_ledger_db(caf::actor_system& sys, std::unique_ptr<backend> b, settings s);
caf::actor spawn_admin_worker(caf::actor_system& sys, service* svc, std::unique_ptr<backend> b);

/// Spool file: one JSON line per batch. Returns the batches read (and rewrites nothing).
std::vector<pending_batch> read_spool(const std::string& path, std::string& err);
bool append_spool(const std::string& path, const pending_batch& b);
bool rewrite_spool(const std::string& path, const std::deque<pending_batch>& batches);

}  // namespace gw::accounts

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::record_change)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<gw::accounts::record_change>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::lookup_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::grant_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::io_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::admin_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::pending_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<const gw::accounts::pending_batch>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::lease_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::apply_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::entity_ref)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::accounts::all_records)

// The ledger actor: budgets exact across a cluster without a database round trip per
// request.
//
// Each budgeted entity (key, user, team, key x model) has an account here. The node
// leases slices of the entity's budget from the backend (which never grants more than
// max_budget - spend - every node's unexpired leases) and hands each io thread a part of
// its lease; the io threads admit requests from their parts without a hop here
// (slices.cpp) and report what their requests cost and what they give back. Spend is
// written in batches (one transaction per flush interval) that also shrink this node's
// lease by what was spent, so spend + all leases never exceeds max_budget. A batch the
// database cannot take is appended to a spool file and re-sent (idempotently, by batch
// id) until it is applied.
//
// Local bookkeeping per account:
//   own_lease  what the backend holds for this node (as of the last reply)
//   io[i]      what io thread i holds of it: granted - consumed - given back (negative
//              when its requests cost more than it was given; that cost is in unflushed)
//   unflushed  actual cost spent since the last batch
//   flushing   spent, in batches not yet applied
//   returning  unused lease being given back, in batches not yet applied
//   available = own_lease - sum(max(io[i], 0)) - unflushed - flushing - returning

#include <malloc.h>

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>

#include "gw/core/log.hpp"
#include "internal.hpp"

namespace gw::accounts {
namespace {

using steady = std::chrono::steady_clock;
using keys::money;

struct account {
  std::optional<money> max;
  money own_lease = 0, unflushed = 0, flushing = 0, returning = 0;
  std::vector<money> io;  ///< held by each io thread
  /// What each io thread's requests reserved or spent that it has not reported yet
  /// (slice_grant::used): a thread holding less than that is in debt.
  std::vector<std::shared_ptr<std::atomic<money>>> used;
  money spend_seen = 0, leased_by_others = 0;
  std::optional<keys::sys_time> reset_at;
  std::optional<money> soft;
  bool soft_logged = false;
  bool known = false;      // a lease reply has been seen
  bool refilling = false;  // a lease request is out
  steady::time_point reclaim_until{};    // idle slices of other io threads asked back
  steady::time_point valid_until{};      // lease usable until (renewed by DB contact)
  steady::time_point exhausted_until{};  // the backend had nothing more to give
  steady::time_point failed_until{};     // the backend failed; do not ask again yet
  steady::time_point last_used{};
  std::string name;

  /// What io thread i holds: its slice, or what its requests used if more (a debt).
  /// `in_use_only` (spend mode): only what its requests reserved or spent, so a slice
  /// one thread holds idle does not refuse another thread's requests; two threads may
  /// then admit from the same money, which spend mode allows (the overshoot is bounded
  /// by the requests in flight).
  money held_by(std::size_t i, bool in_use_only = false) const {
    money held = in_use_only || i >= io.size() ? 0 : io[i];
    if (i < used.size() && used[i]) held = std::max(held, used[i]->load(std::memory_order_relaxed));
    return std::max<money>(held, 0);
  }
  money held_by_io(bool in_use_only = false) const {
    money t = 0;
    for (std::size_t i = 0; i < std::max(io.size(), used.size()); ++i) t += held_by(i, in_use_only);
    return t;
  }
  money available(steady::time_point now, bool in_use_only = false) const {
    money lease = now < valid_until ? own_lease : 0;
    return lease - held_by_io(in_use_only) - unflushed - flushing - returning;
  }
  /// The most io thread i can be given now. A thread in debt (it holds less than its
  /// requests used) gets its debt back for nothing new: that spend is counted already.
  money grantable(std::size_t i, steady::time_point now, bool in_use_only = false) const {
    money g = i < io.size() ? io[i] : 0;
    return held_by(i, in_use_only) + available(now, in_use_only) - g;
  }
  bool idle() const { return held_by_io() == 0 && unflushed == 0 && flushing == 0 && returning == 0; }
};

struct batch_effect {
  std::map<entity_ref, money> spent, returned;
};

/// Spend-log rows the memory backend keeps (the newest).
constexpr std::size_t k_memory_log_rows = 10'000;

struct ledger_state {
  service* svc = nullptr;
  int trim_ticks = 0;  // flush ticks left to give freed memory back
  caf::actor db;
  std::map<entity_ref, account> accounts;
  std::deque<grant_request> waiting;  ///< io threads waiting for a lease reply
  // spend not yet in a batch
  spend_batch current;
  // batches not yet applied, oldest first; the head may be in flight
  /// Shared with the database actor while it writes the head (no copy of the rows).
  std::deque<std::shared_ptr<pending_batch>> pending;
  std::map<std::string, batch_effect> effects;
  std::map<std::string, bool> spooled;  // batch id -> written to the spool file
  bool in_flight = false;
  bool db_down = false;
  std::uint64_t batch_seq = 0;
  std::vector<caf::response_promise> final_waiters;
  bool finalizing = false;
  static inline const char* name = "gw.ledger";
};

using ledger_actor = caf::stateful_actor<ledger_state>;



money slice_for(const ledger_state& st, const account& a, money need) {
  const auto& cfg = st.svc->config();
  money slice = cfg.min_slice;
  if (a.max) slice = std::max<money>(slice, static_cast<money>(static_cast<double>(*a.max) * cfg.slice_fraction));
  return std::max(need, slice);
}

void request_lease(ledger_actor* self, const entity_ref& e, account& a, money want) {
  a.refilling = true;
  self->send(self->state.db, lease_atom::value, e, want);
}

/// What an io thread gets at a time: a share of a node slice, at least what it needs.
money io_share(const ledger_state& st, const account& a, money need) {
  money share = slice_for(st, a, 0) / static_cast<money>(std::max<std::size_t>(1, st.svc->io_count()));
  return std::max(need, share);
}

/// Hands io thread r.io `amount` of the account (posted to it).
void give(ledger_actor* self, const grant_request& r, account& a, money amount, bool exhausted) {
  auto& st = self->state;
  amount = std::max<money>(amount, 0);
  std::size_t n = std::max(st.svc->io_count(), r.io + 1);
  if (a.io.size() < n) a.io.resize(n, 0);
  if (a.used.size() < n) a.used.resize(n);
  if (!a.used[r.io]) a.used[r.io] = std::make_shared<std::atomic<money>>(0);
  a.io[r.io] += amount;
  slice_grant g;
  g.entity = r.entity;
  g.granted = amount;
  g.unlimited = a.known && !a.max;
  g.exhausted = exhausted;
  g.valid_until = a.valid_until;
  g.name = a.name;
  g.max = a.max.value_or(0);
  g.spent = a.spend_seen + a.unflushed + a.flushing;
  g.used = a.used[r.io];
  g.in_flight_elsewhere = a.leased_by_others;
  bool in_use_only = st.svc->config().mode == budget_mode::spend;
  for (std::size_t i = 0; i < a.io.size(); ++i)
    if (i != r.io) g.in_flight_elsewhere += a.held_by(i, in_use_only);
  auto* svc = st.svc;
  svc->post(r.io, [svc, io = r.io, g = std::move(g)] { svc->io(io).on_grant(g); });
}

void fail_grant(ledger_actor* self, const grant_request& r) {
  auto* svc = self->state.svc;
  slice_grant g;
  g.entity = r.entity;
  g.failed = true;
  svc->post(r.io, [svc, io = r.io, g = std::move(g)] { svc->io(io).on_grant(g); });
}

enum class try_result { done, waiting };

/// An io thread asks for more of one budget: from the node's lease when it has enough,
/// else after asking the database for a bigger lease.
try_result try_grant(ledger_actor* self, grant_request& r) {
  auto& st = self->state;
  auto now = steady::now();
  auto& a = st.accounts[r.entity];
  if (a.name.empty()) a.name = r.name;
  a.last_used = now;
  if (a.known && !a.max) {
    give(self, r, a, 0, false);  // no cap (any more): the thread admits freely
    return try_result::done;
  }
  bool in_use_only = st.svc->config().mode == budget_mode::spend;
  money avail = a.grantable(r.io, now, in_use_only);
  if (a.known && avail >= r.need) {
    give(self, r, a, std::min(avail, io_share(st, a, r.need)), false);
    return try_result::done;
  }
  // Strict: other io threads may hold parts of the budget that no request of theirs
  // uses (a slice kept for their next request). Asked back (once per grant, so that
  // threads cannot take it from each other for ever) before the database is asked or
  // the request refused; their returns (or 300 ms) retry this grant.
  if (a.known && !in_use_only && now < a.reclaim_until) return try_result::waiting;
  if (a.known && !in_use_only && !r.reclaimed) {
    bool asked = false;
    for (std::size_t i = 0; i < a.io.size(); ++i) {
      if (i == r.io) continue;
      money in_use = i < a.used.size() && a.used[i] ? a.used[i]->load(std::memory_order_relaxed) : 0;
      if (a.io[i] - std::max<money>(in_use, 0) <= 0) continue;
      auto* svc = st.svc;
      svc->post(i, [svc, i, e = r.entity] { svc->io(i).invalidate(e); });
      asked = true;
    }
    r.reclaimed = true;
    if (asked) {
      a.reclaim_until = now + std::chrono::milliseconds(300);
      return try_result::waiting;
    }
  }
  if (a.refilling) return try_result::waiting;
  if (now < a.failed_until) {
    fail_grant(self, r);
    return try_result::done;
  }
  if (a.known && now < a.exhausted_until) {
    // The database had less than the node asked for: what is left (perhaps nothing) is
    // all there is; the thread admits or refuses with it.
    give(self, r, a, avail, true);
    return try_result::done;
  }
  // A bigger lease: what this thread needs, a share to go on with, and whatever the
  // node's threads overspent meanwhile (avail below zero).
  request_lease(self, r.entity, a, slice_for(st, a, r.need + io_share(st, a, r.need) - avail));
  return try_result::waiting;
}

void retry_waiting(ledger_actor* self) {
  auto& st = self->state;
  std::deque<grant_request> still;
  auto w = std::move(st.waiting);
  st.waiting.clear();
  for (auto& r : w)
    if (try_grant(self, r) == try_result::waiting) still.push_back(std::move(r));
  for (auto& r : still) st.waiting.push_back(std::move(r));
}

void check_soft(ledger_state& st, account& a) {
  if (!a.soft || a.soft_logged) return;
  money spent = a.spend_seen + a.unflushed + a.flushing;
  if (spent < *a.soft) return;
  a.soft_logged = true;
  ++st.svc->state().soft_budget_crossings;
  log::warn("soft budget crossed: " + a.name + " has spent " + money_text(spent) + " of a soft budget of " + money_text(*a.soft));
}

void on_charges(ledger_actor* self, io_report& r) {
  auto& st = self->state;
  bool returned = false;
  for (auto& sc : r.slices) {
    auto a = st.accounts.find(sc.entity);
    if (a == st.accounts.end() || r.io >= a->second.io.size()) continue;
    a->second.io[r.io] -= sc.consumed + sc.returned;
    if (sc.returned > 0) {
      returned = true;
      a->second.reclaim_until = {};
    }
    if (a->second.used[r.io]) a->second.used[r.io]->fetch_sub(sc.consumed, std::memory_order_relaxed);
  }
  auto& cs = r.charges;
  for (auto& c : cs) {
    if (c.soft) {
      // Soft budgets are followed here (no request waits for them).
      const auto& e = *c.soft;
      for (std::size_t i = 0; i < e.budgets.size(); ++i) {
        if (!e.soft_budgets[i]) continue;
        const auto& ref = e.budgets[i];
        if (ref.kind == entity_kind::key_model && ref.model != c.log.model_group) continue;
        auto& a = st.accounts[ref];
        if (a.name.empty()) a.name = e.budget_names[i];
        a.soft = e.soft_budgets[i];
        a.last_used = steady::now();
      }
      c.soft.reset();
    }
    if (c.cost != 0) {
      for (auto& e : c.entities) {
        st.current.entity_spend[e] += c.cost;
        if (auto a = st.accounts.find(e); a != st.accounts.end()) {
          a->second.unflushed += c.cost;
          check_soft(st, a->second);
        }
      }
      if (!c.log.api_key.empty()) st.current.key_model_spend[{c.log.api_key, c.log.model_group}] += c.cost;
    }
    if (!c.log.request_id.empty()) st.current.logs.push_back(std::move(c.log));
  }
  // Without a database only the newest rows are kept anyway (memory_backend): do not
  // carry a whole flush interval of rows (60k at full load) to throw most of them away.
  if (!st.svc->persistent() && st.current.logs.size() >= 2 * k_memory_log_rows) {
    auto& logs = st.current.logs;
    logs.erase(logs.begin(), logs.end() - static_cast<std::ptrdiff_t>(k_memory_log_rows));
  }
  if (returned && !st.waiting.empty()) retry_waiting(self);  // slices asked back have come
}

void send_head(ledger_actor* self) {
  auto& st = self->state;
  if (st.in_flight || st.pending.empty()) return;
  st.in_flight = true;
  self->send(st.db, apply_atom::value, std::shared_ptr<const pending_batch>(st.pending.front()));
}

/// Turns what was spent (and idle leases) into a batch at the back of the queue.
void cut_batch(ledger_actor* self, bool return_all) {
  auto& st = self->state;
  auto now = steady::now();
  // Idle accounts give their unused lease back; an account with nothing left is dropped.
  for (auto it = st.accounts.begin(); it != st.accounts.end();) {
    auto& a = it->second;
    bool idle_long = now - a.last_used > std::chrono::seconds(10);
    if ((return_all || idle_long) && a.held_by_io() == 0) {
      money free = a.own_lease - a.unflushed - a.flushing - a.returning;
      if (free > 0) {
        st.current.lease_returns[it->first] += free;
        a.returning += free;
      }
    }
    if (idle_long && a.idle() && a.own_lease <= 0 && !a.refilling) {
      it = st.accounts.erase(it);
      continue;
    }
    ++it;
  }
  auto& b = st.current;
  if (b.entity_spend.empty() && b.logs.empty() && b.lease_returns.empty() && b.key_model_spend.empty()) {
    if (b.logs.capacity()) b.logs = {};  // idle: give back the room kept for a busy interval
    return;
  }
  auto pp = std::make_shared<pending_batch>();
  auto& p = *pp;
  p.id = st.svc->config().node_id + "-" + std::to_string(++st.batch_seq);
  b.node_id = st.svc->config().node_id;
  batch_effect eff;
  for (auto& [e, m] : b.entity_spend) {
    if (auto a = st.accounts.find(e); a != st.accounts.end()) {
      a->second.unflushed -= m;
      a->second.flushing += m;
      eff.spent[e] = m;
    }
  }
  eff.returned = b.lease_returns;
  auto rows = b.logs.size();
  p.batch = std::move(b);
  st.current = spend_batch{};
  st.current.logs.reserve(rows + rows / 4);  // as many as last time, without regrowing
  st.effects[p.id] = std::move(eff);
  if (st.db_down) {
    // The database is away: keep it on disk at once.
    if (append_spool(st.svc->config().spool_path, p)) {
      st.spooled[p.id] = true;
      ++st.svc->state().spooled_batches;
    }
  }
  st.pending.push_back(std::move(pp));
}

void on_applied(ledger_actor* self, apply_reply& r) {
  auto& st = self->state;
  st.in_flight = false;
  auto now = steady::now();
  if (st.pending.empty() || st.pending.front()->id != r.id) return;
  if (!r.ok) {
    if (!st.db_down) log::warn("spend batch not written (" + r.failure + "); spooling and retrying");
    st.db_down = true;
    st.svc->state().db_ok = false;
    ++st.svc->state().flush_failures;
    // Everything waiting goes to disk, so SIGKILL now loses at most the next interval.
    for (auto& p : st.pending) {
      if (st.spooled.count(p->id)) continue;
      if (append_spool(st.svc->config().spool_path, *p)) {
        st.spooled[p->id] = true;
        ++st.svc->state().spooled_batches;
      }
    }
    if (st.finalizing) {
      for (auto& w : st.final_waiters) w.deliver(false);
      st.final_waiters.clear();
    }
    return;
  }
  if (st.db_down) log::info("database back: writing spooled spend");
  st.db_down = false;
  st.svc->state().db_ok = true;
  ++st.svc->state().flushed_batches;
  auto lease_valid = now + st.svc->config().lease_ttl - std::chrono::seconds(5);
  if (auto e = st.effects.find(r.id); e != st.effects.end()) {
    for (auto& [ref, m] : e->second.spent)
      if (auto a = st.accounts.find(ref); a != st.accounts.end()) {
        a->second.flushing -= m;
        a->second.own_lease = std::max<money>(a->second.own_lease - m, 0);
        a->second.spend_seen += m;
      }
    for (auto& [ref, m] : e->second.returned)
      if (auto a = st.accounts.find(ref); a != st.accounts.end()) {
        a->second.returning -= m;
        a->second.own_lease = std::max<money>(a->second.own_lease - m, 0);
      }
    st.effects.erase(e);
  }
  // Every lease of this node was renewed by the apply, and with them the io threads' parts.
  for (auto& [_, a] : st.accounts)
    if (a.known) a.valid_until = lease_valid;
  for (std::size_t i = 0; i < st.svc->io_count(); ++i)
    st.svc->post(i, [svc = st.svc, i, lease_valid] { svc->io(i).extend(lease_valid); });
  bool was_spooled = st.spooled.erase(r.id) > 0;
  st.pending.pop_front();
  if (was_spooled) {
    std::deque<pending_batch> rest;
    for (auto& p : st.pending)
      if (st.spooled.count(p->id)) rest.push_back(*p);
    rewrite_spool(st.svc->config().spool_path, rest);
    st.svc->state().spooled_batches = static_cast<std::int64_t>(rest.size());
  }
  send_head(self);
  if (st.finalizing && st.pending.empty()) {
    for (auto& w : st.final_waiters) w.deliver(true);
    st.final_waiters.clear();
  }
}

void on_lease(ledger_actor* self, lease_reply& r) {
  auto& st = self->state;
  auto now = steady::now();
  auto it = st.accounts.find(r.entity);
  if (it == st.accounts.end()) return;
  auto& a = it->second;
  a.refilling = false;
  if (!r.grant) {
    a.failed_until = now + std::chrono::seconds(1);
    st.svc->state().db_ok = false;
    retry_waiting(self);
    return;
  }
  const auto& g = *r.grant;
  a.known = true;
  if (!g.exists) {
    // Deleted meanwhile: no budget to hold (auth refuses the key once the change lands).
    a.max.reset();
  } else {
    a.max = g.max_budget;
  }
  a.own_lease = g.own_lease;
  a.spend_seen = g.spend;
  a.leased_by_others = g.leased_by_others;
  if (a.reset_at != g.budget_reset_at) a.soft_logged = false;  // a new period
  a.reset_at = g.budget_reset_at;
  a.valid_until = now + st.svc->config().lease_ttl - std::chrono::seconds(5);
  if (g.granted < r.want) a.exhausted_until = now + std::chrono::seconds(1);
  retry_waiting(self);
}

caf::behavior ledger_fn(ledger_actor* self, service* svc, caf::actor db, std::vector<pending_batch> spooled) {
  self->set_default_handler(caf::drop);
  auto& st = self->state;
  st.svc = svc;
  st.db = std::move(db);
  for (auto& p : spooled) {
    st.spooled[p.id] = true;
    st.pending.push_back(std::make_shared<pending_batch>(std::move(p)));
  }
  svc->state().spooled_batches = static_cast<std::int64_t>(st.pending.size());
  send_head(self);
  self->delayed_send(self, svc->config().flush_interval, flush_atom::value);
  return {
      [=](grant_atom, grant_request& r) {
        if (try_grant(self, r) == try_result::waiting) self->state.waiting.push_back(std::move(r));
      },
      [=](charges_atom, io_report& r) { on_charges(self, r); },
      [=](flush_atom) {
        auto& s = self->state;
        // Trim while busy and for a few ticks after (rows are freed once applied).
        if (!s.current.logs.empty()) s.trim_ticks = 3;
        bool big = s.trim_ticks > 0;
        if (big) --s.trim_ticks;
        cut_batch(self, false);
        if (!s.in_flight) send_head(self);
        if (!s.waiting.empty()) retry_waiting(self);  // e.g. slices asked back that had nothing left
        // Batches of spend-log rows are allocated on the io threads and freed here or
        // on the database thread: give the freed pages back to the OS instead of
        // keeping every arena at its high-water mark.
        if (big) ::malloc_trim(0);
        if (!s.finalizing) self->delayed_send(self, s.svc->config().flush_interval, flush_atom::value);
      },
      [=](apply_atom, apply_reply& r) { on_applied(self, r); },
      [=](lease_atom, lease_reply& r) { on_lease(self, r); },
      [=](budget_atom, entity_ref& e) {
        // The entity's budget changed: forget what we knew; the next request re-leases.
        auto& s = self->state;
        // The io threads give their parts back and ask again.
        for (std::size_t i = 0; i < s.svc->io_count(); ++i)
          s.svc->post(i, [svc = s.svc, i, e] { svc->io(i).invalidate(e); });
        auto it = s.accounts.find(e);
        if (it == s.accounts.end()) return;
        it->second.known = false;
        it->second.exhausted_until = {};
        it->second.soft_logged = false;
      },
      [=](final_atom) -> caf::result<bool> {
        auto& s = self->state;
        s.finalizing = true;
        cut_batch(self, true);
        send_head(self);
        if (s.pending.empty()) return true;
        if (s.db_down) {
          // Written to the spool already (or now): nothing is lost.
          for (auto& p : s.pending)
            if (!s.spooled.count(p->id) && append_spool(s.svc->config().spool_path, *p)) s.spooled[p->id] = true;
          return false;
        }
        auto rp = self->make_response_promise();
        s.final_waiters.push_back(rp);
        return rp;
      },
      [=](release_atom) {
        // Shutdown timed out waiting for the database: make sure all is spooled.
        auto& s = self->state;
        for (auto& p : s.pending)
          if (!s.spooled.count(p->id) && append_spool(s.svc->config().spool_path, *p)) s.spooled[p->id] = true;
        return true;
      },
  };
}

// ------------------------------------------------------------------ database side

struct ledger_db_state {
  std::unique_ptr<backend> b;
  settings cfg;
  static inline const char* name = "gw.ledger_db";
};
using ledger_db_actor = caf::stateful_actor<ledger_db_state>;

caf::behavior ledger_db_fn(ledger_db_actor* self, std::unique_ptr<backend> b, settings cfg) {
  self->set_default_handler(caf::drop);
  self->state.b = std::move(b);
  self->state.cfg = std::move(cfg);
  return {
      [=](lease_atom, entity_ref& e, money want) {
        lease_reply r;
        r.entity = e;
        r.want = want;
        try {
          r.grant = self->state.b->lease(e, self->state.cfg.node_id, want, self->state.cfg.lease_ttl);
        } catch (const std::exception& ex) {
          r.failure = ex.what();
        }
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), lease_atom::value, std::move(r));
      },
      [=](apply_atom, std::shared_ptr<const pending_batch>& p) {
        apply_reply r;
        r.id = p->id;
        try {
          self->state.b->apply_shared(std::shared_ptr<const spend_batch>(p, &p->batch), p->id,
                                      self->state.cfg.lease_ttl);
          r.ok = true;  // applied now, or found applied before (idempotent)
        } catch (const std::exception& ex) {
          r.failure = ex.what();
        }
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), apply_atom::value, std::move(r));
      },
      [=](release_atom) {
        try {
          self->state.b->release_leases(self->state.cfg.node_id);
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
  };
}

}  // namespace

caf::actor spawn_ledger(caf::actor_system& sys, service* svc, caf::actor db, std::vector<pending_batch> spooled) {
  return sys.spawn(ledger_fn, svc, std::move(db), std::move(spooled));
}

caf::actor spawn_ledger_db(caf::actor_system& sys, std::unique_ptr<backend> b, settings s) {
  return sys.spawn<caf::detached>(ledger_db_fn, std::move(b), std::move(s));
}

}  // namespace gw::accounts

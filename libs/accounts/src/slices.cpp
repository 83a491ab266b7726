// Budget admission on the io thread: each io thread holds a slice of the node's lease of
// every budget its requests use. A request reserves from the slice and gives back what
// it did not spend when it settles, without leaving the thread; when a slice runs short
// the thread asks the ledger for more (the request waits only if nothing is left), and
// every tick it reports what its requests consumed and what it gives back (idle slices
// after 10 s, everything at shutdown). The ledger never hands out more than the node's
// lease, and the database never leases more than the budget, so the cluster-wide
// guarantee is the node's.

#include <algorithm>

#include "gw/core/log.hpp"
#include "internal.hpp"

namespace gw::accounts {
namespace {

using steady = std::chrono::steady_clock;


std::string when(const std::optional<keys::sys_time>& t) {
  if (!t) return "never (no budget_duration)";
  auto tt = std::chrono::system_clock::to_time_t(*t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

constexpr auto k_idle = std::chrono::seconds(10);

}  // namespace

std::string money_text(keys::money m) {
  // Short, human form for messages: up to 6 decimals, trailing zeros removed.
  std::string s = keys::to_decimal(m);
  auto dot = s.find('.');
  s.resize(std::min(s.size(), dot + 7));
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return "$" + s;
}

error budget_exceeded(const slice_grant& v, keys::money in_flight_here, keys::money amount) {
  std::string msg = "Budget has been exceeded! " + v.name + ": Current cost: " + money_text(v.spent) +
                    ", Max budget: " + money_text(v.max);
  keys::money in_flight = v.in_flight_elsewhere + in_flight_here;
  if (in_flight > 0) msg += ", reserved by requests in flight: " + money_text(in_flight);
  msg += "; this request may cost up to " + money_text(amount) + ". The budget resets at " + when(v.reset_at) + ".";
  return error{errc::budget_exceeded, std::move(msg), ""};
}

admission io_accounts::admit(const auth_entry& e, std::string_view model_group, keys::money amount, budget_mode mode,
                             budget_hold& hold, error& refusal, std::function<void()> wake) {
  // A reservation is at most k_max_reservation, so the sums of slices, of what is in
  // flight and of the io threads' `used` stay in range (a saturated worst case from
  // max_tokens near 2^63 is still refused in strict mode by any budget below it).
  amount = std::clamp<keys::money>(amount, 0, k_max_reservation);
  auto now = steady::now();
  hold.parts.clear();
  bool wait = false;
  // First pass: every hard budget must have room; ask for more where one has not.
  for (std::size_t i = 0; i < e.budgets.size(); ++i) {
    const auto& ref = e.budgets[i];
    if (!e.hard[i]) continue;  // soft only: followed by the ledger, never refused
    if (ref.kind == entity_kind::key_model && ref.model != model_group) continue;
    auto& s = slices_[ref];
    s.last_used = now;
    if (s.known && s.unlimited) continue;
    bool valid = s.known && now < s.valid_until;
    keys::money avail = valid ? s.avail : std::min<keys::money>(s.avail, 0);
    bool room = mode == budget_mode::strict ? avail >= amount : avail > 0;
    if (room) continue;
    if (s.asking) {
      wait = true;
      continue;
    }
    if (now < s.failed_until) {
      refusal = error{errc::service_unavailable,
                      "The budget of " + e.budget_names[i] +
                          " cannot be checked: the database is unavailable and this node holds no unused part of it. "
                          "Try again shortly.",
                      ""};
      return admission::refused;
    }
    if (valid && now < s.exhausted_until) {
      ++svc_.state().budget_refusals;
      refusal = budget_exceeded(s.view, s.reserved, amount);
      return admission::refused;
    }
    keys::money need = std::max<keys::money>(amount - avail, 1);
    ask(ref, s, e.budget_names[i], need);
    wait = true;
  }
  if (wait) {
    // Wake once for all the slices asked for (each grant wakes its waiters; a second
    // wake finds the request admitted or waiting again).
    for (std::size_t i = 0; i < e.budgets.size(); ++i) {
      const auto& ref = e.budgets[i];
      if (!e.hard[i] || (ref.kind == entity_kind::key_model && ref.model != model_group)) continue;
      auto it = slices_.find(ref);
      if (it != slices_.end() && it->second.asking) {
        it->second.waiting.push_back(std::move(wake));
        break;
      }
    }
    return admission::waiting;
  }
  // Second pass: reserve.
  for (std::size_t i = 0; i < e.budgets.size(); ++i) {
    const auto& ref = e.budgets[i];
    if (!e.hard[i] || (ref.kind == entity_kind::key_model && ref.model != model_group)) continue;
    auto& s = slices_[ref];
    if (s.unlimited) continue;
    s.avail -= amount;
    s.reserved += amount;
    if (s.view.used) s.view.used->fetch_add(amount, std::memory_order_relaxed);
    hold.parts.push_back(budget_hold::part{ref, amount});
  }
  return admission::admitted;
}

void io_accounts::ask(const entity_ref& e, slice& s, const std::string& name, keys::money need) {
  if (!svc_.ledger_actor()) {
    s.failed_until = steady::now() + std::chrono::seconds(1);
    return;
  }
  s.asking = true;
  caf::anon_send(svc_.ledger_actor(), grant_atom::value, grant_request{index_, e, need, name});
}

void io_accounts::settle(budget_hold& hold, keys::money cost) {
  for (auto& p : hold.parts) {
    auto& s = slices_[p.entity];
    s.reserved -= p.amount;
    s.avail += p.amount - cost;
    s.consumed += cost;
    if (s.view.used) s.view.used->fetch_add(cost - p.amount, std::memory_order_relaxed);
  }
  hold.parts.clear();
}

void io_accounts::on_grant(const slice_grant& g) {
  auto& s = slices_[g.entity];
  s.asking = false;
  auto now = steady::now();
  auto used = s.view.used;
  s.view = g;
  if (!s.view.used) s.view.used = std::move(used);
  if (g.failed) {
    s.failed_until = now + std::chrono::seconds(1);
  } else {
    s.known = true;
    s.unlimited = g.unlimited;
    s.avail += g.granted;
    s.valid_until = g.valid_until;
    s.failed_until = {};
    s.exhausted_until = g.exhausted ? now + std::chrono::seconds(1) : steady::time_point{};
  }
  auto waiting = std::move(s.waiting);
  s.waiting.clear();
  for (auto& w : waiting) w();
}

void io_accounts::extend(std::chrono::steady_clock::time_point valid_until) {
  for (auto& [_, s] : slices_)
    if (s.known) s.valid_until = std::max(s.valid_until, valid_until);
}

void io_accounts::invalidate(const entity_ref& e) {
  auto it = slices_.find(e);
  if (it == slices_.end()) return;
  auto& s = it->second;
  if (s.avail > 0) {
    s.returned += s.avail;
    s.avail = 0;
  }
  s.known = false;
  s.unlimited = false;
  s.exhausted_until = {};
}

void io_accounts::flush(bool final) {
  auto now = steady::now();
  io_report r;
  r.io = index_;
  // Idle slices (and at the end all of them) go back; their unused part serves others.
  bool sweep = final || now >= next_idle_check_;
  if (sweep) next_idle_check_ = now + std::chrono::seconds(1);
  for (auto it = slices_.begin(); it != slices_.end();) {
    auto& s = it->second;
    if (sweep && s.reserved == 0 && s.waiting.empty() && (final || now - s.last_used > k_idle)) {
      if (s.avail > 0) s.returned += s.avail;
      s.avail = std::min<keys::money>(s.avail, 0);
      s.known = false;
    }
    if (s.consumed != 0 || s.returned != 0) {
      r.slices.push_back(io_report::slice_change{it->first, s.consumed, s.returned});
      s.consumed = s.returned = 0;
    }
    if (!s.known && !s.asking && s.reserved == 0 && s.avail == 0 && s.waiting.empty() && now - s.last_used > k_idle) {
      it = slices_.erase(it);
      continue;
    }
    ++it;
  }
  if (charges_.empty() && r.slices.empty()) {
    if (charges_.capacity()) charges_ = {};  // idle: give back the room kept for a busy tick
    return;
  }
  if (!svc_.ledger_actor()) {
    charges_.clear();  // stopped: the final batch has been cut already
    return;
  }
  auto n = charges_.size();
  r.charges = std::move(charges_);
  caf::anon_send(svc_.ledger_actor(), charges_atom::value, std::move(r));
  // Room for as many as last time: growing by doubling would move every charge (and
  // its strings) again on each step.
  charges_ = {};
  charges_.reserve(n + n / 4);
}

}  // namespace gw::accounts

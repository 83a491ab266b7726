#pragma once
// The caching and refresh engine both providers use (private to the library).
//
// State machine: one resolution at a time (`in_flight_`); get() callers that find no
// valid value queue as waiters and share that resolution. A success stores the value
// (current() copies a shared_ptr under its own small mutex, held for a reference-count
// increment, and reads the clock; not std::atomic<std::shared_ptr>: libstdc++ 12's
// load() unlocks with a relaxed store, a formal race ThreadSanitizer reports) and arms a timer
// for the background refresh; a failure records the error, starts a cooldown during
// which get() fails fast, and, if the source once produced a value, arms a retry with
// exponential backoff. The old value is served by current() until its margin runs out.
//
// Threads: public calls from any thread. Timer and resolution start run on a strand of
// the io_context (so a multi-threaded io_context is fine); the resolve function must
// call its completion exactly once, on any thread running the io_context (or inline).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "gw/core/log.hpp"
#include "gw/credentials/parse.hpp"
#include "gw/credentials/refresh.hpp"
#include "gw/http/asio.hpp"

namespace gw::credentials::detail {

namespace asio = boost::asio;

template <class V>  // V has `std::chrono::system_clock::time_point expiration`
class refresher : public std::enable_shared_from_this<refresher<V>> {
 public:
  using sys_clock = std::chrono::system_clock;
  using steady = std::chrono::steady_clock;
  struct outcome {
    std::shared_ptr<const V> value;  ///< null: failed
    std::string error;
    std::string source;
  };
  using completion = std::function<void(outcome)>;
  /// `background`: a scheduled refresh (no caller waiting).
  using resolve_fn = std::function<void(bool background, completion done)>;
  using waiter = std::function<void(std::shared_ptr<const V>, std::string error)>;

  /// `name` prefixes log lines ("AWS credentials").
  refresher(asio::io_context& io, std::string name, refresh_policy p, resolve_fn fn)
      : strand_(asio::make_strand(io)), timer_(strand_), name_(std::move(name)), policy_(p), resolve_(std::move(fn)) {}

  /// The cached value if still within its validity margin; null otherwise.
  std::shared_ptr<const V> current() const {
    auto e = load_entry();
    if (!e || sys_clock::now() >= e->valid_until) return nullptr;
    return e->value;
  }

  void get(waiter w) {
    if (auto v = current()) return w(std::move(v), {});
    std::string fail_now;
    bool start = false;
    std::shared_ptr<const V> now_valid;
    {
      std::lock_guard lock(mu_);
      // complete() stores the value under mu_: a resolution that finished between the
      // check above and this lock must be used, not followed by a second one.
      if (stopped_) {
        fail_now = "credential provider stopped";
      } else if ((now_valid = current())) {
        // served below, outside the lock
      } else if (!in_flight_ && steady::now() < cooldown_until_) {
        fail_now = last_error_;
      } else {
        waiters_.push_back(std::move(w));
        if (!in_flight_) in_flight_ = start = true;
      }
    }
    if (now_valid) return w(std::move(now_valid), {});
    if (!fail_now.empty()) return w(nullptr, std::move(fail_now));
    if (start) asio::post(strand_, [self = this->shared_from_this()] { self->run(false); });
  }

  void stop() {
    std::vector<waiter> ws;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      ws.swap(waiters_);
    }
    asio::post(strand_, [self = this->shared_from_this()] { self->timer_.cancel(); });
    for (auto& w : ws) w(nullptr, "credential provider stopped");
  }

  provider_stats stats() const {
    provider_stats s;
    s.requests = requests_.load(std::memory_order_relaxed);
    s.failures = failures_.load(std::memory_order_relaxed);
    s.refreshes = refreshes_.load(std::memory_order_relaxed);
    {
      std::lock_guard lock(mu_);
      s.source = source_;
      s.last_error = last_error_;
    }
    if (auto e = load_entry()) s.expiration = e->value->expiration;
    s.valid = current() != nullptr;
    return s;
  }

  std::string source() const {
    std::lock_guard lock(mu_);
    return source_;
  }

 private:
  struct entry {
    std::shared_ptr<const V> value;
    sys_clock::time_point valid_until;
  };

  std::shared_ptr<const entry> load_entry() const {
    std::lock_guard lock(entry_mu_);
    return entry_;
  }
  void store_entry(std::shared_ptr<const entry> e) {
    {
      std::lock_guard lock(entry_mu_);
      entry_.swap(e);
    }
    // `e` (the old entry) is released here, outside the lock.
  }

  // On the strand.
  void run(bool background) {
    requests_.fetch_add(1, std::memory_order_relaxed);
    if (background) refreshes_.fetch_add(1, std::memory_order_relaxed);
    auto self = this->shared_from_this();
    auto once = std::make_shared<std::atomic<bool>>(false);
    resolve_(background, [self, once, background](outcome o) {
      if (once->exchange(true)) return;  // a resolver bug must not corrupt the state
      asio::dispatch(self->strand_, [self, o = std::move(o), background]() mutable {
        self->complete(std::move(o), background);
      });
    });
  }

  std::chrono::milliseconds backoff(unsigned consecutive) const {
    auto d = policy_.retry_min;
    for (unsigned i = 1; i < consecutive && d < policy_.retry_max; ++i) d *= 2;
    return std::min(d, policy_.retry_max);
  }

  // On the strand.
  void complete(outcome o, bool background) {
    std::vector<waiter> ws;
    std::string log_line;
    log::level log_level = log::level::debug;
    std::shared_ptr<const V> give;
    std::string err;
    auto now = sys_clock::now();
    if (o.value && o.value->expiration <= now) {
      o.error = "credentials from " + o.source + " were already expired when received (is the clock right?)";
      o.value.reset();
    }
    {
      std::lock_guard lock(mu_);
      in_flight_ = false;
      ws.swap(waiters_);
      if (stopped_) {
        err = "credential provider stopped";
      } else if (o.value) {
        auto e = std::make_shared<entry>();
        e->value = o.value;
        std::chrono::system_clock::time_point refresh_at = sys_clock::time_point::max();
        if (o.value->expiration == sys_clock::time_point::max()) {
          e->valid_until = sys_clock::time_point::max();
        } else {
          auto life = o.value->expiration - now;
          auto margin = std::min<sys_clock::duration>(policy_.expiry_margin, life / 10);
          e->valid_until = o.value->expiration - margin;
          auto early = std::min<sys_clock::duration>(
              policy_.refresh_before,
              std::chrono::duration_cast<sys_clock::duration>(life * (1.0 - policy_.refresh_at_fraction)));
          refresh_at = o.value->expiration - early;
        }
        store_entry(std::move(e));
        // Sources and expiry times only: never a key, secret or token.
        log_level = (!background || consecutive_failures_ > 0 || source_ != o.source) ? log::level::info
                                                                                       : log::level::debug;
        log_line = name_ + (background ? ": refreshed from " : ": obtained from ") + o.source +
                   ", expires " + format_iso8601(o.value->expiration);
        source_ = o.source;
        last_error_.clear();
        consecutive_failures_ = 0;
        cooldown_until_ = {};
        ever_ok_ = true;
        give = o.value;
        if (refresh_at != sys_clock::time_point::max()) arm(refresh_at - now);
      } else {
        failures_.fetch_add(1, std::memory_order_relaxed);
        ++consecutive_failures_;
        last_error_ = o.error.empty() ? "credential resolution failed" : o.error;
        auto wait = backoff(consecutive_failures_);
        cooldown_until_ = steady::now() + std::min(wait, policy_.failure_cooldown_max);
        if (ever_ok_) arm(wait);  // keep trying while the old value may still serve
        give = current();          // raced with expiry: a still-valid old value is fine
        err = last_error_;
        // Error texts are built to be loggable: codes, messages, URLs' origins, paths.
        log_level = log::level::warn;
        bool named = last_error_.rfind(name_, 0) == 0;  // already says what it is about
        log_line = background ? name_ + ": refresh failed: " + last_error_
                              : (named ? last_error_ : name_ + ": " + last_error_);
        if (ever_ok_)
          log_line += " (retrying in " + std::to_string(wait.count()) + " ms" +
                      (give ? ", the current value stays in use until near its expiry)" : ")");
      }
    }
    if (!log_line.empty() && log::enabled(log_level)) log::write(log_level, log_line);
    for (auto& w : ws) {
      if (give)
        w(give, {});
      else
        w(nullptr, err);
    }
  }

  // On the strand, under mu_.
  template <class Duration>
  void arm(Duration d) {
    if (d < Duration::zero()) d = Duration::zero();
    timer_.expires_after(std::chrono::duration_cast<steady::duration>(d));
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (ec) return;
      {
        std::lock_guard lock(self->mu_);
        if (self->stopped_ || self->in_flight_) return;
        self->in_flight_ = true;
      }
      self->run(true);
    });
  }

  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  std::string name_;
  refresh_policy policy_;
  resolve_fn resolve_;
  mutable std::mutex entry_mu_;  // guards entry_ only; when both are held, mu_ is taken first
  std::shared_ptr<const entry> entry_;
  std::atomic<std::uint64_t> requests_{0}, failures_{0}, refreshes_{0};
  mutable std::mutex mu_;
  bool stopped_ = false;
  bool in_flight_ = false;
  bool ever_ok_ = false;
  unsigned consecutive_failures_ = 0;
  steady::time_point cooldown_until_{};
  std::vector<waiter> waiters_;
  std::string source_;
  std::string last_error_;
};

}  // namespace gw::credentials::detail

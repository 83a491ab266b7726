#pragma once
/// The data plane's threads: N io threads, each running its own io_context
/// (shared-nothing, like Seastar's per-core design). Everything a connection owns
/// lives on the thread that accepted it; other threads only `post` to it.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "gw/http/asio.hpp"

namespace gw::http {

class upstream_pool;

/// Something with a deadline, swept by its io thread. io-thread owned.
class deadline_target {
 public:
  using clock = std::chrono::steady_clock;
  virtual ~deadline_target() = default;
  /// Called on the io thread once the deadline has passed; must close/cancel I/O.
  virtual void on_deadline() = 0;
  /// Called on the io thread when the server starts draining (SIGTERM).
  virtual void on_drain() {}

  void set_deadline(clock::time_point t) noexcept { deadline_ = t; }
  void set_timeout(clock::duration d) noexcept { deadline_ = clock::now() + d; }
  void clear_deadline() noexcept { deadline_ = clock::time_point::max(); }
  clock::time_point deadline() const noexcept { return deadline_; }

 private:
  clock::time_point deadline_ = clock::time_point::max();
};

/// One io thread's state. Owned by that thread; `io` may be posted to from anywhere.
class io_thread {
 public:
  io_thread(std::size_t index, std::chrono::milliseconds sweep_interval);
  ~io_thread();
  io_thread(const io_thread&) = delete;
  io_thread& operator=(const io_thread&) = delete;

  asio::io_context& io() noexcept { return *io_; }
  std::size_t index() const noexcept { return index_; }
  upstream_pool& pool() noexcept { return *pool_; }

  /// Registers a target for deadline sweeps and drain notices (io thread only).
  /// Held weakly: a target that is gone is simply dropped from the list.
  void watch(std::weak_ptr<deadline_target> t);
  /// Calls on_drain() on every live target (io thread only).
  void drain_all();
  /// Runs `f` on this io thread at every sweep (every 50 ms). Call before start().
  void add_tick_hook(std::function<void()> f) { tick_hooks_.push_back(std::move(f)); }

  /// The io_thread running on the calling thread, or nullptr.
  static io_thread* current() noexcept;

 private:
  friend class io_threads;
  void run();
  void schedule_sweep();
  void sweep();

  void destroy();

  std::unique_ptr<asio::io_context> io_ = std::make_unique<asio::io_context>(1);
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::optional<asio::steady_timer> sweep_timer_{std::in_place, *io_};
  std::chrono::milliseconds sweep_interval_;
  std::vector<std::weak_ptr<deadline_target>> targets_;
  std::vector<std::function<void()>> tick_hooks_;
  std::unique_ptr<upstream_pool> pool_;
  std::size_t index_;
  std::thread thread_;
};

/// The set of io threads.
class io_threads {
 public:
  explicit io_threads(std::size_t n,
                      std::chrono::milliseconds sweep_interval = std::chrono::milliseconds(50));
  ~io_threads();
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  void start();
  /// Stops every io_context and joins the threads. Pending handlers stay queued.
  void stop();
  /// After stop(): destroys the io_contexts and with them every pending handler (and
  /// the sessions and calls they hold). Whatever those refer to must still be alive;
  /// sockets owned elsewhere (acceptors) must be gone. Idempotent.
  void destroy();

  std::size_t size() const noexcept { return threads_.size(); }
  io_thread& operator[](std::size_t i) noexcept { return *threads_[i]; }
  /// Runs `f(io_thread&)` on each io thread (posted) and waits for all to finish.
  template <class F>
  void run_on_each(F f);

 private:
  std::vector<std::unique_ptr<io_thread>> threads_;
  bool started_ = false;
};

}  // namespace gw::http

#include <future>

namespace gw::http {
template <class F>
void io_threads::run_on_each(F f) {
  std::vector<std::future<void>> done;
  for (auto& t : threads_) {
    auto p = std::make_shared<std::promise<void>>();
    done.push_back(p->get_future());
    asio::post(t->io(), [p, &f, th = t.get()] {
      f(*th);
      p->set_value();
    });
  }
  for (auto& d : done) d.wait();
}
}  // namespace gw::http

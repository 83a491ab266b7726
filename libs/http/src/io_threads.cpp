#include "gw/http/io_threads.hpp"

#include <algorithm>

#include "gw/http/upstream.hpp"

namespace gw::http {
namespace {
thread_local io_thread* t_current = nullptr;
}

io_thread::io_thread(std::size_t index, std::chrono::milliseconds sweep_interval)
    : sweep_interval_(sweep_interval), pool_(std::make_unique<upstream_pool>(*this)), index_(index) {}

io_thread::~io_thread() { destroy(); }

void io_thread::destroy() {
  // Sockets and timers first, then the context with its queued handlers.
  targets_.clear();
  pool_.reset();
  sweep_timer_.reset();
  io_.reset();
}

io_thread* io_thread::current() noexcept { return t_current; }

void io_thread::watch(std::weak_ptr<deadline_target> t) { targets_.push_back(std::move(t)); }

void io_thread::drain_all() {
  // Copy first: on_drain may close things that unregister or register targets.
  auto snapshot = targets_;
  for (auto& w : snapshot)
    if (auto t = w.lock()) t->on_drain();
}

void io_thread::run() {
  t_current = this;
  schedule_sweep();
  io_->run();
  t_current = nullptr;
}

void io_thread::schedule_sweep() {
  sweep_timer_->expires_after(sweep_interval_);
  sweep_timer_->async_wait([this](error_code ec) {
    if (ec) return;
    sweep();
    schedule_sweep();
  });
}

void io_thread::sweep() {
  auto now = deadline_target::clock::now();
  // Fire expired deadlines; compact away targets that are gone.
  std::size_t keep = 0;
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    auto t = targets_[i].lock();
    if (!t) continue;
    if (t->deadline() <= now) {
      t->clear_deadline();
      t->on_deadline();
    }
    if (keep != i) targets_[keep] = std::move(targets_[i]);
    ++keep;
  }
  // The loop re-reads size(): targets added by on_deadline() were visited too.
  targets_.erase(targets_.begin() + static_cast<std::ptrdiff_t>(keep), targets_.end());
  pool_->sweep(now);
  for (auto& f : tick_hooks_) f();
}

io_threads::io_threads(std::size_t n, std::chrono::milliseconds sweep_interval) {
  if (n == 0) n = 1;
  threads_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) threads_.push_back(std::make_unique<io_thread>(i, sweep_interval));
}

io_threads::~io_threads() {
  stop();
  destroy();
}

void io_threads::start() {
  if (started_) return;
  started_ = true;
  for (auto& t : threads_) {
    t->work_.emplace(asio::make_work_guard(*t->io_));
    t->thread_ = std::thread([th = t.get()] { th->run(); });
  }
}

void io_threads::stop() {
  for (auto& t : threads_) {
    t->work_.reset();
    if (t->io_) t->io_->stop();
  }
  for (auto& t : threads_)
    if (t->thread_.joinable()) t->thread_.join();
}

void io_threads::destroy() {
  for (auto& t : threads_) t->destroy();
}

}  // namespace gw::http

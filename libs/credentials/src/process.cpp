#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cerrno>
#include <memory>
#include <system_error>

extern char** environ;

namespace gw::credentials::detail {
namespace {

using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

std::string errno_text(int e) { return std::system_category().message(e); }

/// After SIGKILL a child normally dies at once; one stuck in the kernel (D state) is
/// not waited for longer than this before the caller gets its answer.
constexpr auto kill_grace = std::chrono::seconds(2);

class process_op : public std::enable_shared_from_this<process_op> {
 public:
  process_op(asio::io_context& io, process_request req, std::function<void(process_result)> cb)
      : strand_(asio::make_strand(io)),
        req_(std::move(req)),
        cb_(std::move(cb)),
        out_(strand_),
        err_(strand_),
        deadline_(strand_),
        reap_timer_(strand_) {}

  process_op(const process_op&) = delete;
  process_op& operator=(const process_op&) = delete;

  // Runs when the last handler is gone: normally after reaping; early only when the
  // io_context is destroyed with the child still running (shutdown).
  ~process_op() {
    if (pid_ <= 0 || reaped_) return;
    kill_group();
    for (int i = 0; i < 200 && !try_wait(); ++i) ::usleep(1000);
  }

  asio::strand<asio::io_context::executor_type>& strand() { return strand_; }

  void start() {
    if (req_.argv.empty() || req_.argv[0].empty()) return fail_to_start("empty command");
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    // O_CLOEXEC: a child spawned concurrently by another thread must not inherit our
    // write ends (our reads would then never see end-of-file).
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail_to_start("pipe: " + errno_text(errno));
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
      int e = errno;
      ::close(out_pipe[0]);
      ::close(out_pipe[1]);
      return fail_to_start("pipe: " + errno_text(e));
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // The gateway may block or ignore signals (SIGPIPE); the helper must start clean.
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2})
      sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    // Its own process group: a timeout kills whatever the helper started too (a shell
    // script's children would otherwise keep running, and keep our pipes open).
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    std::vector<char*> argv;
    for (auto& a : req_.argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (rc != 0) {
      ::close(out_pipe[0]);
      ::close(err_pipe[0]);
      return fail_to_start("cannot run '" + req_.argv[0] + "': " + errno_text(rc));
    }
    pid_ = pid;
    error_code ec;
    out_.assign(out_pipe[0], ec);
    if (ec) ::close(out_pipe[0]);
    error_code ec2;
    err_.assign(err_pipe[0], ec2);
    if (ec2) ::close(err_pipe[0]);
    if (ec || ec2) {  // cannot happen for pipes; be safe anyway
      kill_child("cannot watch its output: " + (ec ? ec : ec2).message());
      out_open_ = err_open_ = false;  // no reads pending
      return maybe_reap();
    }
    deadline_.expires_after(req_.timeout);
    deadline_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->delivered_ || self->killed_) return;
      self->kill_child("timed out after " + std::to_string(self->req_.timeout.count()) + " ms");
    });
    read_out();
    read_err();
  }

 private:
  void fail_to_start(std::string msg) {
    result_.error = std::move(msg);
    deliver();
  }

  void read_out() {
    out_.async_read_some(asio::buffer(out_buf_), [self = shared_from_this()](error_code ec, std::size_t n) {
      auto& out = self->result_.out;
      if (n > 0 && !self->killed_) {
        if (out.size() + n > self->req_.max_stdout) {
          self->kill_child("wrote more than " + std::to_string(self->req_.max_stdout) + " bytes to stdout");
        } else {
          out.append(self->out_buf_.data(), n);
        }
      }
      if (ec || self->killed_) {
        self->out_open_ = false;
        return self->maybe_reap();
      }
      self->read_out();
    });
  }

  void read_err() {
    err_.async_read_some(asio::buffer(err_buf_), [self = shared_from_this()](error_code ec, std::size_t n) {
      auto& err = self->result_.err;
      // Read on past the cap (dropping the bytes): a child blocked on a full stderr pipe
      // would never finish.
      if (n > 0 && err.size() < self->req_.max_stderr)
        err.append(self->err_buf_.data(), std::min(n, self->req_.max_stderr - err.size()));
      if (ec || self->killed_) {
        self->err_open_ = false;
        return self->maybe_reap();
      }
      self->read_err();
    });
  }

  void kill_group() {
    if (pid_ <= 0 || reaped_) return;  // a reaped pid may belong to someone else now
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
  }

  void kill_child(std::string why) {
    if (killed_) return;
    killed_ = true;
    killed_at_ = steady::now();
    if (result_.error.empty()) result_.error = std::move(why);
    kill_group();
    error_code ignored;
    out_.close(ignored);  // pending reads complete with operation_aborted
    err_.close(ignored);
  }

  /// Both pipes are closed: the child has exited or is about to; poll for its status.
  void maybe_reap() {
    if (out_open_ || err_open_ || reaping_) return;
    reaping_ = true;
    poll_reap(0);
  }

  void poll_reap(int attempt) {
    if (try_wait()) return finish();
    if (killed_ && !delivered_ && steady::now() - killed_at_ > kill_grace) deliver();
    // 1, 2, 4 ... 64 ms: a helper usually exits right after closing its output. The
    // deadline (still armed) kills one that lingers.
    auto delay = std::chrono::milliseconds(1 << std::min(attempt, 6));
    if (delivered_) delay = std::chrono::milliseconds(1000);
    reap_timer_.expires_after(delay);
    reap_timer_.async_wait([self = shared_from_this(), attempt](error_code ec) {
      if (ec) return;
      self->poll_reap(attempt + 1);
    });
  }

  /// True once the child's status is known (or cannot be: ECHILD).
  bool try_wait() {
    if (reaped_) return true;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) result_.signal = WTERMSIG(status);
      return true;
    }
    if (r < 0 && errno != EINTR) {
      // ECHILD: someone else reaped it (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere).
      reaped_ = true;
      if (result_.error.empty()) result_.error = "exit status unavailable (waitpid: " + errno_text(errno) + ")";
      return true;
    }
    return false;
  }

  void finish() {
    deadline_.cancel();
    reap_timer_.cancel();
    deliver();
  }

  void deliver() {
    if (delivered_) return;
    delivered_ = true;
    auto cb = std::move(cb_);
    if (cb) cb(result_);
  }

  asio::strand<asio::io_context::executor_type> strand_;
  process_request req_;
  std::function<void(process_result)> cb_;
  asio::posix::stream_descriptor out_, err_;
  asio::steady_timer deadline_, reap_timer_;
  std::array<char, 8192> out_buf_{}, err_buf_{};
  process_result result_;
  pid_t pid_ = -1;
  bool out_open_ = true, err_open_ = true;
  bool reaping_ = false, reaped_ = false, killed_ = false, delivered_ = false;
  steady::time_point killed_at_{};
};

}  // namespace

void run_process(asio::io_context& io, process_request req, std::function<void(process_result)> cb) {
  auto op = std::make_shared<process_op>(io, std::move(req), std::move(cb));
  asio::post(op->strand(), [op] { op->start(); });
}

}  // namespace gw::credentials::detail

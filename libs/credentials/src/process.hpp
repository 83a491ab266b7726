#pragma once
// Runs a helper program (credential_process) without blocking the io_context: spawned
// with posix_spawnp (no shell), stdout and stderr read through pipes wrapped in
// asio::posix::stream_descriptor, a steady_timer as the deadline. On timeout (or too
// much output) the child's whole process group is killed; the child is always reaped
// (polled with waitpid(WNOHANG): a SIGCHLD handler would be process-wide).

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "gw/http/asio.hpp"

namespace gw::credentials::detail {

namespace asio = boost::asio;

struct process_request {
  std::vector<std::string> argv;  ///< argv[0] is looked up in PATH
  std::chrono::milliseconds timeout{10000};
  std::size_t max_stdout = 64 * 1024;  ///< more: the child is killed, an error
  std::size_t max_stderr = 4 * 1024;   ///< kept for messages; the rest is read and dropped
};

struct process_result {
  /// Set when the program did not run to its end: "cannot run 'x': ...", "timed out
  /// after N ms", "wrote more than N bytes to stdout", ...
  std::string error;
  int exit_code = -1;  ///< when it exited
  int signal = 0;      ///< when a signal ended it
  std::string out;     ///< stdout (secrets: never for messages)
  std::string err;     ///< the first max_stderr bytes of stderr
};

/// Starts the program; `cb` runs exactly once on a thread running `io` (never inside this
/// call), after the child was reaped (or, if it resists SIGKILL for seconds, without
/// waiting further: reaping goes on in the background). stdin is /dev/null; the child
/// inherits the process environment and starts in its own process group with default
/// signal handling and an empty signal mask. If `io` is destroyed first, the child is
/// killed and reaped then and `cb` is not called.
void run_process(asio::io_context& io, process_request req, std::function<void(process_result)> cb);

}  // namespace gw::credentials::detail

#include "healthcheck.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace gw::app {
namespace {

using clock = std::chrono::steady_clock;

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

int ms_left(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

/// Waits for `events` on fd until the deadline; false on timeout or error.
bool wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int left = ms_left(deadline);
    if (left == 0) return false;
    int r = ::poll(&p, 1, left);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

int http_get_status(const std::string& host, std::uint16_t port, const std::string& path, int timeout_ms,
                    std::string& why) {
  auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    why = "cannot resolve " + host + ": " + ::gai_strerror(rc);
    return 0;
  }
  why = "no address for " + host;
  fd_guard sock;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd_guard s;
    s.fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (s.fd < 0) continue;
    int rc = ::connect(s.fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (!wait_for(s.fd, POLLOUT, deadline)) {
        why = "timed out connecting to " + host + ":" + service;
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      why = "cannot connect to " + host + ":" + service + ": " + std::strerror(errno);
      continue;
    }
    sock.fd = s.fd;
    s.fd = -1;
    break;
  }
  ::freeaddrinfo(res);
  if (sock.fd < 0) return 0;

  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host + ":" + service +
                    "\r\nUser-Agent: llm-gateway-healthcheck\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(sock.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(sock.fd, POLLOUT, deadline)) {
        why = "timed out sending the request";
        return 0;
      }
    } else {
      why = std::string("cannot send the request: ") + std::strerror(errno);
      return 0;
    }
  }
  // The status line is all we need: "HTTP/1.1 200 OK\r\n".
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    ssize_t n = ::recv(sock.fd, buf, sizeof buf, 0);
    if (n > 0) {
      head.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_for(sock.fd, POLLIN, deadline)) {
        why = "timed out waiting for the answer";
        return 0;
      }
    } else {
      why = std::string("cannot read the answer: ") + std::strerror(errno);
      return 0;
    }
  }
  // "HTTP/1.x NNN"
  if (head.size() < 12 || head.compare(0, 7, "HTTP/1.") != 0 || head[8] != ' ') {
    why = "not an HTTP answer";
    return 0;
  }
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') {
      why = "not an HTTP status";
      return 0;
    }
    status = status * 10 + (head[i] - '0');
  }
  return status;
}

}  // namespace gw::app

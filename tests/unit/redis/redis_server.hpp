#pragma once
// What the Redis tests share (the connection's and the limiter's): a redis-server child
// process (Debian's) on an ephemeral port in a temporary directory, optionally on TLS
// with a test CA; a blocking hiredis client to look at keys directly; running an
// io_context until a condition holds.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // before Asio (Boost 1.74 + GCC 12 in C++20)
#include <boost/asio/io_context.hpp>

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace gw::redis::test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A CA and a server certificate for localhost / 127.0.0.1 signed by it, plus a second,
/// unrelated CA (for verification failures), made with the openssl CLI in `dir`.
struct test_ca {
  std::string ca, cert, key, other_ca;
  /// False when the openssl CLI failed (or is missing).
  bool make(const std::filesystem::path& dir) {
    auto p = [&](const char* n) { return (dir / n).string(); };
    ca = p("ca.pem");
    cert = p("server.pem");
    key = p("server.key");
    other_ca = p("other-ca.pem");
    std::string ext = p("san.ext");
    std::string q = " >/dev/null 2>&1";
    std::string cmds[] = {
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > " + ext,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + p("ca.key") + " -out " + ca +
            " -days 2 -subj '/CN=llm-gateway test CA'" + q,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + p("other-ca.key") + " -out " + other_ca +
            " -days 2 -subj '/CN=unrelated CA'" + q,
        "openssl req -newkey rsa:2048 -nodes -keyout " + key + " -out " + p("server.csr") + " -subj /CN=localhost" + q,
        "openssl x509 -req -in " + p("server.csr") + " -CA " + ca + " -CAkey " + p("ca.key") +
            " -CAcreateserial -out " + cert + " -days 2 -extfile " + ext + q,
    };
    for (auto& c : cmds)
      if (std::system(c.c_str()) != 0) return false;
    return true;
  }
};

/// A redis-server child process (no persistence), killed with the object. With a CA,
/// it listens on TLS only (the plain port closed; clients need no certificate).
class redis_server {
 public:
  explicit redis_server(int port, std::string password = {}, const test_ca* tls = nullptr)
      : port_(port), password_(std::move(password)), tls_(tls) {
    char tmpl[] = "/tmp/gw-redis-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    start();
  }
  ~redis_server() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  /// Starts it and waits until it answers PING (NOAUTH counts as an answer); on TLS,
  /// until it accepts connections.
  void start() {
    std::string port = std::to_string(port_), log = (dir_ / "redis.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<const char*> argv{"redis-server", "--bind",      "127.0.0.1",  "--save",     "",
                                    "--appendonly", "no",          "--dir",      dir_.c_str(), "--daemonize",
                                    "no",           "--loglevel",  "warning"};
      if (tls_) {
        for (const char* a : {"--port", "0", "--tls-port", port.c_str(), "--tls-cert-file", tls_->cert.c_str(),
                              "--tls-key-file", tls_->key.c_str(), "--tls-ca-cert-file", tls_->ca.c_str(),
                              "--tls-auth-clients", "no"})
          argv.push_back(a);
      } else {
        argv.push_back("--port");
        argv.push_back(port.c_str());
      }
      if (!password_.empty()) {
        argv.push_back("--requirepass");
        argv.push_back(password_.c_str());
      }
      argv.push_back(nullptr);
      ::execvp("redis-server", const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    auto end = steady::now() + 5s;
    while (steady::now() < end) {
      if (ping()) return;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "redis-server did not start on port " << port_;
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }
  int port() const { return port_; }

 private:
  bool ping() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      if (tls_) {
        ok = true;
      } else if (::write(fd, "PING\r\n", 6) == 6) {
        char buf[64];
        auto n = ::read(fd, buf, sizeof buf);
        ok = n > 0 && (buf[0] == '+' || buf[0] == '-');
      }
    }
    ::close(fd);
    return ok;
  }
  int port_;
  std::string password_;
  const test_ca* tls_;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

/// A blocking hiredis connection for looking at (and writing) keys directly.
class raw_client {
 public:
  explicit raw_client(int port, const char* password = nullptr) {
    timeval tv{2, 0};
    c_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (password) run({"AUTH", password});
  }
  ~raw_client() {
    if (c_) redisFree(c_);
  }
  /// The reply as text (integers in decimal, nil as "(nil)", errors as "ERR: ...").
  std::string run(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> argl;
    for (auto& a : args) {
      argv.push_back(a.data());
      argl.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), argl.data()));
    if (!r) return "ERR: no reply";
    std::string out;
    switch (r->type) {
      case REDIS_REPLY_INTEGER: out = std::to_string(r->integer); break;
      case REDIS_REPLY_NIL: out = "(nil)"; break;
      case REDIS_REPLY_ERROR: out = "ERR: " + std::string(r->str, r->len); break;
      case REDIS_REPLY_ARRAY: out = std::to_string(r->elements) + " elements"; break;
      default: out.assign(r->str, r->len);
    }
    freeReplyObject(r);
    return out;
  }
  /// Redis's clock in ms.
  std::int64_t now_ms() {
    auto* r = static_cast<redisReply*>(redisCommand(c_, "TIME"));
    std::int64_t ms = std::stoll(r->element[0]->str) * 1000 + std::stoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
  }

 private:
  redisContext* c_ = nullptr;
};

/// Runs `io` on this thread until `done()` or `limit` passed.
template <class F>
bool run_until(boost::asio::io_context& io, F done, std::chrono::milliseconds limit = 5s) {
  auto end = steady::now() + limit;
  while (!done() && steady::now() < end) {
    io.restart();
    io.run_for(2ms);
  }
  return done();
}
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  run_until(io, [] { return false; }, d);
}

}  // namespace gw::redis::test

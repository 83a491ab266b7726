// gw-loadgen: an open-loop HTTP/1.1 load generator for the benchmarks.
//
// Requests are scheduled at a fixed rate and each latency is measured from the time
// the request was *due*, not from when a connection was free to send it, so a stall
// shows up in the percentiles instead of silently lowering the rate (coordinated
// omission, as wrk2 corrects it). Modes:
//   rate    fixed-rate requests; latency to the complete response
//   stream  fixed-rate streamed requests; time to the first body byte and to the end
//   hold    open N streams, wait until each has received data, report, and hold them
// Output: one JSON object on stdout.
#include <utility>

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using clk = std::chrono::steady_clock;

namespace {

struct options {
  std::string mode = "rate";
  std::string host = "127.0.0.1";
  std::string port = "80";
  std::string path = "/";
  std::string body;
  std::vector<std::string> headers;
  double rate = 1000;
  double duration = 10;
  double warmup = 1;
  int connections = 32;
  double hold = 30;
  std::string ready_file;
  double timeout = 30;
};

std::string request_bytes(const options& o) {
  std::string r = "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + o.port +
                  "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(o.body.size()) + "\r\n";
  for (auto& h : o.headers) r += h + "\r\n";
  r += "\r\n";
  r += o.body;
  return r;
}

struct sample {
  std::uint32_t first_us;  // to the first body byte (stream mode) or to the full response
  std::uint32_t total_us;
};

struct shared {
  asio::io_context& io;
  options opt;
  std::string req;
  tcp::endpoint ep;
  clk::time_point start, measure_from, stop_at;
  std::deque<clk::time_point> due;  // requests waiting for a connection
  std::vector<sample> samples;
  std::uint64_t sent = 0, ok = 0, errors = 0, non2xx = 0, warm = 0;
  std::uint64_t established = 0;  // hold mode
  bool stopping = false;
};

class conn : public std::enable_shared_from_this<conn> {
 public:
  conn(shared& s) : s_(s), sock_(s.io) {}

  void connect(std::function<void(bool)> done) {
    sock_.async_connect(s_.ep, [self = shared_from_this(), done = std::move(done)](error_code ec) {
      if (!ec) {
        self->sock_.set_option(tcp::no_delay(true));
        self->idle_ = true;
      }
      done(!ec);
    });
  }

  bool idle() const { return idle_; }

  void send(clk::time_point due) {
    if (watching_) {
      watching_ = false;
      error_code ignored;
      sock_.cancel(ignored);  // stop the idle watch; its handler sees operation_aborted
    }
    idle_ = false;
    due_ = due;
    got_first_ = false;
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    asio::async_write(sock_, asio::buffer(s_.req), [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->fail();
      self->read_some();
    });
  }

  std::function<void()> on_idle;

 private:
  void read_some() {
    parser_->get().body().data = buf_;
    parser_->get().body().size = sizeof buf_;
    bhttp::async_read_some(sock_, flat_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) return self->fail();
      auto& p = *self->parser_;
      std::size_t got = sizeof self->buf_ - p.get().body().size;
      if (!self->got_first_ && (got > 0 || p.is_done()) && p.is_header_done()) {
        self->got_first_ = true;
        self->first_ = clk::now();
        if (self->s_.opt.mode == "hold") ++self->s_.established;
      }
      if (!p.is_done()) return self->read_some();
      self->complete();
    });
  }

  void complete() {
    auto now = clk::now();
    auto status = parser_->get().result_int();
    if (due_ >= s_.measure_from) {
      if (status / 100 == 2) {
        ++s_.ok;
        auto us = [&](clk::time_point t) {
          return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(t - due_).count());
        };
        s_.samples.push_back({us(got_first_ ? first_ : now), us(now)});
      } else {
        ++s_.non2xx;
      }
    } else {
      ++s_.warm;
    }
    idle_ = true;
    reused_ = true;
    if (!parser_->get().keep_alive()) {
      error_code ignored;
      sock_.close(ignored);
      reconnect();
      return;
    }
    watch_idle();
    if (on_idle) on_idle();
  }

  /// While idle, notice a server closing the connection (keep-alive timeout) and
  /// reconnect, as HTTP clients do, instead of failing the next request on it.
  void watch_idle() {
    if (s_.opt.mode == "hold") return;
    watching_ = true;
    sock_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (ec == asio::error::operation_aborted || !self->watching_ || !self->idle_) return;
      self->watching_ = false;
      error_code ignored;
      self->sock_.close(ignored);
      self->reconnect();
    });
  }

  void fail() {
    if (s_.stopping && s_.opt.mode == "hold") return;
    if (reused_ && !parser_->got_some() && s_.opt.mode != "hold") {
      // The server closed this kept-alive connection as we sent (its idle timeout):
      // nothing was answered, so send the request again, as HTTP clients do. Its
      // latency still counts from its due time.
      s_.due.push_front(due_);
      error_code ignored;
      sock_.close(ignored);
      reconnect();
      return;
    }
    ++s_.errors;
    error_code ignored;
    sock_.close(ignored);
    reconnect();
  }

  void reconnect() {
    idle_ = false;
    reused_ = false;
    sock_ = tcp::socket(s_.io);
    connect([self = shared_from_this()](bool ok) {
      if (ok && self->on_idle) self->on_idle();
    });
  }

  shared& s_;
  tcp::socket sock_;
  beast::flat_buffer flat_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  char buf_[16384];
  bool idle_ = false, got_first_ = false, watching_ = false, reused_ = false;
  clk::time_point due_, first_;
};

double pct(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))) ;
  if (i > 0) --i;
  return v[std::min(i, v.size() - 1)];
}

std::string summary(std::vector<std::uint32_t> v) {
  std::sort(v.begin(), v.end());
  double mean = 0;
  for (auto x : v) mean += x;
  if (!v.empty()) mean /= static_cast<double>(v.size());
  std::ostringstream o;
  o << "{\"p50_us\":" << pct(v, 50) << ",\"p90_us\":" << pct(v, 90) << ",\"p99_us\":" << pct(v, 99)
    << ",\"p999_us\":" << pct(v, 99.9) << ",\"max_us\":" << (v.empty() ? 0 : v.back()) << ",\"mean_us\":" << mean
    << "}";
  return o.str();
}

bool parse(int argc, char** argv, options& o) {
  std::string url;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + a);
      return argv[++i];
    };
    if (a == "--mode") o.mode = next();
    else if (a == "--url") url = next();
    else if (a == "--body-file") {
      std::ifstream f(next(), std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      o.body = ss.str();
    } else if (a == "--body") o.body = next();
    else if (a == "--header") o.headers.push_back(next());
    else if (a == "--rate") o.rate = std::stod(next());
    else if (a == "--duration") o.duration = std::stod(next());
    else if (a == "--warmup") o.warmup = std::stod(next());
    else if (a == "--connections") o.connections = std::stoi(next());
    else if (a == "--hold") o.hold = std::stod(next());
    else if (a == "--ready-file") o.ready_file = next();
    else if (a == "--timeout") o.timeout = std::stod(next());
    else throw std::runtime_error("unknown option " + a);
  }
  // http://host:port/path
  if (url.rfind("http://", 0) != 0) throw std::runtime_error("--url must be http://host:port/path");
  auto rest = url.substr(7);
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  o.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  o.host = hostport.substr(0, colon);
  o.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    parse(argc, argv, o);
  } catch (const std::exception& e) {
    std::cerr << "gw-loadgen: " << e.what() << "\n";
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  asio::io_context io(1);
  shared s{io, o, request_bytes(o)};
  s.ep = *tcp::resolver(io).resolve(o.host, o.port).begin();
  std::vector<std::shared_ptr<conn>> conns;
  asio::steady_timer timer(io);

  if (o.mode == "hold") {
    // Open the streams in waves so the listen backlog is never overrun.
    auto opened = std::make_shared<int>(0);
    std::function<void()> open_more;
    open_more = [&]() {
      int wave = std::min(200, o.connections - *opened);
      for (int i = 0; i < wave; ++i) {
        auto c = std::make_shared<conn>(s);
        conns.push_back(c);
        c->connect([c, &s](bool ok) {
          if (ok) c->send(clk::now());
          else ++s.errors;
        });
      }
      *opened += wave;
    };
    s.start = clk::now();
    s.measure_from = s.start;
    auto deadline = s.start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.timeout));
    std::function<void(error_code)> tick;
    bool reported = false;
    tick = [&](error_code) {
      auto now = clk::now();
      if (*opened < o.connections && static_cast<int>(s.established) + 400 >= *opened) open_more();
      if (!reported && (static_cast<int>(s.established) >= o.connections || now > deadline)) {
        reported = true;
        double secs = std::chrono::duration<double>(now - s.start).count();
        std::ostringstream r;
        r << "{\"mode\":\"hold\",\"requested\":" << o.connections << ",\"established\":" << s.established
          << ",\"errors\":" << s.errors << ",\"seconds_to_establish\":" << secs << "}";
        std::cout << r.str() << std::endl;
        if (!o.ready_file.empty()) {
          std::ofstream(o.ready_file + ".tmp") << r.str() << "\n";
          std::rename((o.ready_file + ".tmp").c_str(), o.ready_file.c_str());
        }
        s.stop_at = now + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.hold));
      }
      if (reported && now >= s.stop_at) {
        s.stopping = true;
        io.stop();
        return;
      }
      timer.expires_after(std::chrono::milliseconds(20));
      timer.async_wait(tick);
    };
    open_more();
    timer.expires_after(std::chrono::milliseconds(20));
    timer.async_wait(tick);
    io.run();
    return 0;
  }

  // rate / stream: C keep-alive connections, requests due at fixed intervals.
  std::function<void()> dispatch = [&]() {
    for (auto& c : conns) {
      if (s.due.empty()) return;
      if (!c->idle()) continue;
      auto d = s.due.front();
      s.due.pop_front();
      ++s.sent;
      c->send(d);
    }
  };
  int connected = 0;
  for (int i = 0; i < o.connections; ++i) {
    auto c = std::make_shared<conn>(s);
    c->on_idle = [&]() { dispatch(); };
    conns.push_back(c);
    c->connect([&connected](bool ok) {
      if (ok) ++connected;
    });
  }
  io.run_for(std::chrono::seconds(5));
  io.restart();
  if (connected < o.connections) {
    std::cerr << "gw-loadgen: only " << connected << " of " << o.connections << " connections opened\n";
    return 1;
  }
  s.start = clk::now();
  auto interval = std::chrono::duration<double>(1.0 / o.rate);
  s.measure_from = s.start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.warmup));
  s.stop_at = s.measure_from + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.duration));
  std::uint64_t scheduled = 0;
  std::function<void(error_code)> tick, drained;
  tick = [&](error_code) {
    auto now = clk::now();
    // Enqueue every request that is due by now.
    while (true) {
      auto d = s.start + std::chrono::duration_cast<clk::duration>(interval * static_cast<double>(scheduled));
      if (d > now || d >= s.stop_at) break;
      s.due.push_back(d);
      ++scheduled;
    }
    dispatch();
    auto next = s.start + std::chrono::duration_cast<clk::duration>(interval * static_cast<double>(scheduled));
    if (next >= s.stop_at) {
      // Done scheduling: stop once every request is answered (the idle watches on the
      // kept-alive connections would otherwise keep the loop running until the timeout).
      timer.expires_after(std::chrono::milliseconds(2));
      timer.async_wait(drained);
      return;
    }
    timer.expires_at(next);
    timer.async_wait(tick);
  };
  drained = [&](error_code) {
    bool busy = !s.due.empty() || std::any_of(conns.begin(), conns.end(), [](auto& c) { return !c->idle(); });
    if (!busy) {
      s.stopping = true;
      io.stop();
      return;
    }
    timer.expires_after(std::chrono::milliseconds(2));
    timer.async_wait(drained);
  };
  timer.expires_at(s.start);
  timer.async_wait(tick);
  io.run_until(s.stop_at + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.timeout)));

  std::vector<std::uint32_t> first, total;
  for (auto& x : s.samples) {
    first.push_back(x.first_us);
    total.push_back(x.total_us);
  }
  std::uint64_t measured_due = s.ok + s.non2xx;
  std::uint64_t expected = static_cast<std::uint64_t>(o.rate * o.duration);
  std::ostringstream out;
  out << "{\"mode\":\"" << o.mode << "\",\"rate\":" << o.rate << ",\"duration_s\":" << o.duration
      << ",\"connections\":" << o.connections << ",\"expected\":" << expected << ",\"completed\":" << s.ok
      << ",\"non2xx\":" << s.non2xx << ",\"errors\":" << s.errors
      << ",\"unfinished\":" << (expected > measured_due ? expected - measured_due : 0)
      << ",\"latency\":" << summary(total);
  if (o.mode == "stream") out << ",\"first_byte\":" << summary(first);
  out << "}";
  std::cout << out.str() << std::endl;
  return 0;
}

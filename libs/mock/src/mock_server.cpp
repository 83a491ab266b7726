#include <utility>  // before Asio (Boost 1.74 + GCC 12)

#include "gw/mock/mock_server.hpp"

#include <sys/resource.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "gw/core/json_writer.hpp"
#include "gw/http/listen.hpp"
#include "provider_routes.hpp"
#include "responses.hpp"

namespace gw::mock {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

struct alignas(64) thread_stats {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::int64_t> open{0};
};

struct shared_state {
  options opts;
  std::vector<std::unique_ptr<thread_stats>> stats;
  std::atomic<std::uint64_t> counter{0};
  std::atomic<std::uint64_t> otlp_batches{0}, otlp_bytes{0};  // POST /v1/traces
  std::mutex last_mu;
  std::string last_request;  // JSON, empty until the first model request
  std::optional<ssl::context> tls;
  std::mutex faults_mu;
  std::vector<fault> faults;                       // POST /_mock/faults
  std::atomic<bool> any_faults{false};
  std::map<std::string, std::uint64_t> by_model;   // model requests per model name
  credential_store creds;                          // AWS keys and bearer tokens accepted
  identity_options identity;
};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

template <class Stream>
class connection : public std::enable_shared_from_this<connection<Stream>> {
 public:
  template <class... Args>
  connection(shared_state& sh, thread_stats& st, Args&&... args)
      : stream_(std::forward<Args>(args)...), timer_(stream_.get_executor()), sh_(sh), st_(st) {
    st_.open.fetch_add(1, std::memory_order_relaxed);
  }
  ~connection() { st_.open.fetch_sub(1, std::memory_order_relaxed); }

  void start() {
    if constexpr (std::is_same_v<Stream, ssl::stream<http::socket_type>>) {
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](error_code ec) {
        if (!ec) self->read();
      });
    } else {
      read();
    }
  }

 private:
  http::socket_type& socket() { return beast::get_lowest_layer(stream_); }

  void close() {
    error_code ignored;
    timer_.cancel();
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(64u * 1024u * 1024u);
    parser_->header_limit(64 * 1024);
    bhttp::async_read_header(stream_, buf_, *parser_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      auto& r = self->parser_->get();
      auto expect = r[bhttp::field::expect];
      if (!expect.empty() && beast::iequals(expect, "100-continue") && !self->parser_->is_done()) {
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::async_write(self->stream_, asio::buffer(cont.data(), cont.size()),
                          [self](error_code ec, std::size_t) {
                            if (ec) return self->close();
                            self->read_body();
                          });
        return;
      }
      self->read_body();
    });
  }

  void read_body() {
    bhttp::async_read(stream_, buf_, *parser_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      self->on_request();
    });
  }

  void on_request() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    std::string_view target = sv(req.target());
    std::string_view path = target.substr(0, target.find('?'));
    if (path.size() >= 3 && path.substr(0, 3) == "/v1" && (path.size() == 3 || path[3] == '/')) path.remove_prefix(3);
    bool post = req.method() == bhttp::verb::post;
    bool get = req.method() == bhttp::verb::get;

    if (path == "/health") return get ? respond(200, "application/json", R"({"status":"ok"})") : not_allowed();
    if (path == "/_mock/image.png") {
      // A 1x1 PNG, for image URLs the gateway fetches for Bedrock.
      static constexpr unsigned char png[] = {
          0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
          0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
          0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff,
          0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
      return get ? respond(200, "image/png", std::string(reinterpret_cast<const char*>(png), sizeof png)) : not_allowed();
    }
    if (path == "/_mock/last_request") {
      if (!get) return not_allowed();
      std::lock_guard lock(sh_.last_mu);
      if (sh_.last_request.empty())
        return respond(404, "application/json", error_body("no request recorded yet", "not_found", "not_found"));
      return respond(200, "application/json", sh_.last_request);
    }
    if (path == "/_mock/faults") {
      if (req.method() == bhttp::verb::delete_) {
        std::lock_guard lock(sh_.faults_mu);
        sh_.faults.clear();
        sh_.any_faults = false;
        return respond(200, "application/json", R"({"faults":0})");
      }
      if (!post) return not_allowed();
      fault f;
      std::string err;
      if (!parse_fault(req.body(), f, err))
        return respond(400, "application/json", error_body("invalid fault: " + err, "invalid_request_error", "invalid_json"));
      std::lock_guard lock(sh_.faults_mu);
      sh_.faults.push_back(std::move(f));
      sh_.any_faults = true;
      return respond(200, "application/json", R"({"faults":)" + std::to_string(sh_.faults.size()) + "}");
    }
    if (path == "/_mock/stats") {
      if (!get) return not_allowed();
      std::uint64_t requests = 0, accepted = 0;
      std::int64_t open = 0;
      for (auto& s : sh_.stats) {
        requests += s->requests.load(std::memory_order_relaxed);
        accepted += s->accepted.load(std::memory_order_relaxed);
        open += s->open.load(std::memory_order_relaxed);
      }
      std::string b = R"({"requests":)" + std::to_string(requests) + R"(,"connections_accepted":)" +
                      std::to_string(accepted) + R"(,"open_connections":)" + std::to_string(open) + R"(,"models":{)";
      {
        std::lock_guard lock(sh_.faults_mu);
        bool first = true;
        for (auto& [m, n] : sh_.by_model) {
          if (!first) b += ',';
          first = false;
          append_json_string(b, m);
          b += ':' + std::to_string(n);
        }
      }
      b += "},\"entra_tokens_issued\":" + std::to_string(sh_.creds.entra_tokens_issued()) +
           ",\"sts_calls\":" + std::to_string(sh_.creds.sts_calls()) +
           ",\"container_calls\":" + std::to_string(sh_.creds.container_calls()) +
           ",\"imds_calls\":" + std::to_string(sh_.creds.imds_calls()) +
           ",\"otlp_batches\":" + std::to_string(sh_.otlp_batches.load(std::memory_order_relaxed)) +
           ",\"otlp_bytes\":" + std::to_string(sh_.otlp_bytes.load(std::memory_order_relaxed)) + "}";
      return respond(200, "application/json", std::move(b));
    }

    // An OTLP/HTTP trace sink (OpenTelemetry's /v1/traces, Langfuse's OTLP path): reads
    // the batch and accepts it, for benchmarks that need a collector that costs little.
    if (path == "/traces" || path == "/api/public/otel/v1/traces") {
      if (!post) return not_allowed();
      sh_.otlp_batches.fetch_add(1, std::memory_order_relaxed);
      sh_.otlp_bytes.fetch_add(req.body().size(), std::memory_order_relaxed);
      return respond(200, "application/json", "{}");
    }

    if (other_dialects(req)) return;

    // Azure OpenAI: /openai/deployments/{deployment}/{op}?api-version=... and /openai/v1/{op}.
    azure_ = false;
    azure_deployment_.clear();
    if (path.substr(0, 8) == "/openai/") {
      std::string_view rest = path.substr(7);
      if (rest.substr(0, 13) == "/deployments/") {
        rest.remove_prefix(13);
        auto slash = rest.find('/');
        if (slash == std::string_view::npos)
          return respond(404, "application/json", error_body("Resource not found", "invalid_request_error", "404"));
        azure_deployment_.assign(rest.substr(0, slash));
        path = rest.substr(slash);
        std::string_view query = target.find('?') == std::string_view::npos ? std::string_view{}
                                                                             : target.substr(target.find('?') + 1);
        if (query.find("api-version=") == std::string_view::npos)
          return respond(404, "application/json",
                         error_body("Resource not found: the api-version query parameter is missing",
                                    "invalid_request_error", "404"));
      } else if (rest.substr(0, 4) == "/v1/") {
        path = rest.substr(3);
      } else {
        return respond(404, "application/json", error_body("Resource not found", "invalid_request_error", "404"));
      }
      azure_ = true;
    }

    kind k;
    if (path == "/chat/completions") k = kind::chat;
    else if (path == "/completions") k = kind::completion;
    else if (path == "/embeddings") k = kind::embedding;
    else if (path == "/models") {
      if (!get) return not_allowed();
      if (!authorized()) return;
      return respond(200, "application/json", models_body(sh_.opts.models));
    } else {
      return respond(404, "application/json",
                     error_body("unknown route " + std::string(path), "invalid_request_error", "not_found"));
    }
    if (!post) return not_allowed();
    st_.requests.fetch_add(1, std::memory_order_relaxed);
    if (sh_.opts.record_last_request) record(req);
    if (!authorized()) return;

    mock_request r;
    std::string err;
    if (!parse_request(req.body(), k, r, err))
      return respond(400, "application/json", error_body("invalid request body: " + err, "invalid_request_error", "invalid_json"));

    if (sh_.any_faults.load(std::memory_order_relaxed) || sh_.opts.record_last_request) {
      std::lock_guard lock(sh_.faults_mu);
      ++sh_.by_model[r.model];
      for (auto it = sh_.faults.begin(); it != sh_.faults.end(); ++it) {
        if (!it->model.empty() && it->model != r.model) continue;
        apply_fault(it->behaviour, r);
        if (it->count > 0 && --it->count == 0) sh_.faults.erase(it);
        break;
      }
    }
    int latency = r.latency_ms >= 0 ? r.latency_ms : sh_.opts.latency_ms;
    if (r.hang) return hang();
    auto act = [self = this->shared_from_this(), r = std::move(r), k]() mutable { self->answer(r, k); };
    if (latency > 0) {
      timer_.expires_after(std::chrono::milliseconds(latency));
      timer_.async_wait([act = std::move(act)](error_code ec) mutable {
        if (!ec) act();
      });
    } else {
      act();
    }
  }

  /// Bedrock, Anthropic and the fake identity endpoints. True when answered.
  bool other_dialects(const bhttp::request<bhttp::string_body>& req) {
    std::string_view path = sv(req.target());
    path = path.substr(0, path.find('?'));
    bool maybe = path.substr(0, 7) == "/model/" || path == "/v1/messages" || path == "/messages" ||
                 path.find("/oauth2/") != std::string_view::npos || path.substr(0, 8) == "/_creds/" ||
                 path.substr(0, 8) == "/latest/" || (path == "/" && req.method() == bhttp::verb::post);
    if (!maybe) return false;
    headers_.clear();
    for (auto& f : req) {
      std::string name(sv(f.name_string()));
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      headers_.emplace_back(std::move(name), std::string(sv(f.value())));
    }
    std::string_view full_path = sv(req.target());
    auto q = full_path.find('?');
    route_request rr;
    rr.method = sv(req.method_string());
    rr.target = full_path;
    rr.path = full_path.substr(0, q);
    rr.query = q == std::string_view::npos ? std::string_view{} : full_path.substr(q + 1);
    rr.headers = &headers_;
    rr.body = req.body();
    route_env env;
    env.creds = &sh_.creds;
    env.response_tokens = sh_.opts.response_tokens;
    env.embedding_dimensions = sh_.opts.embedding_dimensions;
    env.sequence = sh_.counter.fetch_add(1, std::memory_order_relaxed);
    env.now = std::chrono::system_clock::now();
    env.now_unix = std::chrono::duration_cast<std::chrono::seconds>(env.now.time_since_epoch()).count();
    route_fault_.reset();
    env.take_fault = [this](std::string_view model) -> std::optional<mock_request> {
      std::lock_guard lock(sh_.faults_mu);
      ++sh_.by_model[std::string(model)];
      for (auto it = sh_.faults.begin(); it != sh_.faults.end(); ++it) {
        if (!it->model.empty() && it->model != model) continue;
        mock_request r = it->behaviour;
        if (it->count > 0 && --it->count == 0) sh_.faults.erase(it);
        route_fault_ = r;
        return r;
      }
      return std::nullopt;
    };
    std::optional<route_response> resp = identity_route(rr, env, sh_.identity);
    bool model_route = false;
    if (!resp) {
      resp = bedrock_route(rr, env);
      if (!resp) resp = anthropic_route(rr, env, sh_.opts.anthropic_api_key);
      model_route = resp.has_value();
    }
    if (!resp) return false;
    if (model_route) {
      st_.requests.fetch_add(1, std::memory_order_relaxed);
      if (sh_.opts.record_last_request) record(req);
    }
    int latency = route_fault_ && route_fault_->latency_ms >= 0 ? route_fault_->latency_ms : sh_.opts.latency_ms;
    if (!model_route) latency = 0;
    if (route_fault_ && route_fault_->hang) {
      hang();
      return true;
    }
    double rate = route_fault_ && route_fault_->tokens_per_second >= 0 ? route_fault_->tokens_per_second
                                                                        : sh_.opts.tokens_per_second;
    auto act = [self = this->shared_from_this(), resp = std::move(*resp), rate]() mutable {
      self->send_route(std::move(resp), rate);
    };
    if (latency > 0) {
      timer_.expires_after(std::chrono::milliseconds(latency));
      timer_.async_wait([act = std::move(act)](error_code ec) mutable {
        if (!ec) act();
      });
    } else {
      act();
    }
    return true;
  }

  void send_route(route_response resp, double rate) {
    std::string extra;
    for (auto& [k, v] : resp.headers) extra += k + ": " + v + "\r\n";
    if (!resp.streamed) return respond(resp.status, resp.content_type, std::move(resp.body), extra);
    events_ = std::move(resp.chunks);
    next_event_ = 0;
    first_content_ = 0;
    drop_after_ = resp.drop_after;
    interval_ = rate > 0 ? std::chrono::microseconds(static_cast<std::int64_t>(1e6 / rate)) : std::chrono::microseconds(0);
    head_ = "HTTP/1.1 " + std::to_string(resp.status) + " OK\r\ncontent-type: " + resp.content_type +
            "\r\ntransfer-encoding: chunked\r\n" + extra;
    if (!keep_alive_) head_ += "connection: close\r\n";
    head_ += "\r\n";
    if (interval_.count() == 0) return stream_all();
    asio::async_write(stream_, asio::buffer(head_), [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      self->stream_next();
    });
  }

  bool authorized() {
    if (azure_) {
      // Azure: exactly one of api-key and a bearer token (an Entra token the fake
      // identity endpoint issued, or the configured key).
      auto key = sv(parser_->get()["api-key"]);
      auto bearer = sv(parser_->get()[bhttp::field::authorization]);
      bool ok = false;
      if (!key.empty() && bearer.empty()) ok = key == sh_.opts.azure_api_key || (!sh_.opts.api_key.empty() && key == sh_.opts.api_key);
      if (key.empty() && bearer.substr(0, 7) == "Bearer ") ok = sh_.creds.bearer_valid(bearer.substr(7));
      if (ok) return true;
      respond(401, "application/json",
              R"({"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}})");
      return false;
    }
    if (sh_.opts.api_key.empty()) return true;
    auto h = sv(parser_->get()[bhttp::field::authorization]);
    if (h == "Bearer " + sh_.opts.api_key) return true;
    respond(401, "application/json", error_body("Incorrect API key provided", "invalid_request_error", "invalid_api_key"));
    return false;
  }

  void record(const bhttp::request<bhttp::string_body>& req) {
    std::string j = R"({"method":)";
    append_json_string(j, sv(req.method_string()));
    j += R"(,"target":)";
    append_json_string(j, sv(req.target()));
    j += R"(,"headers":{)";
    bool first = true;
    for (auto& f : req) {
      if (!first) j += ',';
      first = false;
      std::string name(sv(f.name_string()));
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      append_json_string(j, name);
      j += ':';
      append_json_string(j, sv(f.value()));
    }
    j += R"(},"body":)";
    append_json_string(j, req.body());
    j += '}';
    std::lock_guard lock(sh_.last_mu);
    sh_.last_request = std::move(j);
  }

  void answer(mock_request& r, kind k) {
    if (r.status != 0) {
      std::string extra;
      if (!r.retry_after.empty()) extra += "retry-after: " + r.retry_after + "\r\n";
      append_headers(extra, r);
      if (r.has_raw_body)
        return respond(r.status, r.content_type.empty() ? "text/plain" : r.content_type, r.raw_body, extra);
      return respond(r.status, "application/json", error_body(r.status), extra);
    }
    std::string extra;
    append_headers(extra, r);
    if (r.drop_after == 0 && !r.stream) return close();  // dropped without an answer
    auto n = sh_.counter.fetch_add(1, std::memory_order_relaxed);
    std::int64_t created = unix_now();
    if (k == kind::embedding) return respond(200, "application/json", embeddings_body(r, sh_.opts.embedding_dimensions), extra);
    if (azure_ && !azure_deployment_.empty()) r.model = azure_deployment_;
    auto words = completion_words(r, sh_.opts.response_tokens);
    std::string id = (k == kind::chat ? "chatcmpl-mock-" : "cmpl-mock-") + std::to_string(n);
    static constexpr std::string_view k_filter =
        R"("prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}])";
    if (!r.stream) {
      std::string text;
      for (std::size_t i = 0; i < words.size(); ++i) {
        if (i) text += ' ';
        text += words[i];
      }
      auto p = prompt_tokens(r);
      auto c = static_cast<std::int64_t>(words.size());
      std::string body = k == kind::chat && wants_tool_call(r)
                             ? tool_call_body(id, created, r.model, r.tool_name, tool_arguments(r), p)
                         : k == kind::chat ? chat_body(id, created, r.model, text, p, c)
                                           : completion_body(id, created, r.model, text, p, c);
      if (azure_) body.insert(1, std::string(k_filter) + ",");
      return respond(200, "application/json", std::move(body), extra);
    }
    if (k == kind::chat && wants_tool_call(r))
      events_ = tool_call_events(id, created, r.model, r.tool_name, tool_arguments(r), r.include_usage, prompt_tokens(r));
    else
      events_ = stream_events(k, id, created, r.model, words, r.include_usage, prompt_tokens(r));
    if (azure_) {
      // Azure's first chunk: no choices, only the prompt's content-filter results.
      events_.insert(events_.begin(), R"(data: {"choices":[],"created":0,"id":"","model":"","object":"",)" +
                                          std::string(k_filter) + "}\n\n");
    }
    next_event_ = 0;
    // Content events: after the role chunk (chat) they are the next words.size() events.
    first_content_ = (k == kind::chat ? 1 : 0) + (azure_ ? 1 : 0);
    drop_after_ = r.drop_after;
    double rate = r.tokens_per_second >= 0 ? r.tokens_per_second : sh_.opts.tokens_per_second;
    interval_ = rate > 0 ? std::chrono::microseconds(static_cast<std::int64_t>(1e6 / rate)) : std::chrono::microseconds(0);
    head_ = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n" + extra;
    if (!keep_alive_) head_ += "connection: close\r\n";
    head_ += "\r\n";
    if (interval_.count() == 0) return stream_all();
    asio::async_write(stream_, asio::buffer(head_), [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      self->stream_next();
    });
  }

  static void append_chunk(std::string& out, std::string_view data) {
    char hex[20];
    int len = std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
    out.append(hex, static_cast<std::size_t>(len));
    out.append(data);
    out += "\r\n";
  }

  /// Unpaced: head and every event in one write (or up to the drop).
  void stream_all() {
    out_ = head_;
    std::size_t last = events_.size();
    bool drop = drop_after_ >= 0;
    if (drop) last = std::min(events_.size(), first_content_ + static_cast<std::size_t>(drop_after_));
    for (std::size_t i = 0; i < last; ++i) append_chunk(out_, events_[i]);
    if (!drop) out_ += "0\r\n\r\n";
    asio::async_write(stream_, asio::buffer(out_), [self = this->shared_from_this(), drop](error_code ec, std::size_t) {
      if (ec || drop) return self->close();
      self->done();
    });
  }

  /// Paced: one event per interval, each its own chunk.
  void stream_next() {
    if (drop_after_ >= 0 && next_event_ >= first_content_ + static_cast<std::size_t>(drop_after_)) return close();
    if (next_event_ >= events_.size()) {
      static constexpr std::string_view last = "0\r\n\r\n";
      asio::async_write(stream_, asio::buffer(last.data(), last.size()),
                        [self = this->shared_from_this()](error_code ec, std::size_t) {
                          if (ec) return self->close();
                          self->done();
                        });
      return;
    }
    out_.clear();
    append_chunk(out_, events_[next_event_++]);
    asio::async_write(stream_, asio::buffer(out_), [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      self->timer_.expires_after(self->interval_);
      self->timer_.async_wait([self](error_code ec) {
        if (!ec) self->stream_next();
      });
    });
  }

  static void append_headers(std::string& extra, const mock_request& r) {
    for (auto& [k, v] : r.headers) extra += k + ": " + v + "\r\n";
  }

  void hang() {
    // Hold the connection until the client goes away (or the server stops).
    socket().async_read_some(asio::buffer(scratch_), [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      self->hang();
    });
  }

  void not_allowed() {
    respond(405, "application/json", error_body("method not allowed", "invalid_request_error", "method_not_allowed"));
  }

  void respond(int status, std::string_view content_type, std::string body, std::string_view extra = {}) {
    out_.clear();
    out_ += "HTTP/1.1 ";
    out_ += std::to_string(status);
    out_ += ' ';
    auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
    out_.append(reason.data(), reason.size());
    out_ += "\r\ncontent-type: ";
    out_ += content_type;
    out_ += "\r\ncontent-length: ";
    out_ += std::to_string(body.size());
    out_ += "\r\n";
    out_ += extra;
    if (!keep_alive_) out_ += "connection: close\r\n";
    out_ += "\r\n";
    body_ = std::move(body);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(body_)};
    asio::async_write(stream_, bufs, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      self->done();
    });
  }

  void done() {
    if (keep_alive_) return read();
    close();
  }

  Stream stream_;
  asio::steady_timer timer_;
  shared_state& sh_;
  thread_stats& st_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = true;
  std::string out_, body_, head_;
  std::vector<std::string> events_;
  std::size_t next_event_ = 0, first_content_ = 0;
  int drop_after_ = -1;
  std::chrono::microseconds interval_{0};
  char scratch_[512];
  std::vector<std::pair<std::string, std::string>> headers_;
  std::optional<mock_request> route_fault_;
  bool azure_ = false;
  std::string azure_deployment_;
};

}  // namespace

struct server::impl {
  shared_state sh;
  struct io_thread {
    asio::io_context io{1};
    http::acceptor_type acceptor{io.get_executor()};
    std::thread thread;
    thread_stats* stats = nullptr;
  };
  std::vector<std::unique_ptr<io_thread>> threads;
  std::uint16_t port = 0;
  bool started = false, stopped = false;

  void accept(io_thread& t) {
    t.acceptor.async_accept([this, &t](error_code ec, http::socket_type sock) {
      if (!t.acceptor.is_open()) return;
      if (!ec) {
        t.stats->accepted.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        sock.set_option(tcp::no_delay(true), ignored);
        if (sh.tls) {
          std::make_shared<connection<ssl::stream<http::socket_type>>>(sh, *t.stats, std::move(sock), *sh.tls)->start();
        } else {
          std::make_shared<connection<http::socket_type>>(sh, *t.stats, std::move(sock))->start();
        }
      }
      accept(t);
    });
  }
};

server::server(options opts) : impl_(std::make_unique<impl>()) { impl_->sh.opts = std::move(opts); }

server::~server() { stop(); }

void server::start() {
  auto& I = *impl_;
  if (I.started) return;
  I.started = true;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const auto& o = I.sh.opts;
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    if (o.tls_cert_file.empty() || o.tls_key_file.empty()) throw std::runtime_error("TLS needs both a certificate and a key");
    I.sh.tls.emplace(ssl::context::tls_server);
    error_code ec;
    I.sh.tls->use_certificate_chain_file(o.tls_cert_file, ec);
    if (!ec) I.sh.tls->use_private_key_file(o.tls_key_file, ssl::context::pem, ec);
    if (ec) throw std::runtime_error("cannot load TLS certificate or key: " + ec.message());
  }
  I.sh.creds.add_aws({o.aws_access_key_id, o.aws_secret_access_key, "", credential_store::clock::time_point::max()});
  if (!o.bedrock_api_key.empty()) I.sh.creds.add_bearer(o.bedrock_api_key);
  I.sh.identity.entra_client_id = o.entra_client_id;
  I.sh.identity.entra_client_secret = o.entra_client_secret;
  I.sh.identity.entra_token_ttl_s = o.entra_token_ttl_s;
  I.sh.identity.aws_temp_ttl_s = o.aws_temp_ttl_s;
  I.sh.identity.container_auth_token = o.container_auth_token;
  std::uint16_t port = o.port;
  int n = std::max(1, o.threads);
  for (int i = 0; i < n; ++i) {
    auto t = std::make_unique<impl::io_thread>();
    I.sh.stats.push_back(std::make_unique<thread_stats>());
    t->stats = I.sh.stats.back().get();
    port = http::listen_reuseport(t->acceptor, o.host, port);
    I.threads.push_back(std::move(t));
  }
  I.port = port;
  for (auto& t : I.threads) {
    I.accept(*t);
    t->thread = std::thread([tp = t.get()] {
      auto guard = asio::make_work_guard(tp->io);
      tp->io.run();
    });
  }
}

std::uint16_t server::port() const { return impl_->port; }

void server::stop() {
  auto& I = *impl_;
  if (!I.started || I.stopped) return;
  I.stopped = true;
  for (auto& t : I.threads) {
    asio::post(t->io, [tp = t.get()] {
      error_code ignored;
      tp->acceptor.close(ignored);
    });
    t->io.stop();
  }
  for (auto& t : I.threads)
    if (t->thread.joinable()) t->thread.join();
  I.threads.clear();  // connections still queued in the io_contexts are destroyed here
}

}  // namespace gw::mock

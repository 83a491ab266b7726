// The trace pipeline: settings from the config and environment, the shipper actor,
// the exporters' worker actors, the io threads' buffers, and the /traces API.

#include "gw/trace_pipeline/pipeline.hpp"

#include <openssl/evp.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <random>

#include "gw/core/error.hpp"
#include "gw/core/log.hpp"
#include "gw/core/strings.hpp"
#include "internal.hpp"

namespace gw::tracing {

using trace_batch = std::shared_ptr<const std::vector<tracing::trace_record>>;

/// Records of one export call; the shared batches keep them alive.
struct export_job {
  std::vector<trace_batch> keep;
  trace_detail::record_list records;
};

}  // namespace gw::tracing

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::tracing::trace_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<std::vector<gw::tracing::trace_record>>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::tracing::export_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::tracing::trace_detail::export_result)

namespace gw::tracing {
namespace {

using namespace std::chrono;
using trace_detail::export_result;

using tbatch_atom = caf::atom_constant<caf::atom("tbatch")>;
using ttick_atom = caf::atom_constant<caf::atom("ttick")>;
using texport_atom = caf::atom_constant<caf::atom("texport")>;
using tretry_atom = caf::atom_constant<caf::atom("tretry")>;
using tfinal_atom = caf::atom_constant<caf::atom("tfinal")>;
using tquery_atom = caf::atom_constant<caf::atom("tquery")>;

// ------------------------------------------------------------------ settings

bool has(const std::vector<std::string>& v, std::initializer_list<std::string_view> names) {
  for (const auto& x : v)
    for (auto n : names)
      if (x == n) return true;
  return false;
}

/// Percent-decoding as the OTLP exporter spec asks (W3C baggage): unlike a URL query,
/// '+' stays '+' (base64 tokens in header values keep it), so keys::url_decode does not fit.
std::string pct_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

/// OTEL_EXPORTER_OTLP_HEADERS: "k1=v1,k2=v2" (values percent-encoded).
std::vector<std::pair<std::string, std::string>> parse_headers(std::string_view s, std::vector<std::string>& warnings,
                                                               const char* var) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    auto item = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    if (gw::trim(item).empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      warnings.push_back(std::string(var) + ": an entry without '=' is ignored");
      continue;
    }
    out.emplace_back(std::string(gw::trim(pct_decode(item.substr(0, eq)))),
                     std::string(gw::trim(pct_decode(item.substr(eq + 1)))));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_resource(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> ignored;
  for (auto& [k, v] : parse_headers(s, ignored, "OTEL_RESOURCE_ATTRIBUTES"))
    if (!k.empty()) out.emplace_back(k, v);
  return out;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(std::max(0, n)));
  return out;
}

bool truthy(const char* v) {
  if (!v) return false;
  auto s = gw::to_lower(gw::trim(v));
  return s == "true" || s == "1" || s == "yes";
}

}  // namespace

bool trace_id_ratio_sampled(const tracing::trace_id& id, double ratio) noexcept {
  if (ratio >= 1.0) return true;
  if (ratio <= 0.0) return false;
  std::uint64_t low = 0;
  for (std::size_t i = 8; i < 16; ++i) low = (low << 8) | id[i];
  // Integer comparison: a double cannot tell 2^62 - 1 from 2^62.
  auto bound = static_cast<std::uint64_t>(ratio * 9223372036854775808.0);  // ratio * 2^63 < 2^63
  return (low >> 1) < bound;
}

bool trace_sampler::sample(const tracing::trace_id& id, bool has_parent, bool parent_sampled) const noexcept {
  if (parent_based && has_parent) return parent_sampled;
  switch (root) {
    case kind::always_on: return true;
    case kind::always_off: return false;
    case kind::ratio: return trace_id_ratio_sampled(id, ratio);
  }
  return true;
}

bool trace_settings::begin(tracing::trace_record& t, const http::request& req) const {
  auto header = [&req](std::string_view name) {
    auto it = req.find(boost::beast::string_view(name.data(), name.size()));
    return it == req.end() ? std::string_view{} : std::string_view(it->value().data(), it->value().size());
  };
  bool has_parent = false;
  if (auto c = tracing::parse_traceparent(header("traceparent"))) {
    t.trace = c->trace;
    t.parent = c->parent;
    t.flags = c->flags;
    has_parent = true;
    t.tracestate = std::string(header("tracestate"));
  }
  if (tracing::is_zero(t.trace)) t.trace = tracing::new_trace_id();
  t.span = tracing::new_span_id();
  bool bodies = decide(t, has_parent);
  std::string_view target(req.target().data(), req.target().size());
  t.route = std::string(target.substr(0, target.find('?')));
  if (capture_request && bodies) {
    const auto& body = req.body();
    std::size_t n = std::min(body.size(), capture_bytes);
    t.request_body.assign(body.data(), n);
    t.request_truncated = n < body.size();
  }
  return bodies;
}

namespace {

/// OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, as OpenTelemetry's SDKs read them.
trace_sampler parse_sampler(const std::string& name_raw, const std::string& arg, std::vector<std::string>& warnings) {
  trace_sampler s;
  std::string name = gw::to_lower(gw::trim(name_raw));
  if (name.empty()) return s;
  auto ratio_arg = [&]() {
    if (arg.empty()) return 1.0;
    auto v = gw::parse_double(gw::trim(arg));
    if (!v || *v < 0 || *v > 1) {
      warnings.push_back("OTEL_TRACES_SAMPLER_ARG='" + arg + "' is not a ratio from 0 to 1; using 1");
      return 1.0;
    }
    return *v;
  };
  if (name == "always_on") {
    s.parent_based = false;
  } else if (name == "always_off") {
    s.parent_based = false;
    s.root = trace_sampler::kind::always_off;
  } else if (name == "traceidratio") {
    s.parent_based = false;
    s.root = trace_sampler::kind::ratio;
    s.ratio = ratio_arg();
  } else if (name == "parentbased_always_on") {
  } else if (name == "parentbased_always_off") {
    s.root = trace_sampler::kind::always_off;
  } else if (name == "parentbased_traceidratio") {
    s.root = trace_sampler::kind::ratio;
    s.ratio = ratio_arg();
  } else {
    warnings.push_back("OTEL_TRACES_SAMPLER=" + name_raw +
                       " is not supported (always_on, always_off, traceidratio, parentbased_always_on, "
                       "parentbased_always_off, parentbased_traceidratio); using parentbased_always_on");
  }
  return s;
}

}  // namespace

trace_settings make_trace_settings(const config::gateway_config& cfg, const std::string& database_url,
                                   const env_lookup& env, std::vector<std::string>& warnings) {
  trace_settings t;
  const auto& g = cfg.gateway;
  const auto& l = cfg.litellm;
  auto getenv = [&](const char* k) -> std::string {
    const char* v = env(k);
    return v ? std::string(v) : std::string();
  };
  bool no_content = l.turn_off_message_logging;
  t.sampler = parse_sampler(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG"), warnings);

  tracing::otlp_options base;
  base.service_name = getenv("OTEL_SERVICE_NAME");
  if (base.service_name.empty()) base.service_name = "llm-gateway";
  base.resource_attributes = parse_resource(getenv("OTEL_RESOURCE_ATTRIBUTES"));
  base.max_content_bytes = std::max<std::size_t>(1024, std::min<std::size_t>(g.trace_capture_max_bytes, 256 * 1024));

  // Which records go where: success_callback gets successes, failure_callback failures,
  // callbacks both (LiteLLM's meaning).
  auto wants = [&](std::initializer_list<std::string_view> names, bool& successes, bool& failures) {
    bool in_both = has(l.callbacks, names);
    successes = in_both || has(l.success_callback, names);
    failures = in_both || has(l.failure_callback, names);
    return successes || failures;
  };

  // OpenTelemetry: "otel" in the callbacks, or the OTLP endpoint variables set.
  {
    bool succ = false, fail = false;
    bool listed = wants({"otel", "opentelemetry", "otlp"}, succ, fail);
    std::string traces = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    std::string base_ep = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (base_ep.empty()) base_ep = getenv("OTEL_ENDPOINT");  // LiteLLM's name
    bool disabled = truthy(env("OTEL_SDK_DISABLED")) || getenv("OTEL_TRACES_EXPORTER") == "none";
    if (!listed && (!traces.empty() || !base_ep.empty())) succ = fail = true;
    if ((succ || fail) && !disabled) {
      otlp_exporter_settings e;
      e.name = "otlp";
      if (!traces.empty()) {
        e.url = traces;
      } else {
        if (base_ep.empty()) base_ep = "http://localhost:4318";
        while (!base_ep.empty() && base_ep.back() == '/') base_ep.pop_back();
        e.url = base_ep.size() >= 10 && base_ep.compare(base_ep.size() - 10, 10, "/v1/traces") == 0 ? base_ep
                                                                                                  : base_ep + "/v1/traces";
      }
      std::string hdrs = getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
      const char* hvar = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
      if (hdrs.empty()) {
        hdrs = getenv("OTEL_EXPORTER_OTLP_HEADERS");
        hvar = "OTEL_EXPORTER_OTLP_HEADERS";
      }
      if (hdrs.empty()) {
        hdrs = getenv("OTEL_HEADERS");
        hvar = "OTEL_HEADERS";
      }
      e.headers = parse_headers(hdrs, warnings, hvar);
      const char* pvar = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
      std::string proto = getenv(pvar);
      if (proto.empty()) {
        pvar = "OTEL_EXPORTER_OTLP_PROTOCOL";
        proto = getenv(pvar);
      }
      proto = gw::to_lower(gw::trim(proto));
      e.otlp = base;
      // The OpenTelemetry SDKs' default is http/protobuf; http/json on request.
      e.otlp.protobuf = proto != "http/json";
      if (proto == "grpc") {
        warnings.push_back(std::string(pvar) + "=grpc: the gateway has no OTLP/gRPC exporter; it sends OTLP/HTTP " +
                           "protobuf to " + e.url + " (a collector's HTTP receiver, port 4318 by default)");
      } else if (!proto.empty() && proto != "http/protobuf" && proto != "http/json") {
        warnings.push_back(std::string(pvar) + "='" + proto +
                           "' is not a protocol (http/protobuf, http/json): sending OTLP/HTTP protobuf");
      }
      e.otlp.capture_content =
          !no_content && (g.otel_capture_content || truthy(env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")));
      e.successes = succ;
      e.failures = fail;
      t.otlp.push_back(std::move(e));
    }
  }

  // Langfuse, through its OTLP endpoint.
  {
    bool succ = false, fail = false;
    if (wants({"langfuse", "langfuse_otel"}, succ, fail)) {
      std::string pk = getenv("LANGFUSE_PUBLIC_KEY"), sk = getenv("LANGFUSE_SECRET_KEY");
      std::string host = getenv("LANGFUSE_HOST");
      if (host.empty()) host = getenv("LANGFUSE_BASE_URL");
      if (host.empty()) host = "https://cloud.langfuse.com";
      while (!host.empty() && host.back() == '/') host.pop_back();
      if (host.find("://") == std::string::npos) host = "http://" + host;
      if (pk.empty() || sk.empty()) {
        warnings.push_back("litellm_settings callbacks name langfuse, but LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY "
                           "are not both set: nothing is sent to Langfuse");
      } else {
        otlp_exporter_settings e;
        e.name = "langfuse";
        e.url = host + "/api/public/otel/v1/traces";
        e.headers.emplace_back("Authorization", "Basic " + base64(pk + ":" + sk));
        e.otlp = base;
        e.otlp.langfuse = true;
        e.otlp.capture_content = !no_content && g.langfuse_capture_content;
        e.otlp.environment = getenv("LANGFUSE_TRACING_ENVIRONMENT");
        e.otlp.release = getenv("LANGFUSE_RELEASE");
        e.sampled_only = false;  // Langfuse keeps every request unless its own rate says not
        if (std::string rate = getenv("LANGFUSE_SAMPLE_RATE"); !rate.empty()) {
          auto v = gw::parse_double(gw::trim(rate));
          if (!v || *v < 0 || *v > 1)
            warnings.push_back("LANGFUSE_SAMPLE_RATE='" + rate + "' is not a ratio from 0 to 1; sending every request");
          else
            e.sample_rate = *v;
        }
        e.successes = succ;
        e.failures = fail;
        t.otlp.push_back(std::move(e));
      }
    }
  }
  for (const auto& list : {l.callbacks, l.success_callback, l.failure_callback})
    for (const auto& c : list)
      if (c != "otel" && c != "opentelemetry" && c != "otlp" && c != "langfuse" && c != "langfuse_otel" &&
          c != "prometheus")
        warnings.push_back("litellm_settings callback '" + c + "' is not implemented (ignored)");

  t.store = g.trace_store.value_or(!database_url.empty());
  t.database_url = database_url;
  t.store_bodies = g.trace_store_bodies == "full" ? body_mode::full
                   : g.trace_store_bodies == "off" || no_content ? body_mode::off
                                                                : body_mode::truncated;
  t.store_body_bytes = g.trace_body_max_bytes;
  t.store_retention_days = g.trace_retention_days;
  t.memory_records = g.trace_memory_records;
  if (t.database_url.empty() && t.memory_records == 0) t.store = false;
  t.request_log = g.request_log;
  t.request_log_content = g.request_log_content && !no_content;
  t.batch_size = g.trace_batch_size;
  t.queue_records = g.trace_queue_size;
  t.flush_interval = milliseconds(static_cast<std::int64_t>(std::max(0.01, g.trace_flush_interval) * 1000));
  t.export_timeout = milliseconds(static_cast<std::int64_t>(std::max(0.1, g.trace_export_timeout) * 1000));
  t.max_attempts = g.trace_export_max_attempts;

  // The request path captures bodies when any consumer shows content.
  bool content = t.request_log_content || (t.store && t.store_bodies != body_mode::off);
  for (const auto& e : t.otlp) content = content || e.otlp.capture_content;
  bool metadata_only = !t.otlp.empty();
  t.bodies_for_all = t.request_log_content || (t.store && t.store_bodies != body_mode::off);
  // Without content the request path reads the few facts the spans show (parameters,
  // ids, finish reasons) from the bodies it holds anyway, and copies no body.
  t.capture_request = content;
  t.capture_response = content;
  t.facts = metadata_only && !content;
  t.capture_bytes = g.trace_capture_max_bytes;
  if (!content) t.capture_bytes = std::min<std::size_t>(t.capture_bytes, 64 * 1024);
  return t;
}

// ------------------------------------------------------------------ actors

namespace {

/// Which records an exporter gets: all (the store, the log), or what an OTLP
/// exporter takes (success/failure callbacks, sampling).
struct record_filter {
  const otlp_exporter_settings* otlp = nullptr;
  bool takes(const tracing::trace_record& r) const noexcept {
    if (!otlp) return true;
    bool ok = r.status / 100 == 2;
    if (ok ? !otlp->successes : !otlp->failures) return false;
    return otlp->takes(r);
  }
};

struct slot {
  caf::actor worker;
  std::deque<std::pair<trace_batch, std::uint32_t>> queue;
  export_job in_flight;
  bool busy = false;    ///< a job is with the worker or waiting for its retry
  int attempt = 0;
  record_filter filter;
  exporter_counters* c = nullptr;
};

struct shipper_state {
  std::vector<slot> slots;
  const trace_settings* s = nullptr;
  bool finalizing = false;
  std::vector<caf::response_promise> final_waiters;
  std::mt19937_64 rng{std::random_device{}()};
  static inline const char* name = "gw.trace_shipper";
};
using shipper_actor = caf::stateful_actor<shipper_state>;

bool all_idle(const shipper_state& st) {
  for (const auto& sl : st.slots)
    if (sl.busy || !sl.queue.empty()) return false;
  return true;
}

void finish_if_done(shipper_actor* self) {
  auto& st = self->state;
  if (!st.finalizing || !all_idle(st)) return;
  for (auto& p : st.final_waiters) p.deliver(true);
  st.final_waiters.clear();
}

void dispatch(shipper_actor* self, std::size_t i);

void send_job(shipper_actor* self, std::size_t i) {
  auto& sl = self->state.slots[i];
  auto job = sl.in_flight;  // shares the batches; the copy goes to the worker
  self->request(sl.worker, caf::infinite, texport_atom::value, std::move(job))
      .then([self, i](export_result& r) {
        auto& st = self->state;
        auto& sl = st.slots[i];
        auto n = sl.in_flight.records.size();
        if (r.kind == export_result::ok) {
          sl.c->exported += n;
          sl.c->batches_ok += 1;
          if (sl.attempt > 0) log::info("trace export '" + sl.c->name + "' recovered");
          sl.attempt = 0;
        } else {
          ++sl.attempt;
          bool give_up = r.kind == export_result::fail || sl.attempt >= st.s->max_attempts || st.finalizing;
          if (sl.attempt == 1 || give_up)
            log::warn("trace export '" + sl.c->name + "' failed: " + r.error +
                      (give_up ? " (" + std::to_string(n) + " records dropped)" : " (will retry)"));
          if (!give_up) {
            sl.c->batches_retried += 1;
            auto backoff = st.s->backoff_base * (1LL << std::min(sl.attempt - 1, 16));
            backoff = std::min<milliseconds>(backoff, st.s->backoff_max);
            std::uniform_int_distribution<std::int64_t> jitter(backoff.count() / 2, backoff.count());
            milliseconds wait(jitter(st.rng));
            if (r.retry_after_ms >= 0) wait = std::max(wait, milliseconds(std::min<std::int64_t>(r.retry_after_ms, 60000)));
            self->delayed_send(self, wait, tretry_atom::value, static_cast<std::uint32_t>(i));
            return;
          }
          sl.c->dropped += n;
          sl.c->batches_failed += 1;
          sl.attempt = 0;
        }
        sl.in_flight = {};
        sl.busy = false;
        if (sl.queue.size() >= st.s->batch_size || st.finalizing) dispatch(self, i);
        finish_if_done(self);
      },
      [self, i](caf::error&) {
        // The worker is gone (shutdown): what it held is lost.
        auto& sl = self->state.slots[i];
        sl.c->dropped += sl.in_flight.records.size();
        sl.in_flight = {};
        sl.busy = false;
        finish_if_done(self);
      });
}

void dispatch(shipper_actor* self, std::size_t i) {
  auto& st = self->state;
  auto& sl = st.slots[i];
  if (sl.busy || sl.queue.empty()) return;
  std::size_t n = std::min(sl.queue.size(), st.s->batch_size);
  sl.in_flight = {};
  sl.in_flight.records.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    auto& [b, idx] = sl.queue.front();
    if (sl.in_flight.keep.empty() || sl.in_flight.keep.back() != b) sl.in_flight.keep.push_back(b);
    sl.in_flight.records.push_back(&(*b)[idx]);
    sl.queue.pop_front();
  }
  sl.c->queued -= static_cast<std::int64_t>(n);
  sl.busy = true;
  send_job(self, i);
}

/// The trace threads' nice value (the request path runs at 0).
constexpr int k_background_nice = 10;

/// Names the calling thread (top -H, perf) and lowers its priority: exporting is
/// background work (encoding a batch takes a millisecond or more of CPU);
/// on a busy node it must give way to the io threads, not preempt one and hold its
/// requests. Linux gives each thread its own nice value; this runs on the actor's own
/// thread (a detached actor). Failing (a sandbox that forbids it) changes nothing else.
void become_background_thread(const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), k_background_nice) != 0)
    log::debug(std::string("tracing: could not lower the priority of thread ") + name);
}

caf::behavior shipper_fn(shipper_actor* self, const trace_settings* s, std::vector<std::pair<caf::actor, exporter_counters*>> workers,
                         std::vector<record_filter> filters) {
  self->set_default_handler(caf::drop);
  auto& st = self->state;
  st.s = s;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    slot sl;
    sl.worker = workers[i].first;
    sl.c = workers[i].second;
    sl.filter = filters[i];
    st.slots.push_back(std::move(sl));
  }
  self->delayed_send(self, s->flush_interval, ttick_atom::value);
  return {
      [=](tbatch_atom, std::shared_ptr<std::vector<tracing::trace_record>>& raw) {
        for (auto& r : *raw) trace_detail::enrich(r);
        trace_batch b = std::move(raw);
        auto& st = self->state;
        for (std::size_t i = 0; i < st.slots.size(); ++i) {
          auto& sl = st.slots[i];
          for (std::uint32_t k = 0; k < b->size(); ++k) {
            if (!sl.filter.takes((*b)[k])) continue;
            sl.queue.emplace_back(b, k);
            sl.c->queued += 1;
          }
          // Bounded: the oldest records go first.
          while (sl.queue.size() > st.s->queue_records) {
            sl.queue.pop_front();
            sl.c->queued -= 1;
            sl.c->dropped += 1;
          }
          if (sl.queue.size() >= st.s->batch_size) dispatch(self, i);
        }
      },
      [=](ttick_atom) {
        auto& st = self->state;
        for (std::size_t i = 0; i < st.slots.size(); ++i) dispatch(self, i);
        if (!st.finalizing) self->delayed_send(self, st.s->flush_interval, ttick_atom::value);
      },
      [=](tretry_atom, std::uint32_t i) { send_job(self, i); },
      [=](tfinal_atom) -> caf::result<bool> {
        auto& st = self->state;
        st.finalizing = true;
        for (std::size_t i = 0; i < st.slots.size(); ++i) dispatch(self, i);
        if (all_idle(st)) return true;
        auto rp = self->make_response_promise();
        st.final_waiters.push_back(rp);
        return rp;
      },
  };
}

struct worker_state {
  std::unique_ptr<trace_detail::exporter> e;
  static inline const char* name = "gw.trace_exporter";
};
using worker_actor = caf::stateful_actor<worker_state>;

caf::behavior worker_fn(worker_actor* self, std::shared_ptr<std::unique_ptr<trace_detail::exporter>> e) {
  self->set_default_handler(caf::drop);
  self->state.e = std::move(*e);
  become_background_thread("gw-trace-export");
  return {
      [=](texport_atom, export_job& job) -> export_result {
        try {
          return self->state.e->send(job.records);
        } catch (const std::exception& ex) {
          export_result r;
          r.kind = export_result::retry;
          r.error = ex.what();
          return r;
        }
      },
  };
}

/// Answers /traces from PostgreSQL on its own connection.
class pg_reader final : public trace_detail::trace_reader {
 public:
  explicit pg_reader(const std::string& url) : db_(url) {}
  store::trace_page traces(const store::trace_query& q) override { return db_.traces(q); }
  std::optional<store::trace_row> trace(const std::string& id) override { return db_.trace(id); }

 private:
  store::pg_store db_;
};

class memory_reader final : public trace_detail::trace_reader {
 public:
  explicit memory_reader(std::shared_ptr<trace_detail::memory_store> m) : m_(std::move(m)) {}
  store::trace_page traces(const store::trace_query& q) override { return m_->query(q); }
  std::optional<store::trace_row> trace(const std::string& id) override { return m_->get(id); }

 private:
  std::shared_ptr<trace_detail::memory_store> m_;
};

struct reader_state {
  std::unique_ptr<pg_reader> r;
  static inline const char* name = "gw.trace_reader";
};
using reader_actor = caf::stateful_actor<reader_state>;

using query_callback = std::shared_ptr<std::function<void(int, std::string)>>;

}  // namespace
}  // namespace gw::tracing

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gw::tracing::query_callback)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<std::unique_ptr<gw::tracing::trace_detail::exporter>>)

namespace gw::tracing {
namespace {

caf::behavior reader_fn(reader_actor* self, std::string url) {
  self->set_default_handler(caf::drop);
  self->state.r = std::make_unique<pg_reader>(url);
  return {
      [=](tquery_atom, std::string& path, std::string& query, query_callback& cb) {
        auto [status, body] = trace_detail::serve_traces(*self->state.r, path, query);
        (*cb)(status, std::move(body));
      },
  };
}

}  // namespace

struct trace_pipeline::impl {
  caf::actor_system& sys;
  std::vector<std::unique_ptr<exporter_counters>> counters;
  std::vector<caf::actor> workers;
  caf::actor shipper;
  caf::actor reader;  // PostgreSQL store
  std::shared_ptr<trace_detail::memory_store> memory;
  /// Batches the exporters are done with, handed back to the io thread that made them.
  /// A record's strings are allocated on its io thread; freed on an exporter's thread,
  /// every free and the next allocations went through the malloc arena's lock, which
  /// both sides then fought over (a tenth of the gateway's time at 30k records/s, and
  /// futex wake-ups on the io threads). Freed on their own io thread, one or two per new
  /// record, the chunks land in that thread's cache and the next record reuses them.
  struct recycle_bin {
    std::mutex mu;
    std::vector<std::vector<tracing::trace_record>> batches;
    std::atomic<std::size_t> count{0};
    bool closed = false;  ///< the pipeline stopped: batches are freed where they are let go
  };
  struct alignas(64) io_buffer {
    std::vector<tracing::trace_record> records;
    std::vector<tracing::trace_record> draining;  ///< a returned batch, freed from the back
    std::vector<tracing::trace_record> spare;     ///< an emptied batch's storage, for the next
    std::shared_ptr<recycle_bin> bin = std::make_shared<recycle_bin>();
    std::atomic<std::uint64_t> dropped{0};

    /// Frees up to `n` returned records (io thread only).
    void reclaim(std::size_t n) {
      for (std::size_t k = 0; k < n; ++k) {
        if (draining.empty()) {
          if (bin->count.load(std::memory_order_acquire) == 0) return;
          std::vector<tracing::trace_record> next;
          {
            std::lock_guard lock(bin->mu);
            if (bin->batches.empty()) return;
            next = std::move(bin->batches.back());
            bin->batches.pop_back();
            bin->count.store(bin->batches.size(), std::memory_order_release);
          }
          if (draining.capacity() > spare.capacity()) spare.swap(draining);
          draining = std::move(next);
          if (draining.empty()) continue;
        }
        draining.pop_back();
      }
      if (draining.empty() && draining.capacity() > spare.capacity()) spare.swap(draining);
    }
  };
  std::vector<io_buffer> buffers;
  std::size_t per_io_cap = 0;
  std::atomic<bool> stopped{false};

  impl(caf::actor_system& s, std::size_t io) : sys(s), buffers(io) {}
};

trace_pipeline::trace_pipeline(caf::actor_system& sys, trace_settings s, std::size_t io_threads)
    : settings_(std::move(s)), impl_(std::make_unique<impl>(sys, io_threads)) {
  auto& m = *impl_;
  m.per_io_cap = std::max<std::size_t>(64, settings_.queue_records);
  std::vector<std::pair<caf::actor, exporter_counters*>> workers;
  std::vector<record_filter> filters;
  auto add = [&](std::string name, std::unique_ptr<trace_detail::exporter> e, record_filter f) {
    auto c = std::make_unique<exporter_counters>();
    c->name = std::move(name);
    auto holder = std::make_shared<std::unique_ptr<trace_detail::exporter>>(std::move(e));
    auto w = sys.spawn<caf::detached>(worker_fn, holder);
    workers.emplace_back(w, c.get());
    filters.push_back(f);
    m.workers.push_back(w);
    m.counters.push_back(std::move(c));
  };
  for (const auto& e : settings_.otlp) add(e.name, trace_detail::make_otlp_exporter(e, settings_.export_timeout), record_filter{&e});
  if (settings_.store) {
    if (!settings_.database_url.empty()) {
      add("trace_store", trace_detail::make_pg_store_exporter(settings_), record_filter{});
      m.reader = sys.spawn<caf::detached>(reader_fn, settings_.database_url);
    } else {
      m.memory = std::make_shared<trace_detail::memory_store>(settings_.memory_records);
      add("trace_store", trace_detail::make_memory_store_exporter(m.memory, settings_), record_filter{});
    }
  }
  if (settings_.request_log) add("request_log", trace_detail::make_log_exporter(settings_), record_filter{});
  if (!workers.empty()) m.shipper = sys.spawn(shipper_fn, &settings_, std::move(workers), std::move(filters));
}

trace_pipeline::~trace_pipeline() { shutdown(milliseconds(0)); }

void trace_pipeline::add(std::size_t io, tracing::trace_record&& r) {
  auto& b = impl_->buffers[io];
  b.reclaim(2);  // as many records are returned as are made: two per new one keeps up
  if (b.records.size() >= impl_->per_io_cap) {
    b.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  b.records.push_back(std::move(r));
}

void trace_pipeline::flush(std::size_t io) {
  auto& b = impl_->buffers[io];
  if (b.records.empty()) {
    // Idle: nothing new will free what came back, so free it now, and the room kept
    // for a busy tick.
    b.reclaim(std::numeric_limits<std::size_t>::max());
    if (b.records.capacity()) b.records = {};
    return;
  }
  if (!impl_->shipper || impl_->stopped.load(std::memory_order_relaxed)) {
    b.records.clear();
    return;
  }
  auto n = b.records.size();
  auto* v = new std::vector<tracing::trace_record>(std::move(b.records));
  b.records.swap(b.spare);  // empty; keeps the storage of a batch already freed
  b.records.clear();
  // Room for as many as this batch: growing by doubling would move every record (two
  // dozen strings each) again on each step.
  b.records.reserve(n + n / 4);
  std::shared_ptr<std::vector<tracing::trace_record>> batch(v, [bin = b.bin](std::vector<tracing::trace_record>* p) {
    std::unique_ptr<std::vector<tracing::trace_record>> owned(p);
    std::lock_guard lock(bin->mu);
    if (bin->closed) return;  // freed here, after the lock is released
    bin->batches.push_back(std::move(*owned));
    bin->count.store(bin->batches.size(), std::memory_order_release);
  });
  caf::anon_send(impl_->shipper, tbatch_atom::value, std::move(batch));
}

void trace_pipeline::query(std::string path, std::string query, std::function<void(int, std::string)> cb) {
  if (!settings_.store) {
    gw::error e{errc::not_found, "The trace store is off (gateway_settings.trace_store: false).", ""};
    return cb(404, to_openai_json(e));
  }
  if (impl_->memory) {
    memory_reader r(impl_->memory);
    auto [status, body] = trace_detail::serve_traces(r, path, query);
    return cb(status, std::move(body));
  }
  caf::anon_send(impl_->reader, tquery_atom::value, std::move(path), std::move(query),
                 std::make_shared<std::function<void(int, std::string)>>(std::move(cb)));
}

std::string trace_pipeline::metrics_text() const {
  if (impl_->counters.empty()) return {};
  std::string o;
  std::uint64_t io_dropped = 0;
  for (const auto& b : impl_->buffers) io_dropped += b.dropped.load(std::memory_order_relaxed);
  o += "# HELP llm_gateway_trace_records_total Trace records per exporter: exported, or dropped (queue full, "
       "export failed for good)\n# TYPE llm_gateway_trace_records_total counter\n";
  for (const auto& c : impl_->counters) {
    o += "llm_gateway_trace_records_total{exporter=\"" + c->name + "\",outcome=\"exported\"} " +
         std::to_string(c->exported.load()) + "\n";
    o += "llm_gateway_trace_records_total{exporter=\"" + c->name + "\",outcome=\"dropped\"} " +
         std::to_string(c->dropped.load() + io_dropped) + "\n";
  }
  o += "# HELP llm_gateway_trace_export_batches_total Export calls per exporter by result (ok, retried, failed)\n"
       "# TYPE llm_gateway_trace_export_batches_total counter\n";
  for (const auto& c : impl_->counters) {
    o += "llm_gateway_trace_export_batches_total{exporter=\"" + c->name + "\",result=\"ok\"} " +
         std::to_string(c->batches_ok.load()) + "\n";
    o += "llm_gateway_trace_export_batches_total{exporter=\"" + c->name + "\",result=\"retried\"} " +
         std::to_string(c->batches_retried.load()) + "\n";
    o += "llm_gateway_trace_export_batches_total{exporter=\"" + c->name + "\",result=\"failed\"} " +
         std::to_string(c->batches_failed.load()) + "\n";
  }
  o += "# HELP llm_gateway_trace_queue_records Trace records waiting in the exporter's queue\n"
       "# TYPE llm_gateway_trace_queue_records gauge\n";
  for (const auto& c : impl_->counters)
    o += "llm_gateway_trace_queue_records{exporter=\"" + c->name + "\"} " + std::to_string(std::max<std::int64_t>(0, c->queued.load())) + "\n";
  return o;
}

void trace_pipeline::shutdown(milliseconds timeout) {
  auto& m = *impl_;
  if (m.stopped.exchange(true)) return;
  if (m.shipper && timeout.count() > 0) {
    caf::scoped_actor self{m.sys};
    self->request(m.shipper, timeout, tfinal_atom::value)
        .receive([](bool) {},
                 [&](caf::error&) { log::warn("trace export: shutdown timed out; unexported records are dropped"); });
  }
  if (m.shipper) caf::anon_send_exit(m.shipper, caf::exit_reason::user_shutdown);
  for (auto& w : m.workers) caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  if (m.reader) caf::anon_send_exit(m.reader, caf::exit_reason::user_shutdown);
  m.shipper = caf::actor{};
  m.workers.clear();
  m.reader = caf::actor{};
  // The io threads flush no more: batches let go from now on are freed where they are.
  for (auto& b : m.buffers) {
    std::vector<std::vector<tracing::trace_record>> left;  // freed at the end of this scope
    {
      std::lock_guard lock(b.bin->mu);
      b.bin->closed = true;
      left.swap(b.bin->batches);
      b.bin->count.store(0, std::memory_order_release);
    }
  }
}

}  // namespace gw::tracing

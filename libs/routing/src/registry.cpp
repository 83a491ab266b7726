#include "gw/routing/registry.hpp"

#include <algorithm>
#include <cmath>

#include "gw/core/json_writer.hpp"

namespace gw::routing {
namespace {

constexpr std::int64_t k_created = 1677610602;  // the timestamp LiteLLM reports for models

std::chrono::milliseconds seconds_to_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

double routing_weight(const config::deployment& d) {
  // LiteLLM's simple-shuffle: `weight` if set, else rpm, else tpm, else uniform.
  if (d.weight && *d.weight > 0) return *d.weight;
  if (d.rpm && *d.rpm > 0) return static_cast<double>(*d.rpm);
  if (d.tpm && *d.tpm > 0) return static_cast<double>(*d.tpm);
  return 1.0;
}

void append_model_object(std::string& out, std::string_view id) {
  out += R"({"id":)";
  append_json_string(out, id);
  out += R"(,"object":"model","created":)";
  append_json_number(out, k_created);
  out += R"(,"owned_by":"openai"})";
}

}  // namespace

model_registry::model_registry(const config::gateway_config& cfg, telemetry::metrics& m,
                               std::vector<std::string>& warnings) {
  std::unordered_map<std::string, model_group*> by_name;
  for (const auto& d : cfg.model_list) {
    auto rt = std::make_unique<deployment_runtime>();
    rt->cfg = &d;
    rt->index = deployments_.size();
    rt->routing_weight = routing_weight(d);
    {
      limits::scope sc;
      sc.id = "deployment:" + d.id;
      sc.label = "deployment '" + d.id + "' of model group '" + d.model_name + "'";
      sc.rpm = d.rpm.value_or(-1);
      sc.tpm = d.tpm.value_or(-1);
      sc.max_parallel = d.max_parallel_requests.value_or(-1);
      rt->limited = sc.limited();
      rt->limit_scopes.push_back(std::move(sc));
    }
    rt->num_retries = d.num_retries            ? *d.num_retries
                      : d.max_retries          ? *d.max_retries
                      : cfg.router.num_retries ? *cfg.router.num_retries
                                               : cfg.litellm.num_retries;
    rt->target = providers::resolve_target(d);
    rt->problem = rt->target.problem;
    if (rt->problem.empty()) {
      std::string err;
      if (!http::parse_url(rt->target.base_url, rt->endpoint, err))
        rt->problem = "deployment '" + d.model_name + "': invalid api_base '" + rt->target.base_url + "': " + err;
    }
    rt->usable = rt->problem.empty();
    if (!rt->usable) warnings.push_back(rt->problem);
    rt->wildcard_model = d.upstream_model.find('*') != std::string::npos;
    if (rt->usable) {
      providers::endpoint_info ep{rt->endpoint.authority, rt->endpoint.base_path};
      rt->adapter = providers::make_adapter(d, rt->target, ep);
      if (!rt->adapter) {
        rt->usable = false;
        rt->problem = "deployment '" + d.model_name + "': provider of '" + d.model + "' is not supported";
        warnings.push_back(rt->problem);
      }
    }
    double timeout = d.timeout ? *d.timeout : (cfg.router.timeout ? *cfg.router.timeout : cfg.litellm.request_timeout);
    rt->timeout = seconds_to_ms(timeout);
    rt->stream_timeout = seconds_to_ms(d.stream_timeout            ? *d.stream_timeout
                                       : cfg.router.stream_timeout ? *cfg.router.stream_timeout
                                                                   : timeout);
    rt->probe = &m.deployment(d.model_name, d.model, d.id);

    auto& group = by_name[d.model_name];
    if (!group) {
      groups_.push_back(std::make_unique<model_group>());
      group = groups_.back().get();
      group->name = d.model_name;
      group->wildcard = !d.model_name.empty() && d.model_name.back() == '*';
    }
    rt->position = group->deployments.size();
    group->deployments.push_back(rt.get());
    deployments_.push_back(std::move(rt));
  }
  for (auto& g : groups_) {
    g->strategy = parse_strategy(cfg.router.routing_strategy);
    if (g->wildcard)
      wildcards_.push_back(g.get());
    else
      exact_.emplace(g->name, g.get());
  }
  std::sort(wildcards_.begin(), wildcards_.end(),
            [](const model_group* a, const model_group* b) { return a->name.size() > b->name.size(); });

  models_json_ = R"({"data":[)";
  bool first = true;
  for (auto& g : groups_) {
    if (g->wildcard) continue;
    if (!first) models_json_ += ',';
    first = false;
    append_model_object(models_json_, g->name);
  }
  models_json_ += R"(],"object":"list"})";
}

std::string model_registry::models_json_for(const std::function<bool(std::string_view)>& allowed) const {
  std::string out = R"({"data":[)";
  bool first = true;
  for (auto& g : groups_) {
    if (g->wildcard || !allowed(g->name)) continue;
    if (!first) out += ',';
    first = false;
    append_model_object(out, g->name);
  }
  out += R"(],"object":"list"})";
  return out;
}

std::string upstream_model(const deployment_runtime& d, std::string_view requested) {
  if (d.wildcard_model) return providers::upstream_model_for(requested, d.cfg->model_name, d.cfg->upstream_model);
  return d.cfg->upstream_model;
}

routing_strategy parse_strategy(std::string_view n) noexcept {
  if (n == "least-busy") return routing_strategy::least_busy;
  if (n == "latency-based-routing") return routing_strategy::latency_based;
  if (n == "usage-based-routing" || n == "usage-based-routing-v2") return routing_strategy::usage_based;
  if (n == "cost-based-routing") return routing_strategy::cost_based;
  return routing_strategy::simple_shuffle;
}

namespace {

/// A deployment's score under a strategy (lower is better).
double score(const deployment_runtime& d, routing_strategy s) noexcept {
  switch (s) {
    case routing_strategy::least_busy:
      return static_cast<double>(d.in_flight.load(std::memory_order_relaxed));
    case routing_strategy::latency_based:
      return static_cast<double>(d.ewma_latency_us.load(std::memory_order_relaxed));
    case routing_strategy::usage_based: {
      // Share of its tpm used in the last minute (raw tokens when it has no tpm).
      double used = static_cast<double>(d.tokens_last_minute.load(std::memory_order_relaxed));
      return d.cfg->tpm && *d.cfg->tpm > 0 ? used / static_cast<double>(*d.cfg->tpm) : used;
    }
    case routing_strategy::cost_based:
      return d.price ? static_cast<double>(d.price->input_per_token + d.price->output_per_token) : 1e300;
    case routing_strategy::simple_shuffle:
      break;
  }
  return 0;
}

}  // namespace

pick_result pick_deployment(const model_group& g, const std::vector<bool>* tried, double r01,
                            std::int64_t now_ms) noexcept {
  const auto& deps = g.deployments;
  pick_result out;
  // Deployments whose probe another request won during this call (groups have < 64).
  std::uint64_t lost_race = 0;
  for (int round = 0; round < 4; ++round) {
    out.cooling = false;
    auto open = [&](std::size_t i, bool& probe) {
      const auto& d = *deps[i];
      if (!d.usable || (tried && i < tried->size() && (*tried)[i]) || (i < 64 && (lost_race >> i & 1))) return false;
      auto h = static_cast<deployment_health>(d.health.load(std::memory_order_acquire));
      if (h == deployment_health::healthy) {
        probe = false;
        return true;
      }
      if (h == deployment_health::probing) return false;
      auto left = d.cooldown_until_ms.load(std::memory_order_relaxed) - now_ms;
      if (left > 0) {
        if (!out.cooling || left < out.cooldown_left_ms) out.cooldown_left_ms = left;
        out.cooling = true;
        return false;
      }
      probe = true;
      return true;
    };
    std::size_t chosen = static_cast<std::size_t>(-1);
    bool chosen_probe = false;
    if (g.strategy == routing_strategy::simple_shuffle) {
      double total = 0;
      bool probe = false;
      for (std::size_t i = 0; i < deps.size(); ++i)
        if (open(i, probe)) total += deps[i]->routing_weight;
      if (total > 0) {
        double pick = r01 * total;
        for (std::size_t i = 0; i < deps.size(); ++i) {
          if (!open(i, probe)) continue;
          chosen = i;
          chosen_probe = probe;
          pick -= deps[i]->routing_weight;
          if (pick < 0) break;
        }
      }
    } else {
      // Lowest score; ties go to the first from a rotating start (from r01).
      double best = 0;
      std::size_t n = deps.size();
      std::size_t start = n ? static_cast<std::size_t>(r01 * static_cast<double>(n)) % n : 0;
      for (std::size_t k = 0; k < n; ++k) {
        std::size_t i = (start + k) % n;
        bool probe = false;
        if (!open(i, probe)) continue;
        double sc = score(*deps[i], g.strategy);
        if (chosen == static_cast<std::size_t>(-1) || sc < best) {
          chosen = i;
          best = sc;
          chosen_probe = probe;
        }
      }
    }
    if (chosen == static_cast<std::size_t>(-1)) return out;
    if (!chosen_probe) {
      out.position = chosen;
      out.cooling = false;
      return out;
    }
    int expected = static_cast<int>(deployment_health::cooling);
    if (deps[chosen]->health.compare_exchange_strong(expected, static_cast<int>(deployment_health::probing),
                                                      std::memory_order_acq_rel)) {
      out.position = chosen;
      out.probe = true;
      out.cooling = false;
      return out;
    }
    if (chosen < 64) lost_race |= std::uint64_t{1} << chosen;  // another request probes it: choose again
  }
  return out;
}

const model_group* model_registry::find(std::string_view requested) const {
  if (auto it = exact_.find(requested); it != exact_.end()) return it->second;
  for (auto* g : wildcards_)
    if (providers::model_name_matches(g->name, requested)) return g;
  return nullptr;
}

std::string model_registry::model_json(std::string_view id) const {
  auto it = exact_.find(id);
  if (it == exact_.end()) return {};
  std::string out;
  append_model_object(out, id);
  return out;
}

}  // namespace gw::routing

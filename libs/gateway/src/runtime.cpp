#include "gw/gateway/runtime.hpp"

#include <algorithm>
#include <cmath>

#include "gw/core/json_writer.hpp"

namespace gw::gateway {
namespace {

constexpr std::int64_t k_created = 1677610602;  // the timestamp LiteLLM reports for models

std::string head_prefix(const http::endpoint& ep, providers::operation op,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string h;
  h += "POST ";
  h += ep.base_path;
  h += providers::operation_path(op);
  h += " HTTP/1.1\r\nhost: ";
  h += ep.authority;
  h += "\r\ncontent-type: application/json\r\nuser-agent: llm-gateway/";
  h += GW_VERSION;
  h += "\r\n";
  for (auto& [k, v] : headers) {
    h += k;
    h += ": ";
    h += v;
    h += "\r\n";
  }
  h += "content-length: ";
  return h;
}

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
    rt->admission_limited = d.rpm || d.tpm || d.max_parallel_requests;
    rt->routing_weight = routing_weight(d);
    rt->target = providers::resolve_target(d);
    rt->problem = rt->target.problem;
    if (rt->problem.empty()) {
      std::string err;
      if (!http::parse_url(rt->target.base_url, rt->endpoint, err))
        rt->problem = "deployment '" + d.model_name + "': invalid api_base '" + rt->target.base_url + "': " + err;
    }
    rt->usable = rt->problem.empty();
    if (!rt->usable) warnings.push_back(rt->problem);
    if (rt->usable) {
      for (auto op : {providers::operation::chat, providers::operation::completion, providers::operation::embedding})
        rt->head_prefix[static_cast<int>(op)] = head_prefix(rt->endpoint, op, rt->target.headers);
    }
    rt->wildcard_model = d.upstream_model.find('*') != std::string::npos;
    if (!rt->wildcard_model) rt->upstream_model_json = json_quote(d.upstream_model);
    double timeout = d.timeout ? *d.timeout : (cfg.router.timeout ? *cfg.router.timeout : cfg.litellm.request_timeout);
    rt->timeout = seconds_to_ms(timeout);
    rt->stream_timeout = seconds_to_ms(d.stream_timeout ? *d.stream_timeout : timeout);
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
    g->local_routing = true;
    for (auto* d : g->deployments)
      if (d->usable && d->admission_limited) g->local_routing = false;
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
    g->local_routing = true;
    for (auto* d : g->deployments)
      if (d->usable && d->admission_limited) g->local_routing = false;
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

std::size_t pick_deployment(const model_group& g, const std::vector<bool>* tried, double r01) noexcept {
  const auto& deps = g.deployments;
  auto open = [&](std::size_t i) { return deps[i]->usable && !(tried && i < tried->size() && (*tried)[i]); };
  double total = 0;
  for (std::size_t i = 0; i < deps.size(); ++i)
    if (open(i)) total += deps[i]->routing_weight;
  if (total <= 0) return static_cast<std::size_t>(-1);
  double pick = r01 * total;
  std::size_t chosen = static_cast<std::size_t>(-1);
  for (std::size_t i = 0; i < deps.size(); ++i) {
    if (!open(i)) continue;
    chosen = i;
    pick -= deps[i]->routing_weight;
    if (pick < 0) break;
  }
  return chosen;
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

}  // namespace gw::gateway

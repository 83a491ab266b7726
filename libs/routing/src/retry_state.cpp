#include "gw/routing/retry_state.hpp"

#include <algorithm>
#include <random>

#include "gw/routing/registry.hpp"

namespace gw::routing {
namespace {

class xorshift final : public random_source {
 public:
  xorshift() {
    std::random_device rd;
    s_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ 0x9e3779b97f4a7c15ULL;
  }
  double next() noexcept override {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return static_cast<double>(s_ >> 11) * (1.0 / 9007199254740992.0);
  }

 private:
  std::uint64_t s_;
};

config::error_class class_of_status(int status) noexcept {
  using config::error_class;
  switch (status) {
    case 400: return error_class::bad_request;
    case 401: return error_class::authentication;
    case 408: return error_class::timeout;
    case 429: return error_class::rate_limit;
    case 500: return error_class::internal_server;
    case 503: return error_class::service_unavailable;
    default: return error_class::none;
  }
}

const std::vector<fallback_target>* find_keyed(const providers::keyed_fallbacks& l, std::string_view group) {
  const std::vector<fallback_target>* any = nullptr;
  const std::vector<fallback_target>* star = nullptr;
  for (const auto& [from, to] : l) {
    if (from == group) return &to;
    if (from.empty() && !any) any = &to;
    if (from == "*" && !star) star = &to;
  }
  return any ? any : star;
}

}  // namespace

random_source& random_source::thread_default() noexcept {
  thread_local xorshift r;
  return r;
}

bool retryable_status(int status) noexcept { return status == 429 || status == 408 || status >= 500; }

config::error_class error_class_of(const attempt_failure& f) noexcept {
  using providers::failure_kind;
  switch (f.kind) {
    case failure_kind::content_policy: return config::error_class::content_policy;
    case failure_kind::context_window: return config::error_class::bad_request;
    case failure_kind::status: return class_of_status(f.status);
    case failure_kind::transport: return f.timeout ? config::error_class::timeout : config::error_class::none;
    case failure_kind::unavailable: break;
  }
  return config::error_class::none;
}

retry_state::retry_state(const retry_settings& s, random_source& rnd, std::string_view requested_group,
                         const providers::request_controls* req, int req_num_retries)
    : s_(s), rnd_(rnd), requested_(requested_group), req_(req), req_num_retries_(req_num_retries) {}

int retry_state::allowed_retries(const model_group& g, config::error_class cls, bool& policy_named) const {
  policy_named = false;
  // A deployment's num_retries (the same across a group unless set per deployment).
  int allowed = 0;
  for (auto* d : g.deployments) allowed = std::max(allowed, d->num_retries);
  // The request's own count may lower it, never raise it (the operator's setting caps it).
  if (req_num_retries_ >= 0) allowed = std::min(allowed, req_num_retries_);
  // retry_policy (the group's own first) decides for the classes it names, as LiteLLM's
  // does: that many retries, whatever the class (a 400 too).
  if (cls != config::error_class::none) {
    const config::error_class_counts* policy = &s_.router->retry_policy;
    for (const auto& [name, p] : s_.router->model_group_retry_policy)
      if (name == g.name) policy = &p;
    if (auto n = policy->get(cls)) {
      policy_named = true;
      allowed = *n;
    }
  }
  return allowed;
}

retry_state::decision retry_state::on_failure(const model_group& g, const attempt_failure& f, bool other_deployment) {
  using providers::failure_kind;
  auto cls = error_class_of(f);
  bool retryable = f.kind == failure_kind::transport || (f.kind == failure_kind::status && retryable_status(f.status));
  bool named = false;
  int allowed = allowed_retries(g, cls, named);
  if (named) retryable = f.kind != failure_kind::unavailable;
  decision d;
  if (retryable && group_retries_ < allowed) {
    // Exponential backoff with jitter: base * 2^(n-1), capped, times [0.5, 1).
    int n = group_retries_ + 1;
    double base = static_cast<double>(s_.backoff_base.count());
    double backoff = std::min(base * static_cast<double>(1u << std::min(n - 1, 16)),
                              static_cast<double>(s_.backoff_max.count()));
    auto delay = static_cast<std::int64_t>(backoff * (0.5 + 0.5 * rnd_.next()));
    delay = std::max<std::int64_t>(delay, s_.retry_after_min.count());
    if (other_deployment) {
      // Another healthy deployment not tried yet: go there.
      ++group_retries_;
      ++retries_;
      d.what = action::retry;
      d.delay = std::chrono::milliseconds(delay);
      return d;
    }
    // The same deployments again, waiting what the provider asked (retry-after) unless
    // that is longer than the gateway waits.
    if (f.retry_after_ms <= s_.retry_after_max.count()) {
      ++group_retries_;
      ++retries_;
      d.what = action::retry;
      d.delay = std::chrono::milliseconds(std::max(delay, f.retry_after_ms));
      d.reset_tried = true;
      return d;
    }
  }
  choose_list(f);
  d.what = list_ && index_ < list_->size() ? action::fallback : action::give_up;
  return d;
}

void retry_state::choose_list(const attempt_failure& f) {
  if (list_chosen_) return;
  list_chosen_ = true;
  using providers::failure_kind;
  const auto& r = *s_.router;
  auto find = [&](const std::vector<std::pair<std::string, std::vector<std::string>>>& l)
      -> const std::vector<fallback_target>* {
    for (const auto& [from, to] : l)
      if (from == requested_) {
        router_list_.clear();
        for (const auto& m : to) router_list_.push_back(fallback_target{m, {}});
        return &router_list_;
      }
    return nullptr;
  };
  // The request's lists replace the router's, kind by kind (as in LiteLLM).
  if (req_ && req_->disable_fallbacks) return;
  auto pick = [&](const std::optional<providers::keyed_fallbacks>& mine,
                  const std::vector<std::pair<std::string, std::vector<std::string>>>& router)
      -> const std::vector<fallback_target>* {
    if (req_ && mine) return find_keyed(*mine, requested_);
    return find(router);
  };
  static const std::optional<providers::keyed_fallbacks> none;
  if (f.kind == failure_kind::context_window)
    list_ = pick(req_ ? req_->context_window_fallbacks : none, r.context_window_fallbacks);
  else if (f.kind == failure_kind::content_policy)
    list_ = pick(req_ ? req_->content_policy_fallbacks : none, r.content_policy_fallbacks);
  if (list_) return;
  bool general = f.kind != failure_kind::status || retryable_status(f.status) || f.provider_status == 401 ||
                 f.provider_status == 403 || f.provider_status == 404 || f.kind == failure_kind::context_window ||
                 f.kind == failure_kind::content_policy;
  // A client's own list is tried for any failure (LiteLLM: "any exception").
  if (req_ && req_->fallbacks) {
    list_ = find_keyed(*req_->fallbacks, requested_);
    return;
  }
  if (!general) return;
  list_ = find(r.fallbacks);
  if (!list_ && !r.default_fallbacks.empty()) {
    router_list_.clear();
    for (const auto& m : r.default_fallbacks) router_list_.push_back(fallback_target{m, {}});
    list_ = &router_list_;
  }
}

const fallback_target* retry_state::next_fallback() {
  int max = req_ && req_->max_fallbacks ? *req_->max_fallbacks : s_.max_fallbacks;
  if (!list_ || index_ >= list_->size() || fallbacks_ >= max) return nullptr;
  return &(*list_)[index_++];
}

void retry_state::took_fallback() noexcept {
  ++fallbacks_;
  group_retries_ = 0;
}

}  // namespace gw::routing

// The facts a trace shows without content, read on the request path from the bodies the
// gateway holds anyway (padded: parsed in place), so that neither body is copied into
// the record nor parsed again by an exporter: the request's parameters, "user" and
// "metadata"; a whole answer's id, model and finish reasons.

#include <simdjson.h>

#include "gw/core/json_parsers.hpp"
#include "gw/tracing/content.hpp"

namespace gw::tracing {
namespace {

namespace od = simdjson::ondemand;

od::parser& thread_parser(std::size_t size) {
  thread_local od::parser p;
  return fit_parser(p, size);
}

std::optional<double> as_double(od::value v) {
  double d;
  if (v.get_double().get(d)) return std::nullopt;
  return d;
}

std::optional<std::int64_t> as_int(od::value v) {
  std::int64_t n;
  if (v.get_int64().get(n)) return std::nullopt;
  return n;
}

}  // namespace

bool read_request_facts(const char* data, std::size_t size, std::size_t capacity, request_view& out,
                        std::string& user, std::string& metadata) {
  if (capacity < size + simdjson::SIMDJSON_PADDING) return false;
  od::document doc;
  od::object root;
  if (thread_parser(size).iterate(data, size, capacity).get(doc) || doc.get_object().get(root)) return false;
  for (auto field : root) {
    std::string_view key;
    od::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) return false;
    if (key == "temperature") out.temperature = as_double(v);
    else if (key == "top_p") out.top_p = as_double(v);
    else if (key == "frequency_penalty") out.frequency_penalty = as_double(v);
    else if (key == "presence_penalty") out.presence_penalty = as_double(v);
    else if (key == "max_tokens" || key == "max_completion_tokens") {
      if (!out.max_tokens) out.max_tokens = as_int(v);
    } else if (key == "seed") out.seed = as_int(v);
    else if (key == "n") out.n = as_int(v);
    else if (key == "stop") {
      std::string_view s;
      od::array arr;
      if (!v.get_string().get(s)) {
        out.stop.emplace_back(s);
      } else if (!v.get_array().get(arr)) {
        for (auto e : arr)
          if (!e.get_string().get(s)) out.stop.emplace_back(s);
      }
    } else if (key == "user") {
      std::string_view s;
      if (!v.get_string().get(s)) user.assign(s);
    } else if (key == "metadata") {
      od::object m;
      std::string_view raw;
      if (!v.get_object().get(m) && !m.raw_json().get(raw)) metadata.assign(raw);
    }
  }
  return true;
}

bool read_answer_facts(const char* data, std::size_t size, std::size_t capacity, response_view& out) {
  if (capacity < size + simdjson::SIMDJSON_PADDING) return false;
  od::document doc;
  od::object root;
  if (thread_parser(size).iterate(data, size, capacity).get(doc) || doc.get_object().get(root)) return false;
  for (auto field : root) {
    std::string_view key;
    od::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) return false;
    std::string_view s;
    if (key == "id") {
      if (!v.get_string().get(s)) out.id.assign(s);
    } else if (key == "model") {
      if (!v.get_string().get(s)) out.model.assign(s);
    } else if (key == "choices") {
      od::array choices;
      if (v.get_array().get(choices)) continue;
      for (auto c : choices) {
        od::object o;
        if (c.get_object().get(o)) continue;
        std::string reason;
        for (auto cf : o) {
          std::string_view ck;
          if (cf.unescaped_key().get(ck)) break;
          if (ck != "finish_reason") continue;
          od::value fv;
          if (!cf.value().get(fv) && !fv.get_string().get(s)) reason.assign(s);
        }
        out.finish_reasons.push_back(std::move(reason));
      }
    }
  }
  return true;
}

}  // namespace gw::tracing

// The spend spool: batches the database could not take, one JSON line each, appended
// and fsync'd so that neither SIGTERM nor a database outage loses spend. Read back at
// start and re-sent (the database skips a batch id it already applied).

#include <fcntl.h>
#include <unistd.h>

#include <simdjson.h>

#include <fstream>
#include <sstream>

#include "gw/core/files.hpp"
#include "gw/core/json_writer.hpp"
#include "internal.hpp"

namespace gw::accounts {
namespace {

std::int64_t micros(keys::sys_time t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
keys::sys_time from_micros(std::int64_t v) {
  return keys::sys_time(std::chrono::duration_cast<keys::sys_time::duration>(std::chrono::microseconds(v)));
}

void put(std::string& o, std::string_view k, std::string_view v, bool comma = true) {
  if (comma) o += ',';
  append_json_string(o, k);
  o += ':';
  append_json_string(o, v);
}
void put(std::string& o, std::string_view k, std::int64_t v, bool comma = true) {
  if (comma) o += ',';
  append_json_string(o, k);
  o += ':';
  o += std::to_string(v);
}

void entity_list(std::string& o, std::string_view name, const std::map<entity_ref, keys::money>& m) {
  o += ',';
  append_json_string(o, name);
  o += ":[";
  bool first = true;
  for (auto& [e, v] : m) {
    if (!first) o += ',';
    first = false;
    o += '[';
    o += std::to_string(static_cast<int>(e.kind));
    o += ',';
    append_json_string(o, e.id);
    o += ',';
    append_json_string(o, e.model);
    o += ',';
    o += std::to_string(v);
    o += ']';
  }
  o += ']';
}

std::string serialize(const pending_batch& p) {
  const auto& b = p.batch;
  std::string o = "{";
  put(o, "id", p.id, false);
  put(o, "node", b.node_id);
  entity_list(o, "spend", b.entity_spend);
  entity_list(o, "returns", b.lease_returns);
  o += ",\"key_model\":[";
  bool first = true;
  for (auto& [km, v] : b.key_model_spend) {
    if (!first) o += ',';
    first = false;
    o += '[';
    append_json_string(o, km.first);
    o += ',';
    append_json_string(o, km.second);
    o += ',' + std::to_string(v) + ']';
  }
  o += "],\"logs\":[";
  first = true;
  for (auto& l : b.logs) {
    if (!first) o += ',';
    first = false;
    o += '{';
    put(o, "request_id", l.request_id, false);
    put(o, "call_type", l.call_type);
    put(o, "api_key", l.api_key);
    put(o, "key_alias", l.key_alias);
    put(o, "user_id", l.user_id);
    put(o, "team_id", l.team_id);
    put(o, "model_group", l.model_group);
    put(o, "model_id", l.model_id);
    put(o, "model", l.model);
    put(o, "api_base", l.api_base);
    put(o, "prompt_tokens", l.prompt_tokens);
    put(o, "completion_tokens", l.completion_tokens);
    put(o, "total_tokens", l.total_tokens);
    put(o, "spend", l.spend);
    put(o, "start", micros(l.start_time));
    put(o, "end", micros(l.end_time));
    put(o, "first", l.completion_start_time ? micros(*l.completion_start_time) : -1);
    put(o, "status", l.status);
    put(o, "http_status", l.http_status);
    put(o, "cache_hit", l.cache_hit ? 1 : 0);
    put(o, "metadata", l.metadata);
    put(o, "route", l.route);
    put(o, "request_body", l.request_body);
    o += '}';
  }
  o += "]}";
  return o;
}

template <class T>
T get_or(simdjson::dom::element e, std::string_view k, T dflt) {
  T v;
  if (e[k].get(v) == simdjson::SUCCESS) return v;
  return dflt;
}

bool read_entities(simdjson::dom::element doc, std::string_view k, std::map<entity_ref, keys::money>& out) {
  simdjson::dom::array arr;
  if (doc[k].get(arr)) return false;
  for (auto item : arr) {
    simdjson::dom::array t;
    if (item.get(t) || t.size() != 4) return false;
    int64_t kind, v;
    std::string_view id, model;
    if (t.at(0).get(kind) || t.at(1).get(id) || t.at(2).get(model) || t.at(3).get(v)) return false;
    if (kind < 0 || kind > 3) return false;
    out[entity_ref{static_cast<entity_kind>(kind), std::string(id), std::string(model)}] = v;
  }
  return true;
}

bool parse(std::string_view line, pending_batch& p) {
  simdjson::dom::parser parser;
  simdjson::padded_string ps(line);
  simdjson::dom::element doc;
  if (parser.parse(ps).get(doc)) return false;
  std::string_view id, node;
  if (doc["id"].get(id) || doc["node"].get(node)) return false;
  p.id = id;
  p.batch.node_id = node;
  if (!read_entities(doc, "spend", p.batch.entity_spend) || !read_entities(doc, "returns", p.batch.lease_returns))
    return false;
  simdjson::dom::array km;
  if (doc["key_model"].get(km)) return false;
  for (auto item : km) {
    simdjson::dom::array t;
    std::string_view a, b;
    int64_t v;
    if (item.get(t) || t.size() != 3 || t.at(0).get(a) || t.at(1).get(b) || t.at(2).get(v)) return false;
    p.batch.key_model_spend[{std::string(a), std::string(b)}] = v;
  }
  simdjson::dom::array logs;
  if (doc["logs"].get(logs)) return false;
  for (auto item : logs) {
    spend_log_row l;
    auto s = [&](std::string_view k) { return std::string(get_or<std::string_view>(item, k, "")); };
    auto n = [&](std::string_view k) { return get_or<int64_t>(item, k, 0); };
    l.request_id = s("request_id");
    l.call_type = s("call_type");
    l.api_key = s("api_key");
    l.key_alias = s("key_alias");
    l.user_id = s("user_id");
    l.team_id = s("team_id");
    l.model_group = s("model_group");
    l.model_id = s("model_id");
    l.model = s("model");
    l.api_base = s("api_base");
    l.prompt_tokens = n("prompt_tokens");
    l.completion_tokens = n("completion_tokens");
    l.total_tokens = n("total_tokens");
    l.spend = n("spend");
    l.start_time = from_micros(n("start"));
    l.end_time = from_micros(n("end"));
    if (auto f = n("first"); f >= 0) l.completion_start_time = from_micros(f);
    l.status = s("status");
    l.http_status = static_cast<int>(n("http_status"));
    l.cache_hit = n("cache_hit") != 0;
    l.metadata = s("metadata");
    if (l.metadata.empty()) l.metadata = "{}";
    l.route = s("route");
    l.request_body = s("request_body");
    p.batch.logs.push_back(std::move(l));
  }
  p.from_spool_only = true;
  return true;
}

}  // namespace

std::vector<pending_batch> read_spool(const std::string& path, std::string& err) {
  std::vector<pending_batch> out;
  std::ifstream in(path);
  if (!in) return out;  // no spool: nothing pending
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    pending_batch p;
    if (!parse(line, p)) {
      // A torn last line (killed mid-write) is skipped; the batch before it is whole.
      err += path + ":" + std::to_string(n) + ": unreadable spool line skipped\n";
      continue;
    }
    out.push_back(std::move(p));
  }
  return out;
}

bool append_spool(const std::string& path, const pending_batch& b) {
  std::string line = serialize(b);
  line += '\n';
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const char* p = line.data();
  std::size_t left = line.size();
  bool ok = true;
  while (left > 0) {
    auto w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      ok = false;
      break;
    }
    p += w;
    left -= static_cast<std::size_t>(w);
  }
  if (ok) ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

bool rewrite_spool(const std::string& path, const std::deque<pending_batch>& batches) {
  if (batches.empty()) return ::unlink(path.c_str()) == 0 || errno == ENOENT;
  std::string all;
  for (auto& b : batches) {
    all += serialize(b);
    all += '\n';
  }
  return write_file_atomic(path, all);
}

}  // namespace gw::accounts

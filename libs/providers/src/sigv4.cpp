#include "gw/providers/sigv4.hpp"
#include "gw/core/strings.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace gw::providers {

namespace {

constexpr std::string_view k_algorithm = "AWS4-HMAC-SHA256";

bool unreserved(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}


char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// Header value as SigV4 wants it: trimmed, inner runs of whitespace collapsed to one space.
std::string canonical_value(std::string_view v) {
  v = trim(v);
  std::string out;
  out.reserve(v.size());
  bool in_space = false;
  for (char c : v) {
    if (is_space(c)) {
      in_space = true;
      continue;
    }
    if (in_space) out += ' ';
    in_space = false;
    out += c;
  }
  return out;
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view s) noexcept {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

/// Parses "YYYYMMDDTHHMMSSZ".
std::optional<std::chrono::system_clock::time_point> parse_amz_date(std::string_view s) {
  using namespace std::chrono;
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || !all_digits(s.substr(0, 8)) || !all_digits(s.substr(9, 6)))
    return std::nullopt;
  year_month_day ymd{year{to_int(s.substr(0, 4))}, month{static_cast<unsigned>(to_int(s.substr(4, 2)))},
                     day{static_cast<unsigned>(to_int(s.substr(6, 2)))}};
  int hh = to_int(s.substr(9, 2)), mm = to_int(s.substr(11, 2)), ss = to_int(s.substr(13, 2));
  if (!ymd.ok() || hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  return system_clock::time_point(sys_days(ymd) + hours(hh) + minutes(mm) + seconds(ss));
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (true) {
    auto next = s.find(sep, pos);
    out.push_back(s.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos));
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  return out;
}

}  // namespace

std::string hex_encode(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed (OpenSSL)");
  return hex_encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), md, &len))
    throw std::runtime_error("HMAC-SHA256 failed (OpenSSL)");
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (unsigned char c : s) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

std::string uri_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  auto day_point = floor<days>(secs);
  year_month_day ymd{day_point};
  hh_mm_ss hms{secs - day_point};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string canonical_uri(std::string_view wire_path) {
  if (wire_path.empty()) return "/";
  return uri_encode(wire_path, true);
}

std::string canonical_query(std::string_view raw_query) {
  if (raw_query.empty()) return {};
  std::vector<std::pair<std::string, std::string>> params;
  for (auto part : split(raw_query, '&')) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string_view k = part.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
    params.emplace_back(uri_encode(uri_decode(k), false), uri_encode(uri_decode(v), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

canonical_request_parts canonical_request(std::string_view method, std::string_view wire_path,
                                          std::string_view raw_query, const header_list& headers,
                                          std::string_view payload_hash) {
  // Lower-case names, canonical values; several fields of one name keep their order
  // (stable sort) and are joined with ','.
  std::vector<std::pair<std::string, std::string>> hs;
  hs.reserve(headers.size());
  for (auto& [k, v] : headers) hs.emplace_back(to_lower(trim(k)), canonical_value(v));
  std::stable_sort(hs.begin(), hs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  canonical_request_parts out;
  std::string& r = out.request;
  r.reserve(256 + wire_path.size() + raw_query.size());
  r.append(method);
  r += '\n';
  r += canonical_uri(wire_path);
  r += '\n';
  r += canonical_query(raw_query);
  r += '\n';
  for (std::size_t i = 0; i < hs.size(); ++i) {
    if (i > 0 && hs[i].first == hs[i - 1].first) continue;  // joined below with the first one
    r += hs[i].first;
    r += ':';
    r += hs[i].second;
    for (std::size_t j = i + 1; j < hs.size() && hs[j].first == hs[i].first; ++j) {
      r += ',';
      r += hs[j].second;
    }
    r += '\n';
    if (!out.signed_headers.empty()) out.signed_headers += ';';
    out.signed_headers += hs[i].first;
  }
  r += '\n';
  r += out.signed_headers;
  r += '\n';
  r.append(payload_hash);
  return out;
}

std::string credential_scope(std::string_view date8, std::string_view region, std::string_view service) {
  std::string s;
  s.reserve(date8.size() + region.size() + service.size() + 16);
  s.append(date8);
  s += '/';
  s.append(region);
  s += '/';
  s.append(service);
  s += "/aws4_request";
  return s;
}

std::string string_to_sign(std::string_view amz_date_value, std::string_view scope,
                           std::string_view canonical_request_text) {
  std::string s(k_algorithm);
  s += '\n';
  s.append(amz_date_value);
  s += '\n';
  s.append(scope);
  s += '\n';
  s += sha256_hex(canonical_request_text);
  return s;
}

std::string signing_key(std::string_view secret, std::string_view date8, std::string_view region,
                        std::string_view service) {
  std::string k = "AWS4";
  k.append(secret);
  std::string k_date = hmac_sha256(k, date8);
  std::string k_region = hmac_sha256(k_date, region);
  std::string k_service = hmac_sha256(k_region, service);
  return hmac_sha256(k_service, "aws4_request");
}

std::string sigv4_signature(std::string_view key, std::string_view string_to_sign_text) {
  return hex_encode(hmac_sha256(key, string_to_sign_text));
}

header_list sigv4_sign(const sigv4_input& in, const aws_credentials& c, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now) {
  std::string date = amz_date(now);
  std::string date8 = date.substr(0, 8);
  header_list to_sign;
  to_sign.reserve(in.headers.size() + 2);
  for (auto& h : in.headers) {
    // The caller's own x-amz-date / token would be signed twice (and differ): ours win.
    auto name = to_lower(h.first);
    if (name == "x-amz-date" || name == "x-amz-security-token" || name == "authorization") continue;
    to_sign.emplace_back(std::move(name), h.second);
  }
  to_sign.emplace_back("x-amz-date", date);
  if (!c.session_token.empty()) to_sign.emplace_back("x-amz-security-token", c.session_token);

  auto canon = canonical_request(in.method, in.path, in.query, to_sign, sha256_hex(in.body));
  std::string scope = credential_scope(date8, region, service);
  std::string sts = string_to_sign(date, scope, canon.request);
  // The signing key changes once a day per secret: derived once per thread and day
  // (four HMACs saved on every request).
  struct cached_key {
    std::string secret, date8, region, service, key;
  };
  thread_local cached_key cache;
  if (cache.key.empty() || cache.date8 != date8 || cache.secret != c.secret_access_key || cache.region != region ||
      cache.service != service) {
    cache = cached_key{c.secret_access_key, std::string(date8), std::string(region), std::string(service),
                       signing_key(c.secret_access_key, date8, region, service)};
  }
  std::string sig = sigv4_signature(cache.key, sts);

  std::string auth(k_algorithm);
  auth += " Credential=";
  auth += c.access_key_id;
  auth += '/';
  auth += scope;
  auth += ", SignedHeaders=";
  auth += canon.signed_headers;
  auth += ", Signature=";
  auth += sig;

  header_list out;
  out.emplace_back("x-amz-date", std::move(date));
  if (!c.session_token.empty()) out.emplace_back("x-amz-security-token", c.session_token);
  out.emplace_back("authorization", std::move(auth));
  return out;
}

namespace {

sigv4_check fail(sigv4_check c, sigv4_failure f, std::string reason) {
  c.failure = f;
  c.reason = std::move(reason);
  return c;
}

}  // namespace

sigv4_check verify_sigv4(std::string_view method, std::string_view wire_path, std::string_view raw_query,
                         const header_list& headers, std::string_view body, const aws_key_lookup& lookup,
                         std::chrono::system_clock::time_point now, std::chrono::seconds allowed_skew,
                         std::string_view service) {
  sigv4_check res;
  auto header = [&](std::string_view name) -> std::optional<std::string_view> {
    for (auto& [k, v] : headers)
      if (k == name) return std::string_view(v);
    return std::nullopt;
  };

  auto auth_h = header("authorization");
  if (!auth_h || trim(*auth_h).empty())
    return fail(res, sigv4_failure::missing_authorization, "Missing Authorization header");
  std::string_view auth = trim(*auth_h);
  if (auth.substr(0, k_algorithm.size()) != k_algorithm || auth.size() == k_algorithm.size() ||
      !is_space(auth[k_algorithm.size()]))
    return fail(res, sigv4_failure::malformed_authorization,
                "Authorization header is not AWS4-HMAC-SHA256 (Credential=..., SignedHeaders=..., Signature=...)");

  // "Credential=AKID/date/region/service/aws4_request, SignedHeaders=a;b, Signature=hex",
  // components separated by ',' with optional spaces, in any order.
  std::optional<std::string_view> credential, signed_headers, signature;
  for (auto part : split(auth.substr(k_algorithm.size()), ',')) {
    part = trim(part);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    auto key = part.substr(0, eq), value = part.substr(eq + 1);
    if (key == "Credential") credential = value;
    else if (key == "SignedHeaders") signed_headers = value;
    else if (key == "Signature") signature = value;
  }
  if (!credential || !signed_headers || !signature || credential->empty() || signed_headers->empty() ||
      signature->empty())
    return fail(res, sigv4_failure::malformed_authorization,
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'");

  auto scope_parts = split(*credential, '/');
  if (scope_parts.size() != 5 || scope_parts[0].empty())
    return fail(res, sigv4_failure::malformed_authorization,
                "Credential must be <access key id>/<date>/<region>/<service>/aws4_request");
  res.access_key_id.assign(scope_parts[0]);
  res.region.assign(scope_parts[2]);
  if (scope_parts[4] != "aws4_request" || scope_parts[1].size() != 8 || !all_digits(scope_parts[1]) ||
      scope_parts[2].empty())
    return fail(res, sigv4_failure::bad_scope, "Credential scope must be <YYYYMMDD>/<region>/<service>/aws4_request");
  if (scope_parts[3] != service)
    return fail(res, sigv4_failure::bad_scope,
                "Credential should be scoped to correct service: '" + std::string(service) + "', not '" +
                    std::string(scope_parts[3]) + "'");

  auto date_h = header("x-amz-date");
  if (!date_h) return fail(res, sigv4_failure::bad_date, "Missing x-amz-date header");
  std::string_view date = trim(*date_h);
  auto signed_at = parse_amz_date(date);
  if (!signed_at) return fail(res, sigv4_failure::bad_date, "x-amz-date must be YYYYMMDDTHHMMSSZ");
  if (date.substr(0, 8) != scope_parts[1])
    return fail(res, sigv4_failure::bad_scope, "Credential date does not match x-amz-date");
  auto skew = *signed_at > now ? *signed_at - now : now - *signed_at;
  if (skew > allowed_skew)
    return fail(res, sigv4_failure::bad_date,
                "Signature expired or not yet valid: " + std::string(date) + " is more than " +
                    std::to_string(allowed_skew.count()) + " s from the server's time");

  // Signed header names: lower-case, ';'-separated; host and x-amz-date must be among them.
  auto names = split(*signed_headers, ';');
  bool has_host = false, has_date = false, has_token = false;
  for (auto n : names) {
    if (n.empty() || to_lower(n) != n)
      return fail(res, sigv4_failure::malformed_authorization, "SignedHeaders must be lower-case names joined by ';'");
    has_host |= n == "host";
    has_date |= n == "x-amz-date";
    has_token |= n == "x-amz-security-token";
  }
  if (!has_host || !has_date)
    return fail(res, sigv4_failure::malformed_authorization, "SignedHeaders must include host and x-amz-date");

  std::optional<aws_credentials> creds = lookup ? lookup(res.access_key_id) : std::nullopt;
  if (!creds || creds->expiration <= now)
    return fail(res, sigv4_failure::unknown_key, "The security token included in the request is invalid");

  auto token = header("x-amz-security-token");
  if (!creds->session_token.empty()) {
    if (!token || *token != creds->session_token)
      return fail(res, sigv4_failure::token_mismatch, "The security token included in the request is invalid");
    if (!has_token)
      return fail(res, sigv4_failure::malformed_authorization, "x-amz-security-token must be signed");
  } else if (token && !token->empty()) {
    return fail(res, sigv4_failure::token_mismatch,
                "The security token included in the request is invalid (long-term keys take no session token)");
  }

  header_list to_sign;
  for (auto n : names) {
    bool found = false;
    for (auto& [k, v] : headers) {
      if (k == n) {
        to_sign.emplace_back(k, v);
        found = true;
      }
    }
    if (!found)
      return fail(res, sigv4_failure::malformed_authorization,
                  "Signed header '" + std::string(n) + "' is not in the request");
  }

  auto canon = canonical_request(method, wire_path, raw_query, to_sign, sha256_hex(body));
  std::string scope = credential_scope(scope_parts[1], scope_parts[2], scope_parts[3]);
  std::string expected =
      sigv4_signature(signing_key(creds->secret_access_key, scope_parts[1], scope_parts[2], scope_parts[3]),
                      string_to_sign(date, scope, canon.request));
  if (expected.size() != signature->size() ||
      CRYPTO_memcmp(expected.data(), signature->data(), expected.size()) != 0)
    return fail(res, sigv4_failure::signature_mismatch,
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method.");
  return res;
}

}  // namespace gw::providers

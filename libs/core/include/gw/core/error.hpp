#pragma once
/// The one place where a gateway failure becomes an HTTP status and an OpenAI-shaped
/// error body: {"error":{"message","type","param","code"}}.

#include <string>
#include <string_view>

namespace gw {

enum class errc {
  invalid_json,              // 400 body is not valid JSON
  invalid_request,           // 400 semantically wrong request (type, missing field)
  missing_parameter,         // 400 required field missing
  invalid_type,              // 400 field of the wrong JSON type
  auth_error,                // 401 missing or wrong key
  forbidden,                 // 403 authenticated, but not allowed (e.g. admin route with a virtual key)
  not_found,                 // 404 no such key, user, team or trace
  conflict,                  // 400 already exists (LiteLLM answers 400)
  budget_exceeded,           // 429 a budget would be exceeded
  route_not_found,           // 404 no such route
  model_not_found,           // 404 no such model group
  method_not_allowed,        // 405
  request_timeout,           // 408 client too slow sending the request
  payload_too_large,         // 413 body over the configured limit
  headers_too_large,         // 431
  rate_limited,              // 429 admission refused (deployment rpm/tpm/parallel)
  internal_error,            // 500
  not_implemented,           // 501 provider or route not implemented yet
  upstream_connect_error,    // 502 could not reach the provider
  upstream_bad_response,     // 502 provider answered something unusable
  upstream_stream_error,     // 502 stream broke mid-way (only ever sent as an SSE event)
  service_unavailable,       // 503 draining or overloaded
  upstream_timeout,          // 504 provider did not answer in time
};

/// One failure, ready to be rendered for the client.
struct error {
  errc code;
  std::string message;
  std::string param;  // empty = null
};

/// HTTP status for an error code.
int http_status(errc code) noexcept;
/// OpenAI error "type" (invalid_request_error, auth_error, rate_limit_error, ...).
std::string_view error_type(errc code) noexcept;
/// Machine-readable "code" string (model_not_found, invalid_api_key, ...).
std::string_view error_code_string(errc code) noexcept;

/// {"error":{"message":...,"type":...,"param":...,"code":...}}
std::string to_openai_json(const error& e);
/// Same, for an arbitrary status/type/code (used to wrap an upstream's non-JSON error).
std::string openai_error_json(std::string_view message, std::string_view type,
                              std::string_view param, std::string_view code);

}  // namespace gw

#include "gw/core/error.hpp"

#include "gw/core/json_writer.hpp"

namespace gw {

int http_status(errc code) noexcept {
  switch (code) {
    case errc::invalid_json:
    case errc::invalid_request:
    case errc::missing_parameter:
    case errc::invalid_type:
    case errc::conflict: return 400;
    case errc::forbidden: return 403;
    case errc::not_found: return 404;
    case errc::budget_exceeded: return 429;
    case errc::auth_error: return 401;
    case errc::route_not_found:
    case errc::model_not_found: return 404;
    case errc::method_not_allowed: return 405;
    case errc::request_timeout: return 408;
    case errc::payload_too_large: return 413;
    case errc::rate_limited: return 429;
    case errc::headers_too_large: return 431;
    case errc::internal_error: return 500;
    case errc::not_implemented: return 501;
    case errc::upstream_connect_error:
    case errc::upstream_bad_response:
    case errc::upstream_stream_error: return 502;
    case errc::service_unavailable: return 503;
    case errc::upstream_timeout: return 504;
  }
  return 500;
}

std::string_view error_type(errc code) noexcept {
  switch (code) {
    case errc::invalid_json:
    case errc::invalid_request:
    case errc::missing_parameter:
    case errc::invalid_type:
    case errc::route_not_found:
    case errc::model_not_found:
    case errc::method_not_allowed:
    case errc::request_timeout:
    case errc::payload_too_large:
    case errc::headers_too_large:
    case errc::not_found:
    case errc::conflict: return "invalid_request_error";
    case errc::forbidden: return "permission_error";
    case errc::budget_exceeded: return "budget_exceeded";
    case errc::auth_error: return "auth_error";
    case errc::rate_limited: return "rate_limit_error";
    case errc::not_implemented: return "not_implemented_error";
    case errc::upstream_timeout: return "timeout";
    case errc::service_unavailable: return "service_unavailable";
    case errc::internal_error:
    case errc::upstream_connect_error:
    case errc::upstream_bad_response:
    case errc::upstream_stream_error: return "api_error";
  }
  return "api_error";
}

std::string_view error_code_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_json: return "invalid_json";
    case errc::invalid_request: return "invalid_request";
    case errc::missing_parameter: return "missing_required_parameter";
    case errc::invalid_type: return "invalid_type";
    case errc::auth_error: return "invalid_api_key";
    case errc::forbidden: return "forbidden";
    case errc::not_found: return "not_found";
    case errc::conflict: return "already_exists";
    case errc::budget_exceeded: return "budget_exceeded";
    case errc::route_not_found: return "route_not_found";
    case errc::model_not_found: return "model_not_found";
    case errc::method_not_allowed: return "method_not_allowed";
    case errc::request_timeout: return "request_timeout";
    case errc::payload_too_large: return "request_too_large";
    case errc::headers_too_large: return "headers_too_large";
    case errc::rate_limited: return "rate_limit_exceeded";
    case errc::internal_error: return "internal_error";
    case errc::not_implemented: return "not_implemented";
    case errc::upstream_connect_error: return "upstream_connection_error";
    case errc::upstream_bad_response: return "upstream_bad_response";
    case errc::upstream_stream_error: return "upstream_stream_error";
    case errc::service_unavailable: return "service_unavailable";
    case errc::upstream_timeout: return "upstream_timeout";
  }
  return "internal_error";
}

std::string openai_error_json(std::string_view message, std::string_view type,
                              std::string_view param, std::string_view code) {
  std::string out;
  out.reserve(96 + message.size());
  out += R"({"error":{"message":)";
  append_json_string(out, message);
  out += R"(,"type":)";
  append_json_string(out, type);
  out += R"(,"param":)";
  if (param.empty())
    out += "null";
  else
    append_json_string(out, param);
  out += R"(,"code":)";
  append_json_string(out, code);
  out += "}}";
  return out;
}

std::string to_openai_json(const error& e) {
  return openai_error_json(e.message, error_type(e.code), e.param, error_code_string(e.code));
}

}  // namespace gw

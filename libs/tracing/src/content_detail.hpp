#pragma once
/// Internal to libs/tracing: the content.hpp readers with a switch for the content
/// itself, so that an exporter that does not show content (capture off) only pays for
/// the parameters, ids and finish reasons.

#include <simdjson.h>

#include <string_view>

#include "gw/tracing/content.hpp"

namespace gw::tracing::detail {

/// with_content false: input_json, system_instructions, tools_json stay empty.
request_view read_request(std::string_view body, bool with_content);
/// with_content false: output_json stays empty (no text is assembled). `tail`: a cut
/// stream's last events (trace_record::response_tail), read for finish reasons and ids.
response_view read_response(std::string_view body, bool stream, bool with_content, std::string_view tail = {});

/// Parses a padded copy of `json` with the thread's DOM parser; the result lives until
/// the thread's next parse. False for empty or invalid JSON.
bool parse_padded(std::string_view json, simdjson::dom::element& out);

}  // namespace gw::tracing::detail

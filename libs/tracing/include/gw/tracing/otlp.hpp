#pragma once
/// OTLP/HTTP JSON encoding of trace records (opentelemetry-proto's JSON mapping: hex
/// ids, integer enums, int64 as decimal strings), with the GenAI semantic conventions,
/// and the Langfuse flavour (the same spans plus Langfuse's `langfuse.*` attributes, for
/// Langfuse's OTLP endpoint /api/public/otel/v1/traces). Pure functions: no I/O.
///
/// Per record: one SERVER span for the request (name "{operation} {model group}",
/// parent: the client's span from traceparent, if any) and one CLIENT child span per
/// attempt (name "{operation} {upstream model}"; its span id is the one sent upstream
/// in traceparent), and one INTERNAL child span per guardrail or cache step (name
/// "guardrail {name}" / "cache {name}").

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "gw/tracing/record.hpp"

namespace gw::tracing {

struct otlp_options {
  std::string service_name = "llm-gateway";
  std::string service_version;
  /// Extra resource attributes (OTEL_RESOURCE_ATTRIBUTES), as strings.
  std::vector<std::pair<std::string, std::string>> resource_attributes;
  /// Prompt and response content on spans (gen_ai.input.messages, gen_ai.output.messages,
  /// gen_ai.system_instructions; Langfuse's input/output). Off: no content anywhere.
  bool capture_content = false;
  /// Content attributes longer than this are cut (at a UTF-8 boundary) and marked.
  std::size_t max_content_bytes = 32 * 1024;
  /// Add the langfuse.* attributes (trace name, user, session, tags, metadata,
  /// observation type generation, usage and cost details, completion start time, …).
  bool langfuse = false;
  std::string environment;  ///< langfuse.environment (LANGFUSE_TRACING_ENVIRONMENT); "" = none
  std::string release;      ///< langfuse.release (LANGFUSE_RELEASE); "" = none
  /// OTLP/HTTP protobuf (application/x-protobuf) instead of JSON.
  bool protobuf = false;
};

/// One ExportTraceServiceRequest body (application/json) for these records.
std::string encode_otlp_json(const std::vector<const trace_record*>& records, const otlp_options& opt);

/// The same request as protobuf (application/x-protobuf): the same spans and
/// attributes; ids as bytes, times as fixed64, strings repaired to UTF-8.
std::string encode_otlp_protobuf(const std::vector<const trace_record*>& records, const otlp_options& opt);

/// encode_otlp_json or encode_otlp_protobuf, as `opt.protobuf` says.
std::string encode_otlp(const std::vector<const trace_record*>& records, const otlp_options& opt);

/// The rejected_spans of a collector's ExportTraceServiceResponse (partial success), in
/// either encoding: 0 when none or the body is empty, -1 when it cannot be read.
std::int64_t otlp_rejected_spans(std::string_view body, bool protobuf);

}  // namespace gw::tracing

// The dialect egress stage: answers, stream events and errors in the client's dialect.
// The chain works in OpenAI's shapes; an Anthropic SDK client (/v1/messages) gets
// Anthropic's: a Messages answer, message_start / content_block_* / message_delta /
// message_stop events, and Anthropic's error envelope.

#include "gw/pipeline/stages.hpp"

namespace gw::pipeline {
namespace {

struct writer_state final : stage_state {
  std::unique_ptr<providers::anthropic_stream_writer> writer;
};

}  // namespace

void dialect_egress_stage::on_response(request_context& ctx, response& r) const {
  if (ctx.client_dialect != dialect::anthropic) return;
  if (r.error || r.status / 100 != 2 || !ctx.anthropic) {
    r.body = providers::openai_error_to_anthropic(r.status, r.body);
  } else {
    r.body = providers::openai_response_to_anthropic(r.body, *ctx.anthropic);
  }
  r.content_type = "application/json";
}

void dialect_egress_stage::on_events(request_context& ctx, std::string_view events, bool last, std::string& out) const {
  if (ctx.client_dialect != dialect::anthropic || !ctx.anthropic) {
    out.append(events);
    return;
  }
  auto& st = ctx.state_of<writer_state>(this);
  if (!st.writer) st.writer = std::make_unique<providers::anthropic_stream_writer>(*ctx.anthropic);
  st.writer->feed(events, out);
  if (last) st.writer->finish(out);
}

}  // namespace gw::pipeline

#include "gw/pipeline/internal_call.hpp"

namespace gw::pipeline {

std::string call_internal(const services& svc, const chain& ch, http::io_thread& th, providers::operation op,
                          std::string body, accounts::auth_entry_ptr entry, internal_callback done) {
  auto ctx = std::make_shared<request_context>(svc, ch, th, op, std::move(body), std::move(done));
  ctx->entry = std::move(entry);
  std::string id = ctx->call_id;
  ctx->start();
  return id;
}

}  // namespace gw::pipeline

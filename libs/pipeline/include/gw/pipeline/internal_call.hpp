#pragma once
/// Internal calls: the gateway calling one of its own model groups through the same
/// chain of stages as a client (routing, retries, fallbacks, budgets and limits of the
/// key it acts as, spend log, trace), with a buffer instead of a client connection. The
/// semantic cache's embeddings, guardrails that ask a model and LLM-as-judge evaluations
/// use it.

#include <string>

#include "gw/accounts/accounts.hpp"
#include "gw/http/io_threads.hpp"
#include "gw/pipeline/context.hpp"
#include "gw/pipeline/sink.hpp"

namespace gw::pipeline {

/// Sends `body` (an OpenAI request for `op`, naming its model group) through `ch` on io
/// thread `th`, acting as `entry` (a virtual key: its model access, budgets and limits
/// apply) or, when null, as the master key. `done` gets the answer on `th`. Call on `th`.
/// Returns the request's call id (its spend-log row and trace carry it).
std::string call_internal(const services& svc, const chain& ch, http::io_thread& th, providers::operation op,
                          std::string body, accounts::auth_entry_ptr entry, internal_callback done);

}  // namespace gw::pipeline

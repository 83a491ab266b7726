#pragma once
/// The built-in price table (builtin.cpp). Private to gw_pricing.

#include "gw/pricing/prices.hpp"

namespace gw::pricing::detail {

/// Adds every built-in model to `out` (replacing entries of the same name): the OpenAI
/// models under their own names and again as "azure/<name>", the Anthropic models under
/// their Anthropic and Bedrock names, and the other Bedrock models.
void add_builtin_prices(price_map& out);

}  // namespace gw::pricing::detail

#pragma once
/// Request ids: random UUIDv4 strings from a per-thread generator (thread-safe).

#include <string>

namespace gw {

/// A new random UUIDv4, e.g. "3b241101-e2bb-4255-8caf-4136c566a962".
std::string new_request_id();

}  // namespace gw

#pragma once
/// The schema migrations compiled into the library from libs/store/migrations/*.sql.

#include <span>
#include <string_view>

namespace gw::store::detail {

struct migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

/// Every migration, in ascending version order.
std::span<const migration> migrations() noexcept;

}  // namespace gw::store::detail

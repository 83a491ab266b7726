#pragma once
// The throwaway PostgreSQL server of a store test executable (scripts/pg-temp.sh,
// Debian's postgresql): started once by a global test environment, stopped at the end.
// Include in exactly one source file per executable.

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <pqxx/pqxx>
#include <string>

namespace {

std::string g_url;      // DATABASE_URL of the running server; empty if it failed
std::string g_dir;      // its directory
std::string g_failure;  // why it did not start

/// Runs scripts/pg-temp.sh; returns its stdout, or nullopt if it failed.
std::optional<std::string> pg_temp(const std::string& command, const std::string& dir) {
  std::string cmd = std::string(GW_PG_TEMP_SCRIPT) + " " + command + " '" + dir + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  if (::pclose(p) != 0) return std::nullopt;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

class postgres_server : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/gw-store-test-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      g_failure = "mkdtemp failed";
      return;
    }
    g_dir = tmpl;
    auto url = pg_temp("start", g_dir);
    if (!url || url->rfind("postgresql://", 0) != 0) {
      g_failure = "scripts/pg-temp.sh start failed (see stderr)";
      return;
    }
    g_url = *url;
  }
  void TearDown() override {
    if (!g_dir.empty()) pg_temp("stop", g_dir);
  }
};

[[maybe_unused]] auto* const server = ::testing::AddGlobalTestEnvironment(new postgres_server);

/// Runs SQL on a connection of its own (for setup and for looking behind the store).
pqxx::result sql(const std::string& query) {
  pqxx::connection c(g_url);
  pqxx::work tx(c);
  auto r = tx.exec(query);
  tx.commit();
  return r;
}

std::string sql_value(const std::string& query) {
  auto r = sql(query);
  return r.empty() || r[0][0].is_null() ? std::string() : r[0][0].c_str();
}

}  // namespace

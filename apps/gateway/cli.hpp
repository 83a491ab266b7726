#pragma once
/// llm-gateway's command line, close to LiteLLM's `litellm` CLI.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gw::app {

struct cli_options {
  std::optional<std::string> config;
  std::string host = "0.0.0.0";
  std::uint16_t port = 4000;
  std::optional<std::string> env_file;  ///< explicit --env-file (must exist)
  bool check_config = false;
  bool migrate = false;                 ///< `llm-gateway migrate`: apply database migrations, exit
  bool healthcheck = false;             ///< `llm-gateway healthcheck`: GET a health route, exit 0 on 200
  bool host_given = false;              ///< --host was on the command line
  std::string path = "/health/liveliness";  ///< healthcheck: the route to ask
  int timeout_ms = 3000;                ///< healthcheck: connect + answer deadline
  bool help = false;
  bool version = false;
  bool debug = false;
  int num_workers = 0;                  ///< io threads; 0 = from config / cores
  std::optional<std::string> port_file; ///< write the bound port here (tests)
};

/// Parses argv; false with `err` set on bad input. Accepts "--flag value" and "--flag=value".
bool parse_cli(const std::vector<std::string>& args, cli_options& out, std::string& err);

std::string usage_text();

}  // namespace gw::app

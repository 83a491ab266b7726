#include "cli.hpp"

#include "gw/core/strings.hpp"

namespace gw::app {

std::string usage_text() {
  return R"(Usage: llm-gateway [--config FILE] [--host ADDR] [--port N] [--env-file FILE]
                   [--check-config] [--num_workers N] [--detailed_debug] [--help] [--version]
       llm-gateway migrate [--config FILE] [--env-file FILE]
                   apply the database migrations (general_settings.database_url or
                   DATABASE_URL) and exit; the gateway also applies them at start
       llm-gateway healthcheck [--host ADDR] [--port N] [--path P] [--timeout SECONDS]
                   GET P (default /health/liveliness) from ADDR:N (default 127.0.0.1:4000);
                   exit 0 on HTTP 200, 1 otherwise (container health checks; no curl needed)

An OpenAI-compatible LLM gateway that reads LiteLLM's config.yaml.

  --config, -c FILE   LiteLLM-format config. Without it the gateway serves an embedded
                      default: models mock-gpt and mock-embed from a built-in mock provider.
  --host ADDR         address to listen on (default 0.0.0.0)
  --port N            port to listen on (default 4000; 0 = any free port)
  --env-file FILE     load variables from FILE first (default: ./.env if it exists);
                      variables already set in the environment win
  --check-config      load and validate the config, print warnings, and exit
  --num_workers N     io threads (default: gateway_settings.io_threads, else one per usable CPU:
                      the affinity mask capped by the container's cgroup CPU quota)
  --detailed_debug    debug logging (also: LITELLM_LOG=DEBUG)
  --port-file FILE    write the port actually bound to FILE (useful with --port 0)
  --help, --version
Signals: SIGTERM or SIGINT drains in-flight requests (streams included), then exits 0.
)";
}

bool parse_cli(const std::vector<std::string>& args, cli_options& out, std::string& err) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::optional<std::string> inline_value;
    if (a.rfind("--", 0) == 0) {
      if (auto eq = a.find('='); eq != std::string::npos) {
        inline_value = a.substr(eq + 1);
        a = a.substr(0, eq);
      }
    }
    auto value = [&](std::string& v) {
      if (inline_value) {
        v = *inline_value;
        return true;
      }
      if (i + 1 >= args.size()) {
        err = "option " + a + " needs a value";
        return false;
      }
      v = args[++i];
      return true;
    };
    auto flag = [&]() {
      if (inline_value) {
        err = "option " + a + " takes no value";
        return false;
      }
      return true;
    };
    std::string v;
    if (i == 0 && a == "migrate") {
      out.migrate = true;
    } else if (i == 0 && a == "healthcheck") {
      out.healthcheck = true;
    } else if (a == "--path" && out.healthcheck) {
      if (!value(v)) return false;
      if (v.empty() || v[0] != '/' || v.find_first_of(" \r\n") != std::string::npos) {
        err = "--path must start with / and hold no spaces, got '" + v + "'";
        return false;
      }
      out.path = v;
    } else if (a == "--timeout" && out.healthcheck) {
      if (!value(v)) return false;
      auto t = parse_int(v);
      if (!t || *t < 1 || *t > 300) {
        err = "--timeout must be a number of seconds from 1 to 300, got '" + v + "'";
        return false;
      }
      out.timeout_ms = static_cast<int>(*t) * 1000;
    } else if (a == "--config" || a == "-c") {
      if (!value(v)) return false;
      out.config = v;
    } else if (a == "--host") {
      if (!value(v)) return false;
      if (v.empty()) {
        err = "--host needs an address";
        return false;
      }
      out.host = v;
      out.host_given = true;
    } else if (a == "--port") {
      if (!value(v)) return false;
      auto p = parse_int(v);
      if (!p || *p < 0 || *p > 65535) {
        err = "--port must be a number from 0 to 65535, got '" + v + "'";
        return false;
      }
      out.port = static_cast<std::uint16_t>(*p);
    } else if (a == "--env-file") {
      if (!value(v)) return false;
      out.env_file = v;
    } else if (a == "--num_workers" || a == "--num-workers") {
      if (!value(v)) return false;
      auto n = parse_int(v);
      if (!n || *n < 1 || *n > 256) {
        err = "--num_workers must be a number from 1 to 256, got '" + v + "'";
        return false;
      }
      out.num_workers = static_cast<int>(*n);
    } else if (a == "--port-file") {
      if (!value(v)) return false;
      out.port_file = v;
    } else if (a == "--check-config") {
      if (!flag()) return false;
      out.check_config = true;
    } else if (a == "--detailed_debug" || a == "--debug") {
      if (!flag()) return false;
      out.debug = true;
    } else if (a == "--help" || a == "-h") {
      out.help = true;
    } else if (a == "--version" || a == "-v") {
      out.version = true;
    } else {
      err = "unknown option '" + args[i] + "' (see --help)";
      return false;
    }
  }
  return true;
}

}  // namespace gw::app

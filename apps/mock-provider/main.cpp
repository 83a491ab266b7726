// mock-provider: an OpenAI-compatible server for tests and benchmarks.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "gw/core/cpu.hpp"
#include "gw/core/files.hpp"
#include "gw/core/strings.hpp"
#include "gw/mock/mock_server.hpp"

namespace {

const char* k_usage = R"(Usage: mock-provider [options]
  --host H                 address (default 127.0.0.1)
  --port N                 port (default 8090; 0 = any free port)
  --threads N              io threads (default 1)
  --latency-ms N           delay before each response head (default 0)
  --tokens-per-second X    stream pacing (default 0: as fast as possible)
  --response-tokens N      words per completion (default 16)
  --embedding-dimensions N (default 8)
  --models a,b             ids for GET /v1/models (default mock-gpt,mock-embed)
  --api-key K              require "Authorization: Bearer K"
  --tls-cert F --tls-key F serve HTTPS
  --no-record              do not keep the last request (for benchmarks)
Other dialects (Azure paths, Bedrock, Anthropic) and fake identity endpoints:
  --azure-api-key K        api-key accepted on /openai/... (default mock-azure-key)
  --aws-access-key-id K --aws-secret-access-key S
                           SigV4 keys Bedrock routes accept (default AKIDMOCK / mock-aws-secret)
  --bedrock-api-key K      Bedrock API key (bearer) accepted (default mock-bedrock-key)
  --anthropic-api-key K    x-api-key required on /v1/messages (default: any)
  --entra-client-id I --entra-client-secret S
                           the service principal the fake Entra endpoint accepts
  --entra-token-ttl-s N    lifetime of issued Entra tokens (default 3599)
  --aws-temp-ttl-s N       lifetime of issued AWS temporary credentials (default 3600)
  --container-auth-token T Authorization required by the fake ECS credentials endpoint
  --port-file F            write the bound port to F
Per-request behaviour: an "x_mock" object in the body (status, retry_after, raw_body,
content_type, headers, latency_ms, hang, tokens, tokens_per_second, drop_after, echo).
)";

bool fail(const std::string& msg) {
  std::cerr << "mock-provider: " << msg << "\n";
  return false;
}

bool parse(int argc, char** argv, gw::mock::options& o, std::string& port_file) {
  o.port = 8090;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](std::string& v) {
      if (i + 1 >= argc) return fail("option " + a + " needs a value");
      v = argv[++i];
      return true;
    };
    auto num = [&](long long lo, long long hi, long long& out) {
      std::string v;
      if (!next(v)) return false;
      auto n = gw::parse_int(v);
      if (!n || *n < lo || *n > hi) return fail("bad value for " + a + ": '" + v + "'");
      out = *n;
      return true;
    };
    long long n = 0;
    std::string v;
    if (a == "--help" || a == "-h") {
      std::cout << k_usage;
      std::exit(0);
    } else if (a == "--host") {
      if (!next(o.host)) return false;
    } else if (a == "--port") {
      if (!num(0, 65535, n)) return false;
      o.port = static_cast<std::uint16_t>(n);
    } else if (a == "--threads") {
      if (!num(1, 256, n)) return false;
      o.threads = static_cast<int>(n);
    } else if (a == "--latency-ms") {
      if (!num(0, 3600000, n)) return false;
      o.latency_ms = static_cast<int>(n);
    } else if (a == "--tokens-per-second") {
      if (!next(v)) return false;
      auto d = gw::parse_double(v);
      if (!d || *d < 0) return fail("bad value for --tokens-per-second: '" + v + "'");
      o.tokens_per_second = *d;
    } else if (a == "--response-tokens") {
      if (!num(0, 1000000, n)) return false;
      o.response_tokens = static_cast<int>(n);
    } else if (a == "--embedding-dimensions") {
      if (!num(1, 8192, n)) return false;
      o.embedding_dimensions = static_cast<int>(n);
    } else if (a == "--models") {
      if (!next(v)) return false;
      o.models.clear();
      for (auto m : gw::split(v, ',')) o.models.emplace_back(gw::trim(m));
    } else if (a == "--api-key") {
      if (!next(o.api_key)) return false;
    } else if (a == "--tls-cert") {
      if (!next(o.tls_cert_file)) return false;
    } else if (a == "--tls-key") {
      if (!next(o.tls_key_file)) return false;
    } else if (a == "--azure-api-key") {
      if (!next(o.azure_api_key)) return false;
    } else if (a == "--aws-access-key-id") {
      if (!next(o.aws_access_key_id)) return false;
    } else if (a == "--aws-secret-access-key") {
      if (!next(o.aws_secret_access_key)) return false;
    } else if (a == "--bedrock-api-key") {
      if (!next(o.bedrock_api_key)) return false;
    } else if (a == "--anthropic-api-key") {
      if (!next(o.anthropic_api_key)) return false;
    } else if (a == "--entra-client-id") {
      if (!next(o.entra_client_id)) return false;
    } else if (a == "--entra-client-secret") {
      if (!next(o.entra_client_secret)) return false;
    } else if (a == "--entra-token-ttl-s") {
      if (!num(1, 86400, n)) return false;
      o.entra_token_ttl_s = static_cast<int>(n);
    } else if (a == "--aws-temp-ttl-s") {
      if (!num(1, 86400, n)) return false;
      o.aws_temp_ttl_s = static_cast<int>(n);
    } else if (a == "--container-auth-token") {
      if (!next(o.container_auth_token)) return false;
    } else if (a == "--no-record") {
      o.record_last_request = false;
    } else if (a == "--port-file") {
      if (!next(port_file)) return false;
    } else {
      return fail("unknown option '" + a + "' (see --help)");
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (auto missing = gw::missing_cpu_features(); !missing.empty()) {
    std::cerr << "mock-provider: this build needs CPU features this machine lacks (" << missing << ")\n";
    return 1;
  }
  gw::mock::options o;
  std::string port_file;
  if (!parse(argc, argv, o, port_file)) return 2;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  gw::mock::server srv(o);
  try {
    srv.start();
  } catch (const std::exception& e) {
    std::cerr << "mock-provider: " << e.what() << "\n";
    return 1;
  }
  bool tls = !o.tls_cert_file.empty();
  std::cout << "mock-provider listening on " << (tls ? "https" : "http") << "://" << o.host << ":" << srv.port()
            << std::endl;
  if (!port_file.empty() && !gw::write_file_atomic(port_file, std::to_string(srv.port()) + "\n")) {
    std::cerr << "mock-provider: cannot write " << port_file << "\n";
    return 1;
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  srv.stop();
  return 0;
}

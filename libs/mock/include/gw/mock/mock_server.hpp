#pragma once
/// A mock OpenAI-compatible provider for tests, benchmarks and the gateway's embedded
/// default. Per-request behaviour comes from an `x_mock` object in the request body
/// (status, retry_after, raw_body, headers, latency_ms, hang, tokens,
/// tokens_per_second, drop_after, echo); see docs/MOCK_PROVIDER.md. Thread-safe API.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gw::mock {

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;            ///< 0 = ephemeral
  int threads = 1;                   ///< io threads, one io_context each, SO_REUSEPORT
  int latency_ms = 0;                ///< delay before the response head
  double tokens_per_second = 0;      ///< stream pacing; 0 = as fast as possible
  int response_tokens = 16;          ///< words in a completion
  int embedding_dimensions = 8;
  std::vector<std::string> models = {"mock-gpt", "mock-embed"};
  std::string api_key;               ///< if set, require "Authorization: Bearer <api_key>"
  std::string tls_cert_file, tls_key_file;  ///< both set = HTTPS
  bool record_last_request = true;   ///< keep the last model request for GET /_mock/last_request
  // Other dialects (docs/MOCK_PROVIDER.md): Azure OpenAI, Bedrock, Anthropic, and fake
  // identity endpoints (Entra ID, STS, ECS container credentials, EC2 metadata).
  std::string azure_api_key = "mock-azure-key";   ///< accepted as "api-key" on Azure routes
  std::string aws_access_key_id = "AKIDMOCK";     ///< long-term AWS keys Bedrock routes accept
  std::string aws_secret_access_key = "mock-aws-secret";
  std::string bedrock_api_key = "mock-bedrock-key";  ///< Bedrock API key (bearer)
  std::string anthropic_api_key;                  ///< empty: any x-api-key
  std::string entra_client_id = "mock-client-id";
  std::string entra_client_secret = "mock-client-secret";
  int entra_token_ttl_s = 3599;
  int aws_temp_ttl_s = 3600;
  std::string container_auth_token;               ///< required on container-credential calls
};

class server {
 public:
  explicit server(options opts);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and starts the threads. Throws std::runtime_error on failure.
  void start();
  /// The bound port (valid after start()).
  std::uint16_t port() const;
  /// Stops and joins; idempotent.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::mock

#include "gw/mock/embedded.hpp"

#include "gw/mock/mock_server.hpp"

namespace gw::mock {

std::unique_ptr<embedded_provider> embedded_provider::start() {
  options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  auto s = std::make_unique<server>(o);
  s->start();
  return std::unique_ptr<embedded_provider>(new embedded_provider(std::move(s)));
}

embedded_provider::embedded_provider(std::unique_ptr<server> s) : server_(std::move(s)) {}

embedded_provider::~embedded_provider() = default;

std::uint16_t embedded_provider::port() const { return server_->port(); }

void embedded_provider::stop() { server_->stop(); }

}  // namespace gw::mock

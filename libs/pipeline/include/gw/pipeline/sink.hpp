#pragma once
/// Where a request's answer goes: the client's connection (an http::session), or a
/// buffer (an internal call: the gateway calling one of its own model groups). The
/// stream operations take their completion handler as a template parameter, so the
/// client path keeps Asio's per-thread recycling of handler memory. io-thread owned.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "gw/http/server.hpp"

namespace gw::pipeline {

/// The answer of an internal call.
struct internal_answer {
  int status = 0;
  std::string content_type;
  std::string headers;  ///< "name: value\r\n" lines
  std::string body;     ///< a stream's events, concatenated
  bool complete = false;  ///< false: the stream broke off
};
using internal_callback = std::function<void(internal_answer)>;

class response_sink {
 public:
  explicit response_sink(http::session_ptr s) : session_(std::move(s)) {}
  /// An internal call: `done` runs once, posted to `io`, when the answer is complete.
  response_sink(boost::asio::io_context& io, internal_callback done)
      : buffer_(std::make_unique<buffer>(io, std::move(done))) {}

  http::session* session() const noexcept { return session_.get(); }
  bool internal() const noexcept { return !session_; }

  void respond(unsigned status, std::string_view content_type, std::string body, std::string_view headers) {
    if (session_) return session_->respond(status, content_type, std::move(body), headers);
    auto& a = buffer_->answer;
    a.status = static_cast<int>(status);
    a.content_type.assign(content_type);
    a.headers.assign(headers);
    a.body = std::move(body);
    a.complete = true;
    buffer_->deliver();
  }

  template <class Handler>
  void begin_stream(unsigned status, std::string_view content_type, std::string_view headers,
                    boost::asio::const_buffer first, Handler&& on_done) {
    if (session_) return session_->begin_stream(status, content_type, headers, first, std::forward<Handler>(on_done));
    auto& a = buffer_->answer;
    a.status = static_cast<int>(status);
    a.content_type.assign(content_type);
    a.headers.assign(headers);
    a.body.append(static_cast<const char*>(first.data()), first.size());
    on_done(http::error_code{});
  }

  template <class Handler>
  void write_chunk(boost::asio::const_buffer data, Handler&& on_done) {
    if (session_) return session_->write_chunk(data, std::forward<Handler>(on_done));
    buffer_->answer.body.append(static_cast<const char*>(data.data()), data.size());
    on_done(http::error_code{});
  }

  void end_stream() {
    if (session_) return session_->end_stream();
    buffer_->answer.complete = true;
    buffer_->deliver();
  }

  /// The connection is cut (client gone, protocol broken); an internal call ends incomplete.
  void abort() {
    if (session_) return session_->abort();
    buffer_->deliver();
  }

 private:
  struct buffer {
    buffer(boost::asio::io_context& io, internal_callback d) : io(io), done(std::move(d)) {}
    void deliver() {
      if (!done) return;
      boost::asio::post(io, [cb = std::move(done), a = std::move(answer)]() mutable { cb(std::move(a)); });
      done = nullptr;
    }
    boost::asio::io_context& io;
    internal_callback done;
    internal_answer answer;
  };
  http::session_ptr session_;
  std::unique_ptr<buffer> buffer_;
};

}  // namespace gw::pipeline

// The chain contract: stages run in order; `answered` stops the chain; `pending` holds
// it until resume() (on the same io thread); the answer goes back through the stages
// before the one that answered, in reverse; settle and finish run once, in reverse, for
// every stage that ran; a reroute asks every stage that ran; event rewrites compose.

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gw/pipeline/context.hpp"
#include "gw/pipeline/sink.hpp"
#include "gw/telemetry/metrics.hpp"

namespace gw::pipeline {
namespace {

/// Records what happened to it, in one shared log.
class probe_stage final : public stage {
 public:
  probe_stage(std::string name, std::vector<std::string>& log, flow on_request = flow::next)
      : name_(std::move(name)), log_(log), flow_(on_request) {}
  std::string_view name() const noexcept override { return name_; }
  flow on_request(request_context& ctx) const override {
    log_.push_back("request " + name_);
    if (flow_ == flow::answered) {
      response r;
      r.status = 418;
      r.body = "from " + name_;
      ctx.respond(std::move(r));
    }
    if (flow_ == flow::pending)
      boost::asio::post(ctx.thread.io(), [c = ctx.shared_from_this()] { c->resume(); });
    return flow_;
  }
  flow on_reroute(request_context&) const override {
    log_.push_back("reroute " + name_);
    return refuse_reroute_ ? flow::answered : flow::next;
  }
  void on_response(request_context&, response& r) const override {
    log_.push_back("response " + name_);
    r.body += "|" + name_;
  }
  bool wants_events() const noexcept override { return rewrite_; }
  void on_events(request_context&, std::string_view events, bool last, std::string& out) const override {
    out.append(events);
    out += "[" + name_ + (last ? " last]" : "]");
  }
  void on_settle(request_context&) const override { log_.push_back("settle " + name_); }
  void on_finish(request_context&) const override { log_.push_back("finish " + name_); }

  bool rewrite_ = false;
  bool refuse_reroute_ = false;

 private:
  std::string name_;
  std::vector<std::string>& log_;
  flow flow_;
};

/// The terminal stage: answers at once, or asks for a reroute first.
class answer_stage final : public stage {
 public:
  explicit answer_stage(std::vector<std::string>& log) : log_(log) {}
  std::string_view name() const noexcept override { return "end"; }
  flow on_request(request_context& ctx) const override {
    log_.push_back("request end");
    if (reroute_) {
      ctx.reroute(nullptr, [c = ctx.shared_from_this(), this](bool ok) {
        log_.push_back(ok ? "rerouted" : "reroute refused");
        answer(*c);
      });
      return flow::pending;
    }
    answer(ctx);
    return flow::pending;
  }
  void on_settle(request_context&) const override { log_.push_back("settle end"); }
  void on_finish(request_context&) const override { log_.push_back("finish end"); }
  void answer(request_context& ctx) const {
    response r;
    r.body = "answer";
    ctx.respond(std::move(r));
  }
  bool reroute_ = false;

 private:
  std::vector<std::string>& log_;
};

struct fixture : ::testing::Test {
  std::vector<std::string> log;
  telemetry::metrics metrics{1};
  services svc;
  http::io_thread thread{0, std::chrono::milliseconds(50)};
  internal_answer answer;
  bool answered = false;

  fixture() { svc.metrics = &metrics; }

  /// Runs a request through `ch` and the io_context until it is answered.
  void run(const chain& ch) {
    auto ctx = std::make_shared<request_context>(svc, ch, thread, providers::operation::chat, R"({"model":"m"})",
                                                 [this](internal_answer a) {
                                                   answer = std::move(a);
                                                   answered = true;
                                                 });
    ctx->start();
    ctx.reset();
    thread.io().run();
    thread.io().restart();
  }
};

TEST_F(fixture, StagesRunInOrderAndTheAnswerGoesBackInReverse) {
  probe_stage a("a", log), b("b", log);
  answer_stage end(log);
  chain ch({&a, &b, &end});
  run(ch);
  ASSERT_TRUE(answered);
  EXPECT_EQ(answer.body, "answer|b|a");
  EXPECT_EQ(log, (std::vector<std::string>{"request a", "request b", "request end", "response b", "response a",
                                           "settle end", "settle b", "settle a", "finish end", "finish b",
                                           "finish a"}));
}

TEST_F(fixture, AnAnsweringStageStopsTheChainAndOnlyEarlierStagesSeeTheAnswer) {
  probe_stage a("a", log), b("b", log, flow::answered), c("c", log);
  answer_stage end(log);
  chain ch({&a, &b, &c, &end});
  run(ch);
  ASSERT_TRUE(answered);
  EXPECT_EQ(answer.status, 418);
  EXPECT_EQ(answer.body, "from b|a");
  // c and the end never ran: they neither settle nor finish.
  EXPECT_EQ(log, (std::vector<std::string>{"request a", "request b", "response a", "settle b", "settle a",
                                           "finish b", "finish a"}));
}

TEST_F(fixture, APendingStageResumesTheChainLater) {
  probe_stage a("a", log, flow::pending), b("b", log);
  answer_stage end(log);
  chain ch({&a, &b, &end});
  auto ctx = std::make_shared<request_context>(svc, ch, thread, providers::operation::chat, "{}",
                                               [this](internal_answer) { answered = true; });
  ctx->start();
  // Nothing after `a` ran yet: the io thread is free until the stage resumes.
  EXPECT_EQ(log, (std::vector<std::string>{"request a"}));
  EXPECT_FALSE(ctx->passed(&a));
  ctx.reset();
  thread.io().run();
  EXPECT_TRUE(answered);
  EXPECT_EQ(log.at(1), "request b");
  EXPECT_EQ(log.at(2), "request end");
}

TEST_F(fixture, ARerouteAsksEveryStageThatRanAndStopsAtARefusal) {
  probe_stage a("a", log), b("b", log), c("c", log);
  answer_stage end(log);
  end.reroute_ = true;
  chain ch({&a, &b, &c, &end});
  run(ch);
  EXPECT_EQ(std::vector<std::string>(log.begin() + 4, log.begin() + 8),
            (std::vector<std::string>{"reroute a", "reroute b", "reroute c", "rerouted"}));
  log.clear();
  answered = false;
  b.refuse_reroute_ = true;
  run(ch);
  EXPECT_EQ(std::vector<std::string>(log.begin() + 4, log.begin() + 7),
            (std::vector<std::string>{"reroute a", "reroute b", "reroute refused"}));
  EXPECT_TRUE(answered);
}

TEST_F(fixture, EventRewritesComposeInReverseOrder) {
  probe_stage a("a", log), b("b", log), c("c", log);
  a.rewrite_ = true;
  c.rewrite_ = true;
  answer_stage end(log);
  chain ch({&a, &b, &c, &end});
  EXPECT_TRUE(ch.rewrites_events());
  std::string seen;
  class streamer final : public stage {
   public:
    explicit streamer(std::string& out) : out_(out) {}
    std::string_view name() const noexcept override { return "streamer"; }
    flow on_request(request_context& ctx) const override {
      out_ = std::string(ctx.rewrite_events("data: x\n\n", false));
      out_ += "/" + std::string(ctx.rewrite_events("data: y\n\n", true));
      response r;
      ctx.respond(std::move(r));
      return flow::pending;
    }

   private:
    std::string& out_;
  } s(seen);
  chain ch2({&a, &b, &c, &s});
  run(ch2);
  EXPECT_EQ(seen, "data: x\n\n[c][a]/data: y\n\n[c last][a last]");
}

TEST_F(fixture, SettleAndFinishRunOnceEvenIfAskedTwice) {
  probe_stage a("a", log);
  class twice final : public stage {
   public:
    std::string_view name() const noexcept override { return "twice"; }
    flow on_request(request_context& ctx) const override {
      ctx.settle();
      ctx.settle();
      response r;
      ctx.respond(std::move(r));
      ctx.finish();
      return flow::pending;
    }
  } t;
  chain ch({&a, &t});
  run(ch);
  EXPECT_EQ(std::count(log.begin(), log.end(), "settle a"), 1);
  EXPECT_EQ(std::count(log.begin(), log.end(), "finish a"), 1);
}

}  // namespace
}  // namespace gw::pipeline

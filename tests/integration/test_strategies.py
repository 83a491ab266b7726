"""Routing strategies chosen by router_settings.routing_strategy."""

import unittest

from harness import Gateway, Mock, TempDir, chat, run_parallel
from test_routing import ADMIN, MASTER, model_counts


def config(mock, strategy):
    return f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/cheap, api_base: {mock.base}}}
    model_info: {{id: dep-cheap, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: gpt
    litellm_params: {{model: openai/dear, api_base: {mock.base}}}
    model_info: {{id: dep-dear, input_cost_per_token: 0.00001, output_cost_per_token: 0.00002}}
router_settings:
  routing_strategy: {strategy}
general_settings:
  master_key: {MASTER}
"""


class StrategyTest(unittest.TestCase):
    def run_with(self, strategy, fn):
        tmp = TempDir()
        mock = Mock(tmp.path)
        gw = Gateway(tmp.path, config(mock, strategy))
        try:
            return fn(gw, mock)
        finally:
            gw.terminate()
            mock.terminate()
            tmp.cleanup()

    def test_cost_based_routing_picks_the_cheapest(self):
        def go(gw, mock):
            ids = {gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)[1]["x-litellm-model-id"] for _ in range(10)}
            self.assertEqual(ids, {"dep-cheap"})
        self.run_with("cost-based-routing", go)

    def test_least_busy_spreads_concurrent_requests(self):
        def go(gw, mock):
            run_parallel(10, lambda i: gw.post_json("/v1/chat/completions",
                                                    chat(model="gpt", x_mock={"latency_ms": 400}), ADMIN)[0])
            counts = model_counts(mock)
            self.assertGreaterEqual(counts.get("cheap", 0), 3, counts)
            self.assertGreaterEqual(counts.get("dear", 0), 3, counts)
        self.run_with("least-busy", go)

    def test_latency_based_routing_prefers_the_faster(self):
        def go(gw, mock):
            from test_routing import fault
            fault(mock, "dear", latency_ms=150)
            # Until both are measured (an unmeasured deployment scores 0 and is tried first).
            for _ in range(40):
                gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)
                c = model_counts(mock)
                if c.get("cheap", 0) >= 2 and c.get("dear", 0) >= 2:
                    break
            import time
            time.sleep(0.2)  # outcome batches reach the deployment actors
            before = model_counts(mock)
            for _ in range(10):
                gw.post_json("/v1/chat/completions", chat(model="gpt"), ADMIN)
            after = model_counts(mock)
            self.assertGreaterEqual(after.get("cheap", 0) - before.get("cheap", 0), 9, (before, after))
        self.run_with("latency-based-routing", go)


if __name__ == "__main__":
    unittest.main()

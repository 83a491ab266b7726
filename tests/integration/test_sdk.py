"""The official OpenAI Node SDK (npm package `openai`) works against the gateway
unchanged: chat plain and streamed, embeddings, completions, models, typed errors."""

import os
import shutil
import subprocess
import unittest

from harness import SLOW, Gateway, Mock, TempDir

SDK_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "sdk"))
KEY = "sk-sdk-test"


class SdkTest(unittest.TestCase):
    def node(self, package="openai"):
        node = shutil.which("node")
        installed = os.path.isdir(os.path.join(SDK_DIR, "node_modules", package))
        if not node or not installed:
            if os.environ.get("GW_REQUIRE_SDK_TEST") == "1":
                self.fail("node or tests/sdk/node_modules missing (scripts/test.sh runs `npm ci` there)")
            self.skipTest("node or tests/sdk/node_modules missing; run `npm ci` in tests/sdk")
        return node

    def test_providers_with_openai_and_anthropic_sdks(self):
        """Both SDKs against OpenAI, Azure (key and service principal), Bedrock and
        Anthropic deployments: same shapes, tools, streams, usage."""
        node = self.node("@anthropic-ai/sdk")
        from test_providers import config
        tmp = TempDir()
        mock = Mock(tmp.path, "--anthropic-api-key", "sk-ant-mock")
        gw = Gateway(tmp.path, config(mock.port))
        try:
            r = subprocess.run([node, "providers_test.mjs"], cwd=SDK_DIR, capture_output=True, text=True,
                               timeout=120 * SLOW,
                               env={**os.environ, "GATEWAY_URL": f"http://127.0.0.1:{gw.port}",
                                    "GATEWAY_KEY": "sk-master-providers",
                                    "GROUPS": "openai-gpt,azure-key,azure-sp,bedrock-claude,anthropic-claude"})
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("providers sdk ok", r.stdout)
        finally:
            self.assertEqual(gw.terminate(), 0)
            mock.terminate()
            tmp.cleanup()

    def test_openai_node_sdk(self):
        node = self.node()
        tmp = TempDir()
        gw = Gateway(tmp.path, env={"LITELLM_MASTER_KEY": KEY})  # the embedded default config
        try:
            r = subprocess.run([node, "sdk_test.mjs"], cwd=SDK_DIR, capture_output=True, text=True,
                               timeout=120 * SLOW,
                               env={**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{gw.port}/v1",
                                    "OPENAI_API_KEY": KEY})
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("sdk ok", r.stdout)
        finally:
            self.assertEqual(gw.terminate(), 0)
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()

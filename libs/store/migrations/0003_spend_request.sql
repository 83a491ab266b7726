-- What the client sent, for replaying a request later exactly as sent: the route it
-- called (the dialect: /v1/messages is Anthropic's, /openai/deployments/... Azure's) and,
-- with general_settings.store_prompts_in_spend_logs, its body as it came (before any
-- translation or the gateway's own fields were removed), as LiteLLM's
-- proxy_server_request. On the partitioned table: every partition gets the columns.
ALTER TABLE llm_spend_logs
  ADD COLUMN route text NOT NULL DEFAULT '',
  ADD COLUMN proxy_server_request jsonb;

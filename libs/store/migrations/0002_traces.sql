-- The trace store: one row per request, with the captured request and response bodies.
-- Daily partitions llm_traces_YYYYMMDD (UTC days) are made ahead of time by
-- maintain_trace_partitions(); rows outside them land in the default one. Unlike the
-- spend logs, money is a bigint of picodollars (the value as the gateway computed it).
-- request_id is ordered bytewise (COLLATE "C") whatever the database's locale: it is
-- the tie-breaker of the keyset paging (start_time DESC, request_id DESC).
CREATE TABLE llm_traces (
  request_id            text COLLATE "C" NOT NULL,   -- the gateway's call id
  trace_id              text NOT NULL DEFAULT '',    -- W3C trace id, 32 lower-case hex
  span_id               text NOT NULL DEFAULT '',    -- W3C span id, 16 lower-case hex
  call_type             text NOT NULL DEFAULT '',    -- chat, text_completion, embeddings
  route                 text NOT NULL DEFAULT '',    -- path the client called
  api_key               text NOT NULL DEFAULT '',    -- key token; '' for the master key
  key_alias             text NOT NULL DEFAULT '',
  user_id               text NOT NULL DEFAULT '',
  team_id               text NOT NULL DEFAULT '',
  end_user              text NOT NULL DEFAULT '',
  model_group           text NOT NULL DEFAULT '',    -- the group asked for
  model_id              text NOT NULL DEFAULT '',    -- deployment id
  model                 text NOT NULL DEFAULT '',    -- provider model
  provider              text NOT NULL DEFAULT '',    -- gen_ai provider name
  status                text NOT NULL DEFAULT '',    -- success, failure
  http_status           integer NOT NULL DEFAULT 0,
  error_type            text NOT NULL DEFAULT '',
  error_message         text NOT NULL DEFAULT '',
  stream                boolean NOT NULL DEFAULT false,
  prompt_tokens         bigint NOT NULL DEFAULT 0,
  completion_tokens     bigint NOT NULL DEFAULT 0,
  total_tokens          bigint NOT NULL DEFAULT 0,
  cached_tokens         bigint NOT NULL DEFAULT 0,
  spend                 bigint NOT NULL DEFAULT 0,   -- picodollars
  start_time            timestamptz NOT NULL,
  end_time              timestamptz NOT NULL,
  completion_start_time timestamptz,                 -- first token to the client
  cache                 text NOT NULL DEFAULT '',    -- '', hit, miss
  guardrail             text NOT NULL DEFAULT '',    -- '', passed, masked, blocked
  attempts              integer NOT NULL DEFAULT 0,
  request_body          text NOT NULL DEFAULT '',    -- as captured (maybe truncated)
  response_body         text NOT NULL DEFAULT '',
  request_truncated     boolean NOT NULL DEFAULT false,
  response_truncated    boolean NOT NULL DEFAULT false,
  metadata              jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (request_id, start_time)
) PARTITION BY RANGE (start_time);
CREATE TABLE llm_traces_default PARTITION OF llm_traces DEFAULT;
-- Pages newest first; the filtered ones by a backward scan of (column, start_time,
-- request_id), which yields the same order without a sort.
CREATE INDEX llm_traces_start_time ON llm_traces (start_time DESC, request_id DESC);
CREATE INDEX llm_traces_api_key ON llm_traces (api_key, start_time, request_id);
CREATE INDEX llm_traces_user_id ON llm_traces (user_id, start_time, request_id);
CREATE INDEX llm_traces_team_id ON llm_traces (team_id, start_time, request_id);
CREATE INDEX llm_traces_model_group ON llm_traces (model_group, start_time, request_id);
CREATE INDEX llm_traces_trace_id ON llm_traces (trace_id);

-- The gateway's schema: virtual keys, users, teams, budget leases and spend.
-- Money is NUMERIC (exact decimal USD; the code converts it to int64 picodollars
-- through decimal text, never through a float). Timestamps are timestamptz (UTC).
-- Text fields the records treat as "empty: none" (key_alias, user_id, team_id,
-- budget_duration) are NULL when empty.

CREATE TABLE llm_keys (
  token                 text PRIMARY KEY,             -- SHA-256 hex of the plain key
  key_name              text NOT NULL DEFAULT '',     -- "sk-...abcd", for display
  key_alias             text UNIQUE,                  -- unique when set
  models                text[] NOT NULL DEFAULT '{}', -- empty: every model
  user_id               text,
  team_id               text,
  max_budget            numeric,
  soft_budget           numeric,
  budget_duration       text,
  budget_reset_at       timestamptz,
  spend                 numeric NOT NULL DEFAULT 0,   -- current budget period
  total_spend           numeric NOT NULL DEFAULT 0,   -- lifetime, never reset
  tpm_limit             bigint,
  rpm_limit             bigint,
  max_parallel_requests bigint,
  model_rpm_limit       jsonb NOT NULL DEFAULT '{}',  -- {"model group": n}
  model_tpm_limit       jsonb NOT NULL DEFAULT '{}',
  model_spend           jsonb NOT NULL DEFAULT '{}',  -- {"model group": "decimal USD"}
  expires               timestamptz,
  metadata              jsonb NOT NULL DEFAULT '{}',
  blocked               boolean NOT NULL DEFAULT false,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  created_by            text NOT NULL DEFAULT ''
);
CREATE INDEX llm_keys_user_id ON llm_keys (user_id);
CREATE INDEX llm_keys_team_id ON llm_keys (team_id);

-- key_record::model_max_budget: one budget per key and model group. Follows the key
-- through a regenerate (ON UPDATE CASCADE) and goes with it (ON DELETE CASCADE).
CREATE TABLE llm_key_model_budgets (
  token        text NOT NULL REFERENCES llm_keys (token) ON UPDATE CASCADE ON DELETE CASCADE,
  model        text NOT NULL,
  budget_limit numeric NOT NULL,
  time_period  text,
  reset_at     timestamptz,
  spend        numeric NOT NULL DEFAULT 0,
  PRIMARY KEY (token, model)
);

CREATE TABLE llm_users (
  user_id               text PRIMARY KEY,
  user_alias            text NOT NULL DEFAULT '',
  user_email            text NOT NULL DEFAULT '',
  user_role             text NOT NULL DEFAULT 'internal_user',
  teams                 text[] NOT NULL DEFAULT '{}',
  models                text[] NOT NULL DEFAULT '{}',
  max_budget            numeric,
  soft_budget           numeric,
  budget_duration       text,
  budget_reset_at       timestamptz,
  spend                 numeric NOT NULL DEFAULT 0,
  total_spend           numeric NOT NULL DEFAULT 0,
  tpm_limit             bigint,
  rpm_limit             bigint,
  max_parallel_requests bigint,
  model_rpm_limit       jsonb NOT NULL DEFAULT '{}',
  model_tpm_limit       jsonb NOT NULL DEFAULT '{}',
  metadata              jsonb NOT NULL DEFAULT '{}',
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE llm_teams (
  team_id               text PRIMARY KEY,
  team_alias            text NOT NULL DEFAULT '',
  members_with_roles    jsonb NOT NULL DEFAULT '[]',  -- [{"user_id", "user_email", "role"}]
  models                text[] NOT NULL DEFAULT '{}',
  max_budget            numeric,
  soft_budget           numeric,
  budget_duration       text,
  budget_reset_at       timestamptz,
  spend                 numeric NOT NULL DEFAULT 0,
  total_spend           numeric NOT NULL DEFAULT 0,
  tpm_limit             bigint,
  rpm_limit             bigint,
  max_parallel_requests bigint,
  model_rpm_limit       jsonb NOT NULL DEFAULT '{}',
  model_tpm_limit       jsonb NOT NULL DEFAULT '{}',
  metadata              jsonb NOT NULL DEFAULT '{}',
  blocked               boolean NOT NULL DEFAULT false,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Budget a node has reserved on an entity and not yet spent. A lease counts against
-- the entity's budget until it expires; the node renews it with every spend flush.
-- `model` is set for entity_kind 'key_model' only ('' otherwise).
CREATE TABLE llm_budget_leases (
  entity_kind text NOT NULL CHECK (entity_kind IN ('key', 'user', 'team', 'key_model')),
  entity_id   text NOT NULL,
  model       text NOT NULL DEFAULT '',
  node_id     text NOT NULL,
  amount      numeric NOT NULL CHECK (amount >= 0),
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (entity_kind, entity_id, model, node_id)
);
CREATE INDEX llm_budget_leases_node_id ON llm_budget_leases (node_id);

-- One row per request. Daily partitions llm_spend_logs_YYYYMMDD (UTC days) are made
-- ahead of time by maintain_partitions(); rows outside them land in the default one.
CREATE TABLE llm_spend_logs (
  request_id            text NOT NULL,
  call_type             text NOT NULL DEFAULT '',
  api_key               text NOT NULL DEFAULT '',     -- key token; '' for the master key
  key_alias             text NOT NULL DEFAULT '',
  user_id               text NOT NULL DEFAULT '',
  team_id               text NOT NULL DEFAULT '',
  model_group           text NOT NULL DEFAULT '',
  model_id              text NOT NULL DEFAULT '',
  model                 text NOT NULL DEFAULT '',
  api_base              text NOT NULL DEFAULT '',
  prompt_tokens         bigint NOT NULL DEFAULT 0,
  completion_tokens     bigint NOT NULL DEFAULT 0,
  total_tokens          bigint NOT NULL DEFAULT 0,
  spend                 numeric NOT NULL DEFAULT 0,
  start_time            timestamptz NOT NULL,
  end_time              timestamptz NOT NULL,
  completion_start_time timestamptz,
  status                text NOT NULL DEFAULT '',
  http_status           integer NOT NULL DEFAULT 0,
  cache_hit             boolean NOT NULL DEFAULT false,
  metadata              jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (request_id, start_time)
) PARTITION BY RANGE (start_time);
CREATE TABLE llm_spend_logs_default PARTITION OF llm_spend_logs DEFAULT;
CREATE INDEX llm_spend_logs_start_time ON llm_spend_logs (start_time);
CREATE INDEX llm_spend_logs_api_key ON llm_spend_logs (api_key, start_time);
CREATE INDEX llm_spend_logs_user_id ON llm_spend_logs (user_id, start_time);
CREATE INDEX llm_spend_logs_team_id ON llm_spend_logs (team_id, start_time);
CREATE INDEX llm_spend_logs_model_group ON llm_spend_logs (model_group, start_time);

-- Lifetime totals per model group (/global/spend/models), from the spend logs.
CREATE TABLE llm_model_spend (
  model_group       text PRIMARY KEY,
  spend             numeric NOT NULL DEFAULT 0,
  requests          bigint NOT NULL DEFAULT 0,
  prompt_tokens     bigint NOT NULL DEFAULT 0,
  completion_tokens bigint NOT NULL DEFAULT 0
);

-- Spend batches already applied: a batch re-sent after a timeout that in fact
-- committed is skipped. Rows older than a day are pruned.
CREATE TABLE llm_applied_batches (
  batch_id   text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_applied_batches_applied_at ON llm_applied_batches (applied_at);

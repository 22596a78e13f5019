-- Persisted operations, shared by every server process: automatic
-- persisted queries (a client sends a query's SHA-256 instead of its text
-- once any process has seen the text) and trusted documents (operations an
-- operator registered; with TRUSTED_DOCUMENTS set, only those run).

-- +goose Up
CREATE TABLE public.persisted_operations (
  hash text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
  query text NOT NULL CHECK (octet_length(query) <= 1048576),
  -- Registered by an operator: never pruned.
  trusted boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- When a request last used it (updated at most hourly): pruning keeps
  -- the most recently used automatic ones.
  used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX persisted_operations_used_at ON public.persisted_operations (used_at) WHERE NOT trusted;

-- Only the server's privileged role reads and writes it; on Supabase the
-- API roles would otherwise get it through default privileges, and with it
-- the power to plant operations.
REVOKE ALL ON public.persisted_operations FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.persisted_operations TO service_role;
ALTER TABLE public.persisted_operations ENABLE ROW LEVEL SECURITY;
CREATE POLICY persisted_operations_service ON public.persisted_operations
  FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE public.persisted_operations;

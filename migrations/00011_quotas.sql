-- Rate limits and quotas that hold however many servers share the
-- database, and whatever path a write takes (the GraphQL API or Supabase's
-- REST API), because PostgreSQL keeps their state and enforces them.
--
-- 1. Token buckets for the paid mutations (cloning a voice, checking a
--    verification recording, queueing a narration): one row per user and
--    action, taken through take_rate_token() for the calling user only.
--    Users cannot read or write the buckets' table.
-- 2. A cap on a user's PENDING plus IN_PROGRESS generations, and a daily
--    budget of story characters a user may queue, checked by a trigger on
--    every insert a user makes, so a direct REST insert cannot exceed them.
--    The trigger reads the user's rows with the privileges of its owner, so
--    it depends on no row-level security policy of story_generations.
-- 3. An optional idempotency key per generation: a client retrying
--    startGeneration with the same key gets the same generation back.

-- +goose Up
CREATE TABLE public.rate_limit_buckets (
  user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  -- The rate-limited mutations only, so a caller cannot fill the table
  -- with buckets of made-up names.
  action     text NOT NULL CHECK (action IN ('startGeneration', 'createVoiceSample', 'verifyVoiceSample')),
  tokens     double precision NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, action)
);
REVOKE ALL ON public.rate_limit_buckets FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.rate_limit_buckets TO service_role;
ALTER TABLE public.rate_limit_buckets ENABLE ROW LEVEL SECURITY;
CREATE POLICY rate_limit_buckets_service ON public.rate_limit_buckets
  FOR ALL TO service_role USING (true) WITH CHECK (true);

-- take_rate_token takes one token from the calling user's bucket for
-- action, which holds at most burst tokens and refills at per_second. It
-- returns 0 when a token was taken, and otherwise the seconds until one
-- will be there. The upsert locks the bucket's row until the transaction
-- ends, so concurrent callers on any server take turns, and a transaction
-- that takes a token and then fails (or rolls back on purpose) gives it
-- back. It acts for auth.uid() only: a caller can spend no one else's
-- tokens, and whatever burst a caller names, the server's own calls clamp
-- the bucket to theirs.
-- +goose StatementBegin
CREATE FUNCTION public.take_rate_token(p_action text, p_burst integer, p_per_second double precision)
  RETURNS double precision
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = ''
  AS $$
DECLARE
  uid       uuid := auth.uid();
  now_ts    timestamptz := clock_timestamp();
  available double precision;
BEGIN
  IF uid IS NULL THEN
    RAISE EXCEPTION 'take_rate_token needs a signed-in user' USING ERRCODE = '42501';
  END IF;
  IF p_burst < 1 OR p_per_second <= 0 THEN
    RAISE EXCEPTION 'take_rate_token: burst and rate must be positive' USING ERRCODE = '22023';
  END IF;
  INSERT INTO public.rate_limit_buckets AS b (user_id, action, tokens, updated_at)
  VALUES (uid, p_action, p_burst, now_ts)
  ON CONFLICT (user_id, action) DO UPDATE
    SET tokens = least(p_burst::double precision,
                       b.tokens + greatest(0, extract(epoch FROM now_ts - b.updated_at)) * p_per_second),
        updated_at = greatest(b.updated_at, now_ts)
  RETURNING tokens INTO available;
  IF available >= 1 THEN
    UPDATE public.rate_limit_buckets SET tokens = available - 1
    WHERE user_id = uid AND action = p_action;
    RETURN 0;
  END IF;
  RETURN (1 - available) / p_per_second;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION public.take_rate_token(text, integer, double precision) FROM PUBLIC, anon, service_role;
GRANT EXECUTE ON FUNCTION public.take_rate_token(text, integer, double precision) TO authenticated;

-- The quotas' settings: one row, written by the server at start from its
-- configuration (MAX_ACTIVE_GENERATIONS, DAILY_CHARACTER_BUDGET).
CREATE TABLE public.generation_limits (
  id               boolean PRIMARY KEY DEFAULT true CHECK (id),
  max_active       integer NOT NULL CHECK (max_active >= 1),
  daily_characters bigint NOT NULL CHECK (daily_characters >= 1)
);
INSERT INTO public.generation_limits (max_active, daily_characters) VALUES (5, 200000);
REVOKE ALL ON public.generation_limits FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, UPDATE ON public.generation_limits TO service_role;
ALTER TABLE public.generation_limits ENABLE ROW LEVEL SECURITY;
CREATE POLICY generation_limits_service ON public.generation_limits
  FOR ALL TO service_role USING (true) WITH CHECK (true);

-- Characters queued per user and UTC day.
CREATE TABLE public.generation_usage (
  user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  day        date NOT NULL,
  characters bigint NOT NULL CHECK (characters >= 0),
  PRIMARY KEY (user_id, day)
);
REVOKE ALL ON public.generation_usage FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.generation_usage TO service_role;
ALTER TABLE public.generation_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY generation_usage_service ON public.generation_usage
  FOR ALL TO service_role USING (true) WITH CHECK (true);

-- The quota trigger applies to inserts made as a user (the authenticated
-- role, as the API and Supabase's REST API make them); the worker and
-- operators are not held to it. The usage row's upsert comes first: it
-- locks that row, so one user's concurrent inserts, through any server,
-- are checked one after the other and the count of active generations
-- that follows sees the ones committed before. SQLSTATEs NQ001 (too many
-- active) and NQ002 (daily budget) let callers tell the two apart.
-- +goose StatementBegin
CREATE FUNCTION public.enforce_generation_quota() RETURNS trigger
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = ''
  AS $$
DECLARE
  lim    public.generation_limits;
  chars  bigint;
  used   bigint;
  active bigint;
BEGIN
  IF current_setting('role', true) IS DISTINCT FROM 'authenticated' THEN
    RETURN NEW;
  END IF;
  SELECT * INTO lim FROM public.generation_limits;
  SELECT char_length(s.content) INTO chars FROM public.stories s WHERE s.id = NEW.story_id;
  INSERT INTO public.generation_usage AS u (user_id, day, characters)
  VALUES (NEW.user_id, (clock_timestamp() AT TIME ZONE 'UTC')::date, coalesce(chars, 0))
  ON CONFLICT (user_id, day) DO UPDATE SET characters = u.characters + excluded.characters
  RETURNING characters INTO used;
  IF used > lim.daily_characters THEN
    RAISE EXCEPTION 'daily narration budget of % characters reached', lim.daily_characters
      USING ERRCODE = 'NQ002';
  END IF;
  SELECT count(*) INTO active FROM public.story_generations g
  WHERE g.user_id = NEW.user_id AND g.status IN ('pending', 'in_progress');
  IF active >= lim.max_active THEN
    RAISE EXCEPTION 'at most % narrations may be queued or running at once', lim.max_active
      USING ERRCODE = 'NQ001';
  END IF;
  RETURN NEW;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION public.enforce_generation_quota() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER story_generations_quota BEFORE INSERT ON public.story_generations
  FOR EACH ROW EXECUTE FUNCTION public.enforce_generation_quota();

ALTER TABLE public.story_generations
  ADD COLUMN idempotency_key text CHECK (char_length(idempotency_key) BETWEEN 1 AND 200);
CREATE UNIQUE INDEX story_generations_idempotency_idx
  ON public.story_generations (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
GRANT SELECT (idempotency_key), INSERT (idempotency_key) ON public.story_generations TO authenticated;

-- +goose Down
REVOKE SELECT (idempotency_key), INSERT (idempotency_key) ON public.story_generations FROM authenticated;
DROP INDEX IF EXISTS public.story_generations_idempotency_idx;
ALTER TABLE public.story_generations DROP COLUMN IF EXISTS idempotency_key;
DROP TRIGGER IF EXISTS story_generations_quota ON public.story_generations;
DROP FUNCTION IF EXISTS public.enforce_generation_quota();
DROP TABLE IF EXISTS public.generation_usage;
DROP TABLE IF EXISTS public.generation_limits;
DROP FUNCTION IF EXISTS public.take_rate_token(text, integer, double precision);
DROP TABLE IF EXISTS public.rate_limit_buckets;

-- The seed schema (../shared/seed-schema.md) with its rough edges fixed, on
-- top of a Supabase-compatible shim, with row-level security that decides
-- what every API request may see or change.
--
-- This migration runs unchanged on plain PostgreSQL 15+ and on a Supabase
-- database: everything Supabase already provides (roles, the auth schema,
-- auth.users, auth.uid(), auth.jwt()) is created only where it is absent.

-- +goose Up

-- gen_random_uuid() is built into PostgreSQL 13+, but the seed asks for
-- pgcrypto and Supabase has it, so keep it for digest()/crypt() users.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- Supabase's API roles. They never log in: the server's own login switches
-- to them per transaction (SET ROLE through set_config), like PostgREST's
-- "authenticator". service_role is what the worker and the notification
-- listener use; it gets explicit policies below rather than BYPASSRLS,
-- because only a superuser could grant BYPASSRLS and the migration must not
-- need one.
-- +goose StatementBegin
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT;
  END IF;
END
$$;
-- +goose StatementEnd

-- The auth shim. On Supabase the schema, table and functions exist and are
-- owned by Supabase's own roles, so each piece is created only when missing
-- and nothing here replaces or alters what Supabase ships.
-- +goose StatementBegin
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth') THEN
    CREATE SCHEMA auth;
    GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
  END IF;

  IF to_regclass('auth.users') IS NULL THEN
    CREATE TABLE auth.users (
      id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      email      text UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    -- The marker tells `server token` that it may create users here; on
    -- Supabase, users are created by Supabase Auth only.
    COMMENT ON TABLE auth.users IS 'narrate local auth shim';
    GRANT SELECT, INSERT, UPDATE, DELETE ON auth.users TO service_role;
  END IF;

  -- Supabase's definitions: the claims come from the transaction-local
  -- setting request.jwt.claims (or the older per-claim settings). nullif
  -- because a reset setting reads as '' rather than NULL.
  IF to_regprocedure('auth.jwt()') IS NULL THEN
    CREATE FUNCTION auth.jwt() RETURNS jsonb
      LANGUAGE sql STABLE
      AS $fn$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $fn$;
    GRANT EXECUTE ON FUNCTION auth.jwt() TO anon, authenticated, service_role;
  END IF;

  IF to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS uuid
      LANGUAGE sql STABLE
      AS $fn$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
        )::uuid
      $fn$;
    GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
  END IF;

  IF to_regprocedure('auth.role()') IS NULL THEN
    CREATE FUNCTION auth.role() RETURNS text
      LANGUAGE sql STABLE
      AS $fn$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
        )::text
      $fn$;
    GRANT EXECUTE ON FUNCTION auth.role() TO anon, authenticated, service_role;
  END IF;
END
$$;
-- +goose StatementEnd

-- Admins are users whose verified token says app_metadata.role = "admin".
-- app_metadata is writable only by the auth server (unlike user_metadata),
-- so users cannot make themselves admins.
CREATE FUNCTION public.is_admin() RETURNS boolean
  LANGUAGE sql STABLE
  SET search_path = ''
  AS $$ SELECT coalesce(auth.jwt() -> 'app_metadata' ->> 'role' = 'admin', false) $$;

CREATE TYPE public.generation_status AS ENUM ('pending', 'in_progress', 'completed', 'failed');

-- Keeps updated_at current on every update, so no code path can forget it.
-- clock_timestamp(), not now(): a BEFORE UPDATE trigger runs once the row
-- is locked, so successive updates of one row get increasing times in the
-- order they were applied, even when their transactions began in another
-- order. Subscribers use updated_at to order the changes they are told of.
-- +goose StatementBegin
CREATE FUNCTION public.set_updated_at() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $$
BEGIN
  NEW.updated_at := clock_timestamp();
  RETURN NEW;
END
$$;
-- +goose StatementEnd

-- Seed fix: profiles gain display_name and avatar_url (the seed left a
-- placeholder) and updated_at.
CREATE TABLE public.profiles (
  user_id      uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  display_name text CHECK (char_length(display_name) BETWEEN 1 AND 100),
  avatar_url   text CHECK (char_length(avatar_url) BETWEEN 1 AND 2048),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Seed fix: the seed's extra index on voice_samples(user_id) duplicated the
-- one UNIQUE (user_id) already creates, and would only slow writes.
CREATE TABLE public.voice_samples (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id             uuid NOT NULL UNIQUE REFERENCES auth.users (id) ON DELETE CASCADE,
  elevenlabs_voice_id text NOT NULL,
  verification_phrase text NOT NULL,
  verified            boolean NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now()
);

-- Seed fix: stories gain created_at, a slug format check, and an index on
-- (title, id), the catalogue's order and keyset-pagination key.
CREATE TABLE public.stories (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 300),
  slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND char_length(slug) <= 200),
  content    text NOT NULL CHECK (char_length(content) >= 1),
  version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stories_title_id_idx ON public.stories (title, id);

-- Seed fixes:
-- - progress defaults to 0: the seed made it NOT NULL without a default, so
--   every insert had to invent a value for work that had not started;
-- - result_url is nullable and only set once the audio exists: the seed's
--   NOT NULL forced a fake URL onto every queued generation. It stores the
--   storage key; clients get a signed, expiring URL built from it;
-- - metadata defaults to an empty object so it can be merged with ||;
-- - the status default uses the enum's real value ('pending').
CREATE TABLE public.story_generations (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  story_id   uuid NOT NULL REFERENCES public.stories (id) ON DELETE CASCADE,
  status     public.generation_status NOT NULL DEFAULT 'pending',
  progress   integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  result_url text,
  metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT result_only_when_completed CHECK (result_url IS NULL OR status = 'completed')
);
-- Seed fix: the seed indexed user_id alone, but every listing of a user's
-- generations is "newest first" with a keyset cursor on (created_at, id);
-- this index serves the filter, the order and the cursor in one scan
-- (ORDER BY created_at DESC, id ASC). It also serves FK lookups by user_id.
CREATE INDEX story_generations_user_created_idx ON public.story_generations (user_id, created_at DESC, id);
-- Kept from the seed: ON DELETE CASCADE from stories needs it.
CREATE INDEX story_generations_story_id_idx ON public.story_generations (story_id);

CREATE TABLE public.generation_logs (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  generation_id uuid NOT NULL REFERENCES public.story_generations (id) ON DELETE CASCADE,
  event         text NOT NULL CHECK (char_length(event) BETWEEN 1 AND 2000),
  occurred_at   timestamptz NOT NULL DEFAULT now()
);
-- Seed fix: logs are always read oldest first per generation with a keyset
-- cursor on (occurred_at, id); the seed's index on generation_id alone made
-- every page sort.
CREATE INDEX generation_logs_generation_occurred_idx ON public.generation_logs (generation_id, occurred_at, id);

CREATE TRIGGER profiles_updated_at BEFORE UPDATE ON public.profiles
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER stories_updated_at BEFORE UPDATE ON public.stories
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER story_generations_updated_at BEFORE UPDATE ON public.story_generations
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

-- Privileges. Supabase grants everything on new public tables to anon,
-- authenticated and service_role by default; start from nothing and grant
-- exactly what the API needs, down to the columns a role may write, so that
-- a policy only has to decide which rows. service_role is included so that
-- it does not keep TRUNCATE, which ignores row-level security.
REVOKE ALL ON public.profiles, public.voice_samples, public.stories,
  public.story_generations, public.generation_logs FROM PUBLIC, anon, authenticated, service_role;

-- goose keeps its bookkeeping in public.goose_db_version, created before
-- this migration runs. On Supabase, default privileges give that table to
-- the API roles too, and Supabase's REST API serves schema public: anyone
-- holding the project's public anon key could rewrite the migration
-- history. Only the migrating user needs it.
-- +goose StatementBegin
DO $$
DECLARE
  seq text;
BEGIN
  IF to_regclass('public.goose_db_version') IS NOT NULL THEN
    REVOKE ALL ON public.goose_db_version FROM PUBLIC, anon, authenticated, service_role;
    seq := pg_get_serial_sequence('public.goose_db_version', 'id');
    IF seq IS NOT NULL THEN
      EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC, anon, authenticated, service_role', seq);
    END IF;
  END IF;
END
$$;
-- +goose StatementEnd
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.is_admin() TO anon, authenticated, service_role;

GRANT SELECT ON public.stories TO anon, authenticated;
GRANT INSERT (title, slug, content), UPDATE (title, slug, content, version), DELETE
  ON public.stories TO authenticated;

GRANT SELECT, DELETE ON public.profiles TO authenticated;
GRANT INSERT (user_id, display_name, avatar_url), UPDATE (display_name, avatar_url)
  ON public.profiles TO authenticated;

-- Voice samples are read and deleted by their owner, but written only by
-- the server (as service_role), after checks no policy can make: that the
-- voice id is one the server itself cloned at the provider for this user,
-- and that the recording matched the phrase. Were users able to write them
-- (Supabase exposes the public schema through its REST API), one could
-- insert a row naming another user's cloned voice, narrate in it, or have
-- the server delete it at the provider as "the earlier sample", or simply
-- mark their own sample verified.
GRANT SELECT, DELETE ON public.voice_samples TO authenticated;

-- Users create generations and cancel them (status only); everything else
-- about a generation is the worker's to write.
GRANT SELECT ON public.story_generations TO authenticated;
GRANT INSERT (user_id, story_id, metadata), UPDATE (status)
  ON public.story_generations TO authenticated;

GRANT SELECT ON public.generation_logs TO authenticated;
GRANT INSERT (generation_id, event) ON public.generation_logs TO authenticated;

GRANT SELECT, INSERT, UPDATE, DELETE ON public.profiles, public.voice_samples,
  public.stories, public.story_generations, public.generation_logs TO service_role;

-- Row-level security. Every policy names its role (TO ...): a policy
-- without one applies to PUBLIC, that is to every role. This is the seed's
-- worst flaw: its admin policies, FOR ALL USING (true) with no TO clause,
-- would have let every role, anonymous included, read and write every row.
-- Admin policies here are scoped to authenticated admins. auth.uid() and
-- is_admin() are wrapped in (SELECT ...) so PostgreSQL evaluates them once
-- per statement instead of once per row.
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.voice_samples ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.stories ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.story_generations ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.generation_logs ENABLE ROW LEVEL SECURITY;

-- Stories: a public catalogue, written by admins.
CREATE POLICY stories_read ON public.stories
  FOR SELECT TO anon, authenticated USING (true);
CREATE POLICY stories_admin_insert ON public.stories
  FOR INSERT TO authenticated WITH CHECK ((SELECT public.is_admin()));
CREATE POLICY stories_admin_update ON public.stories
  FOR UPDATE TO authenticated USING ((SELECT public.is_admin())) WITH CHECK ((SELECT public.is_admin()));
CREATE POLICY stories_admin_delete ON public.stories
  FOR DELETE TO authenticated USING ((SELECT public.is_admin()));

-- Profiles: the owner has full access; admins may read.
CREATE POLICY profiles_owner ON public.profiles
  FOR ALL TO authenticated
  USING (user_id = (SELECT auth.uid()))
  WITH CHECK (user_id = (SELECT auth.uid()));
CREATE POLICY profiles_admin_read ON public.profiles
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));

-- Voice samples: the owner reads and deletes theirs (writes are the
-- server's, see the grants above). Admins may read.
CREATE POLICY voice_samples_owner_read ON public.voice_samples
  FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()));
CREATE POLICY voice_samples_owner_delete ON public.voice_samples
  FOR DELETE TO authenticated USING (user_id = (SELECT auth.uid()));
CREATE POLICY voice_samples_admin_read ON public.voice_samples
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));

-- Generations: owners read theirs and admins read all. A new generation is
-- the owner's, pending, with no progress or result, and only with a
-- verified voice (so even a resolver bug cannot queue work for an unverified
-- voice). Cancelling moves a pending or running generation to failed;
-- nothing else is open to users.
CREATE POLICY story_generations_owner_read ON public.story_generations
  FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()));
CREATE POLICY story_generations_admin_read ON public.story_generations
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));
CREATE POLICY story_generations_owner_insert ON public.story_generations
  FOR INSERT TO authenticated
  WITH CHECK (
    user_id = (SELECT auth.uid())
    AND status = 'pending' AND progress = 0 AND result_url IS NULL
    AND EXISTS (
      SELECT 1 FROM public.voice_samples v
      WHERE v.user_id = (SELECT auth.uid()) AND v.verified
    )
  );
CREATE POLICY story_generations_cancel ON public.story_generations
  FOR UPDATE TO authenticated
  USING (
    (user_id = (SELECT auth.uid()) OR (SELECT public.is_admin()))
    AND status IN ('pending', 'in_progress')
  )
  WITH CHECK (
    (user_id = (SELECT auth.uid()) OR (SELECT public.is_admin()))
    AND status = 'failed'
  );

-- Logs: readable with their generation. Users may add only the 'canceled'
-- event, to a generation they can see that has just failed (the cancel).
CREATE POLICY generation_logs_owner_read ON public.generation_logs
  FOR SELECT TO authenticated
  USING (EXISTS (
    SELECT 1 FROM public.story_generations g
    WHERE g.id = generation_logs.generation_id AND g.user_id = (SELECT auth.uid())
  ));
CREATE POLICY generation_logs_admin_read ON public.generation_logs
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));
CREATE POLICY generation_logs_cancel_insert ON public.generation_logs
  FOR INSERT TO authenticated
  WITH CHECK (
    event = 'canceled'
    AND EXISTS (
      SELECT 1 FROM public.story_generations g
      WHERE g.id = generation_logs.generation_id
        AND g.status = 'failed'
        AND (g.user_id = (SELECT auth.uid()) OR (SELECT public.is_admin()))
    )
  );

-- The worker and the notification listener act as service_role.
CREATE POLICY profiles_service ON public.profiles
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY voice_samples_service ON public.voice_samples
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY stories_service ON public.stories
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY story_generations_service ON public.story_generations
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY generation_logs_service ON public.generation_logs
  FOR ALL TO service_role USING (true) WITH CHECK (true);

-- Emails live in auth.users, which API roles cannot read on Supabase. This
-- function hands out only the caller's own email (admins: anyone's), so
-- User.email works without widening access to auth.users.
CREATE FUNCTION public.user_emails(ids uuid[]) RETURNS TABLE (id uuid, email text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = ''
  AS $$
    SELECT u.id, u.email::text
    FROM auth.users u
    WHERE u.id = ANY (ids)
      AND (u.id = (SELECT auth.uid()) OR (SELECT public.is_admin()))
  $$;
-- anon too: Supabase's default privileges grant it EXECUTE on every new
-- function in public.
REVOKE ALL ON FUNCTION public.user_emails(uuid[]) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.user_emails(uuid[]) TO authenticated, service_role;

-- +goose Down
DROP FUNCTION IF EXISTS public.user_emails(uuid[]);
DROP TABLE IF EXISTS public.generation_logs;
DROP TABLE IF EXISTS public.story_generations;
DROP TABLE IF EXISTS public.stories;
DROP TABLE IF EXISTS public.voice_samples;
DROP TABLE IF EXISTS public.profiles;
DROP FUNCTION IF EXISTS public.set_updated_at();
DROP TYPE IF EXISTS public.generation_status;
DROP FUNCTION IF EXISTS public.is_admin();

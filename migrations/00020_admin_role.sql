-- Admins read through a database role of their own, so that the policies of
-- authenticated are owner-only and every read of a user's rows can use the
-- table's user_id index, whether or not the query names the user.
--
-- Until now the admin policies were written TO authenticated and OR-ed with
-- the owner policies: a plain user's read of story_generations was filtered
-- by user_id = (SELECT auth.uid()) OR (SELECT public.is_admin()). PostgreSQL
-- cannot turn that OR into an index condition, so any client that relies on
-- row-level security alone to find the caller's rows (supabase-js's
-- from('story_generations').select(), PostgREST, PostGraphile, a reporting
-- tool) read the whole table: 65 ms on 100,000 generations to find 20.
--
-- narrate_admin is a member of authenticated and inherits its privileges
-- and its (owner) policies: an admin is still a user with rows of their
-- own. The admin policies are written TO narrate_admin only, and still
-- require the token's app_metadata.role = "admin", so the role alone, or
-- the claim alone, shows nothing more than a user sees. The API switches
-- to narrate_admin for admin tokens. On Supabase, PostgREST switches to the
-- role a token's role claim names: a custom access token hook that sets
-- role = "narrate_admin" for admins gives supabase-js clients the same
-- access; without one, admins see through PostgREST what any user sees.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'narrate_admin') THEN
    CREATE ROLE narrate_admin NOLOGIN INHERIT;
  END IF;
END
$$;
-- +goose StatementEnd
GRANT authenticated TO narrate_admin;

-- The logins that may switch to authenticated (the server's own, Supabase's
-- authenticator) may switch to narrate_admin too. A login created later is
-- granted it with the others (localdb does; see the README for Supabase).
-- +goose StatementBegin
DO $$
DECLARE
  login name;
BEGIN
  FOR login IN
    SELECT m.rolname
    FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member
    WHERE a.roleid = 'authenticated'::regrole AND m.rolcanlogin
      AND NOT pg_has_role(m.oid, 'narrate_admin', 'MEMBER')
  LOOP
    EXECUTE format('GRANT narrate_admin TO %I', login);
  END LOOP;
END
$$;
-- +goose StatementEnd

-- Reads: owner policies for authenticated (unchanged), everyone's rows for
-- admins.
DROP POLICY profiles_admin_read ON public.profiles;
CREATE POLICY profiles_admin_read ON public.profiles
  FOR SELECT TO narrate_admin USING ((SELECT public.is_admin()));

DROP POLICY voice_samples_admin_read ON public.voice_samples;
CREATE POLICY voice_samples_admin_read ON public.voice_samples
  FOR SELECT TO narrate_admin USING ((SELECT public.is_admin()));

DROP POLICY story_generations_admin_read ON public.story_generations;
CREATE POLICY story_generations_admin_read ON public.story_generations
  FOR SELECT TO narrate_admin USING ((SELECT public.is_admin()));

DROP POLICY generation_logs_admin_read ON public.generation_logs;
CREATE POLICY generation_logs_admin_read ON public.generation_logs
  FOR SELECT TO narrate_admin USING ((SELECT public.is_admin()));

-- The catalogue is written by admins only.
DROP POLICY stories_admin_insert ON public.stories;
DROP POLICY stories_admin_update ON public.stories;
DROP POLICY stories_admin_delete ON public.stories;
CREATE POLICY stories_admin_insert ON public.stories
  FOR INSERT TO narrate_admin WITH CHECK ((SELECT public.is_admin()));
CREATE POLICY stories_admin_update ON public.stories
  FOR UPDATE TO narrate_admin USING ((SELECT public.is_admin())) WITH CHECK ((SELECT public.is_admin()));
CREATE POLICY stories_admin_delete ON public.stories
  FOR DELETE TO narrate_admin USING ((SELECT public.is_admin()));

-- Cancelling: owners cancel theirs, admins anyone's.
DROP POLICY story_generations_cancel ON public.story_generations;
CREATE POLICY story_generations_owner_cancel ON public.story_generations
  FOR UPDATE TO authenticated
  USING (user_id = (SELECT auth.uid()) AND status IN ('pending', 'in_progress'))
  WITH CHECK (user_id = (SELECT auth.uid()) AND status = 'failed');
CREATE POLICY story_generations_admin_cancel ON public.story_generations
  FOR UPDATE TO narrate_admin
  USING ((SELECT public.is_admin()) AND status IN ('pending', 'in_progress'))
  WITH CHECK ((SELECT public.is_admin()) AND status = 'failed');

DROP POLICY generation_logs_cancel_insert ON public.generation_logs;
CREATE POLICY generation_logs_owner_cancel_insert ON public.generation_logs
  FOR INSERT TO authenticated
  WITH CHECK (
    event = 'canceled'
    AND EXISTS (
      SELECT 1 FROM public.story_generations g
      WHERE g.id = generation_logs.generation_id
        AND g.status = 'failed'
        AND g.user_id = (SELECT auth.uid())
    )
  );
CREATE POLICY generation_logs_admin_cancel_insert ON public.generation_logs
  FOR INSERT TO narrate_admin
  WITH CHECK (
    event = 'canceled'
    AND (SELECT public.is_admin())
    AND EXISTS (
      SELECT 1 FROM public.story_generations g
      WHERE g.id = generation_logs.generation_id AND g.status = 'failed'
    )
  );

-- +goose Down
DROP POLICY generation_logs_admin_cancel_insert ON public.generation_logs;
DROP POLICY generation_logs_owner_cancel_insert ON public.generation_logs;
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

DROP POLICY story_generations_admin_cancel ON public.story_generations;
DROP POLICY story_generations_owner_cancel ON public.story_generations;
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

DROP POLICY stories_admin_insert ON public.stories;
DROP POLICY stories_admin_update ON public.stories;
DROP POLICY stories_admin_delete ON public.stories;
CREATE POLICY stories_admin_insert ON public.stories
  FOR INSERT TO authenticated WITH CHECK ((SELECT public.is_admin()));
CREATE POLICY stories_admin_update ON public.stories
  FOR UPDATE TO authenticated USING ((SELECT public.is_admin())) WITH CHECK ((SELECT public.is_admin()));
CREATE POLICY stories_admin_delete ON public.stories
  FOR DELETE TO authenticated USING ((SELECT public.is_admin()));

DROP POLICY generation_logs_admin_read ON public.generation_logs;
CREATE POLICY generation_logs_admin_read ON public.generation_logs
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));
DROP POLICY story_generations_admin_read ON public.story_generations;
CREATE POLICY story_generations_admin_read ON public.story_generations
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));
DROP POLICY voice_samples_admin_read ON public.voice_samples;
CREATE POLICY voice_samples_admin_read ON public.voice_samples
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));
DROP POLICY profiles_admin_read ON public.profiles;
CREATE POLICY profiles_admin_read ON public.profiles
  FOR SELECT TO authenticated USING ((SELECT public.is_admin()));
-- The role is cluster-wide and may serve other databases: it stays.

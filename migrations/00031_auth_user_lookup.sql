-- `server token` looks a user up by email. On Supabase the service role has
-- no privileges on auth.users (Supabase Auth owns it), so the lookup reading
-- the table directly failed with "permission denied for table users" for
-- every email. This function reads it with the privileges of its owner, the
-- migrating user (Supabase's postgres may read auth.users), and answers only
-- one user's id. Only the service role may call it: Supabase's default
-- privileges grant EXECUTE on every new function in public to anon and
-- authenticated, and PostgREST would otherwise let anyone holding the
-- public anon key ask which emails have accounts.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION public.auth_user_id(user_email text) RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = ''
  AS $$
    SELECT u.id FROM auth.users u WHERE u.email = user_email
  $$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION public.auth_user_id(text) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.auth_user_id(text) TO service_role;

-- +goose Down
DROP FUNCTION IF EXISTS public.auth_user_id(text);

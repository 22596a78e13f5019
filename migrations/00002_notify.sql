-- Every change of a story generation is announced on the channel
-- "generation_changes", which the server's listener fans out to websocket
-- subscribers. The payload is small and fixed-size (ids, status, progress,
-- updated_at: about 250 bytes, far below NOTIFY's 8000-byte limit); the
-- subscriber reads anything else under its own row-level security.
-- NOTIFY is transactional: a change is announced only once it commits, and
-- never for a rolled-back one.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION public.notify_generation_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $$
BEGIN
  PERFORM pg_notify('generation_changes', json_build_object(
    'id', NEW.id,
    'user_id', NEW.user_id,
    'story_id', NEW.story_id,
    'status', upper(NEW.status::text),
    'progress', NEW.progress,
    'updated_at', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  )::text);
  RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER story_generations_notify_insert
  AFTER INSERT ON public.story_generations
  FOR EACH ROW EXECUTE FUNCTION public.notify_generation_change();

-- Only changes a client can see are announced: the worker's lease renewals
-- (a later migration) touch the row every few seconds and must not wake
-- every subscriber.
CREATE TRIGGER story_generations_notify_update
  AFTER UPDATE ON public.story_generations
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status
     OR OLD.progress IS DISTINCT FROM NEW.progress
     OR OLD.result_url IS DISTINCT FROM NEW.result_url
     OR OLD.metadata IS DISTINCT FROM NEW.metadata)
  EXECUTE FUNCTION public.notify_generation_change();

-- +goose Down
DROP TRIGGER IF EXISTS story_generations_notify_update ON public.story_generations;
DROP TRIGGER IF EXISTS story_generations_notify_insert ON public.story_generations;
DROP FUNCTION IF EXISTS public.notify_generation_change();

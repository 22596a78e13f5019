-- The change notification carries the status as the generation_status enum
-- spells it ('in_progress'), the spelling the rows and the Go code use, so no
-- hop between the database and a subscriber converts it (00002 upper-cased
-- it). Only the GraphQL API spells it otherwise, and maps it in one place.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION public.notify_generation_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $$
BEGIN
  PERFORM pg_notify('generation_changes', json_build_object(
    'id', NEW.id,
    'user_id', NEW.user_id,
    'story_id', NEW.story_id,
    'status', NEW.status,
    'progress', NEW.progress,
    'updated_at', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  )::text);
  RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION public.notify_generation_change() RETURNS trigger
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

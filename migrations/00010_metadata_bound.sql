-- A generation's metadata is a small JSON object: the story version it was
-- asked for, what the worker records about its run. Users may write it when
-- they queue a generation (through the API or Supabase's REST API), so it
-- is bounded here, where no client can get around it: an object of at most
-- 16 KiB as text. Without the bound one user could store megabytes per row
-- and have every listing of their generations send it back.

-- +goose Up
ALTER TABLE public.story_generations
  ADD CONSTRAINT metadata_bounded CHECK (
    jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 16384
  );

-- +goose Down
ALTER TABLE public.story_generations DROP CONSTRAINT IF EXISTS metadata_bounded;

-- The audio parts of a narration, one per synthesised chunk, stored as the
-- worker makes them, so that a listener can start playing after the first
-- chunk instead of waiting for the whole story, and so that the worker
-- never holds more than one chunk's audio: the final file is streamed from
-- the stored parts. The parts concatenate to the final file (MP3 parts
-- byte for byte; WAV parts by their sample data).
--
-- A part belongs to one attempt of the generation: a new claim starts the
-- narration over and deletes the earlier attempt's parts.

-- +goose Up
CREATE TABLE public.generation_parts (
  generation_id uuid NOT NULL REFERENCES public.story_generations (id) ON DELETE CASCADE,
  index         integer NOT NULL CHECK (index >= 0),
  storage_key   text NOT NULL,
  content_type  text NOT NULL,
  byte_size     bigint NOT NULL CHECK (byte_size > 0),
  -- Null when the audio's length could not be read from it.
  duration_ms   integer CHECK (duration_ms >= 0),
  -- The characters of the story text the part narrates: [char_start, char_end).
  char_start    integer NOT NULL CHECK (char_start >= 0),
  char_end      integer NOT NULL CHECK (char_end > char_start),
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (generation_id, index)
);

-- Supabase's default privileges grant every new table to the API roles;
-- start from nothing and grant what is needed.
REVOKE ALL ON public.generation_parts FROM PUBLIC, anon, authenticated, service_role;
-- Owners read their parts; only the worker (service role) writes them. The
-- storage key is how the API signs a part's link, so it is readable, but
-- the bucket stays private: audio is only served through signed links.
GRANT SELECT ON public.generation_parts TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.generation_parts TO service_role;

ALTER TABLE public.generation_parts ENABLE ROW LEVEL SECURITY;
-- Owner-only, admins included: a part is a link to someone's own voice.
CREATE POLICY generation_parts_owner_read ON public.generation_parts
  FOR SELECT TO authenticated
  USING (EXISTS (
    SELECT 1 FROM public.story_generations g
    WHERE g.id = generation_parts.generation_id AND g.user_id = (SELECT auth.uid())
  ));
CREATE POLICY generation_parts_service ON public.generation_parts
  FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE IF EXISTS public.generation_parts;

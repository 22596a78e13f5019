-- The narration worker's lease. A worker claims a generation by setting it
-- IN_PROGRESS with a lease (owner and expiry) that it renews while working.
-- A generation whose lease has expired belongs to a worker that crashed or
-- lost its database, and any worker may claim it again, so no generation
-- stays IN_PROGRESS forever. attempts counts the claims, so that a story that
-- crashes every worker which takes it fails after a bounded number of tries
-- instead of circling forever.

-- +goose Up
ALTER TABLE public.story_generations
  ADD COLUMN lease_owner      text,
  ADD COLUMN lease_expires_at timestamptz,
  ADD COLUMN attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- Only a running generation holds a lease: a finished, cancelled or
  -- requeued one must not look owned to a worker that still thinks it is.
  ADD CONSTRAINT lease_only_when_running CHECK (
    (lease_owner IS NULL AND lease_expires_at IS NULL) OR status = 'in_progress'
  ),
  ADD CONSTRAINT lease_complete CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL));

-- A user's cancel changes only the status (it is the one column users may
-- update), so the lease is dropped by a trigger whenever a generation stops
-- running, whoever stops it. The worker that held it notices at its next
-- write, which requires status IN_PROGRESS and its own lease_owner.
-- +goose StatementBegin
CREATE FUNCTION public.clear_generation_lease() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $$
BEGIN
  IF NEW.status <> 'in_progress' THEN
    NEW.lease_owner := NULL;
    NEW.lease_expires_at := NULL;
  END IF;
  RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER story_generations_clear_lease BEFORE UPDATE OF status ON public.story_generations
  FOR EACH ROW EXECUTE FUNCTION public.clear_generation_lease();

-- The claim's access path: the oldest generation that is PENDING or
-- IN_PROGRESS (the claim then skips live leases). Finished generations, the
-- vast majority, are not in the index at all, so the claim reads a handful
-- of entries however large the table grows; the rows it skips are the
-- running ones, at most one per busy worker slot.
CREATE INDEX story_generations_claim_idx ON public.story_generations (created_at, id)
  WHERE status IN ('pending', 'in_progress');

-- Lease columns are the worker's business. Users keep exactly the columns
-- they could read before: a table-wide SELECT would silently extend to the
-- new columns and show every user which host runs their narration. Their
-- write grants (INSERT user_id, story_id, metadata; UPDATE status) are
-- column grants already and do not cover the new columns. The service role
-- keeps its table-wide privileges.
REVOKE SELECT ON public.story_generations FROM authenticated;
GRANT SELECT (id, user_id, story_id, status, progress, result_url, metadata, created_at, updated_at)
  ON public.story_generations TO authenticated;

-- updated_at tells clients when they last saw a change, and orders the
-- changes the realtime listener announces. A lease renewal every few
-- seconds is not a change anyone can see (the notify trigger ignores it
-- too), so it must not move updated_at either: the trigger now fires only
-- when a column other than the lease's changes.
DROP TRIGGER story_generations_updated_at ON public.story_generations;
CREATE TRIGGER story_generations_updated_at BEFORE UPDATE ON public.story_generations
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status
     OR OLD.progress IS DISTINCT FROM NEW.progress
     OR OLD.result_url IS DISTINCT FROM NEW.result_url
     OR OLD.metadata IS DISTINCT FROM NEW.metadata
     OR OLD.user_id IS DISTINCT FROM NEW.user_id
     OR OLD.story_id IS DISTINCT FROM NEW.story_id
     OR OLD.created_at IS DISTINCT FROM NEW.created_at)
  EXECUTE FUNCTION public.set_updated_at();

COMMENT ON COLUMN public.story_generations.lease_owner IS
  'worker that holds the generation while IN_PROGRESS; null otherwise';
COMMENT ON COLUMN public.story_generations.lease_expires_at IS
  'when an unrenewed lease lapses and another worker may reclaim the generation';
COMMENT ON COLUMN public.story_generations.attempts IS
  'how many times a worker has claimed the generation';

-- +goose Down
DROP TRIGGER story_generations_clear_lease ON public.story_generations;
DROP FUNCTION public.clear_generation_lease();
DROP TRIGGER story_generations_updated_at ON public.story_generations;
CREATE TRIGGER story_generations_updated_at BEFORE UPDATE ON public.story_generations
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
REVOKE SELECT ON public.story_generations FROM authenticated;
GRANT SELECT ON public.story_generations TO authenticated;
DROP INDEX IF EXISTS public.story_generations_claim_idx;
ALTER TABLE public.story_generations
  DROP CONSTRAINT IF EXISTS lease_complete,
  DROP CONSTRAINT IF EXISTS lease_only_when_running,
  DROP COLUMN IF EXISTS attempts,
  DROP COLUMN IF EXISTS lease_expires_at,
  DROP COLUMN IF EXISTS lease_owner;

package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The narration worker's queue. Every method here acts as the service role:
// the worker is one of the two parts of the server allowed to write what
// users may not (progress, results, leases).
//
// A generation is a queue entry. Claim moves a PENDING one (or an
// IN_PROGRESS one whose lease expired) to IN_PROGRESS under a lease; every
// later write by the worker names the lease owner and succeeds only while
// the generation is still IN_PROGRESS under that owner. A user's cancel
// (status FAILED) and a reclaim by another worker after the lease expired
// both make those writes fail with ErrLeaseLost, which is how the worker
// notices either.

// ErrLeaseLost: the generation is no longer IN_PROGRESS under this owner's
// lease. It was cancelled, finished, released, or reclaimed by another
// worker after the lease expired. The worker must stop working on it and
// write nothing more about it.
var ErrLeaseLost = errors.New("generation lease lost")

// Job is a claimed generation with what the worker needs to narrate it.
type Job struct {
	Generation Generation
	// StoryTitle, StoryVersion and Content are the story as it was when the
	// generation was claimed; the version and title are recorded in the
	// generation's metadata.
	StoryTitle   string
	StoryVersion int
	Content      string
	// VoiceID is the provider id of the owner's verified voice, or "" when
	// the owner no longer has a verified voice sample the provider accepts.
	VoiceID string
	// Attempt counts the claims of this generation, this one included: more
	// than one means earlier workers crashed or lost their lease.
	Attempt int
	// Owner is the lease owner that claimed it, whom every later write
	// names.
	Owner string
	// StaleParts are the storage keys of the parts an earlier attempt
	// stored; the claim removed them from the generation.
	StaleParts []string
}

// maxEventLen is the longest log event the generation_logs check accepts.
const maxEventLen = 2000

// claimSQL claims the oldest claimable generation in one statement. The
// candidate scan walks story_generations_claim_idx in created_at order;
// FOR UPDATE SKIP LOCKED makes concurrent claims (any number of workers on
// any number of hosts) pass over each other's rows instead of waiting on or
// double-claiming them. The claim records the story version and title it
// will narrate and logs the claim, all in the same transaction; it also
// deletes the parts an earlier attempt stored, since the narration starts
// over, and returns their keys for the worker to delete from storage. A
// reclaimed generation starts over but keeps the progress it had shown:
// clients' progress bars never move backwards (RecordPart only raises it).
var claimSQL = `
WITH next AS (
  SELECT g.id FROM story_generations g
  WHERE g.status = 'pending'
     OR (g.status = 'in_progress' AND (g.lease_expires_at IS NULL OR g.lease_expires_at < now()))
  ORDER BY g.created_at, g.id
  LIMIT 1
  FOR UPDATE OF g SKIP LOCKED
), claimed AS (
  UPDATE story_generations g SET
    status = 'in_progress',
    lease_owner = $1,
    lease_expires_at = now() + $2::interval,
    attempts = g.attempts + 1,
    metadata = g.metadata || jsonb_build_object('story_version', s.version, 'story_title', s.title, 'parts', 0)
  FROM next, stories s
  WHERE g.id = next.id AND s.id = g.story_id
  RETURNING ` + generations.list(AllColumns, "g") + `, g.attempts, s.title AS story_title, s.version AS story_version, s.content,
    coalesce((SELECT v.elevenlabs_voice_id FROM voice_samples v WHERE v.user_id = g.user_id AND v.verified
      AND NOT v.provider_verification_required), '') AS voice_id
), logged AS (
  INSERT INTO generation_logs (generation_id, event)
  SELECT id, CASE WHEN attempts = 1 THEN 'claimed'
                  ELSE 'claimed: attempt ' || attempts || ', the previous worker stopped renewing its lease' END
  FROM claimed
), dropped AS (
  DELETE FROM generation_parts p USING claimed WHERE p.generation_id = claimed.id
  RETURNING p.storage_key
)
SELECT claimed.*, ARRAY(SELECT storage_key FROM dropped) AS stale_parts FROM claimed`

type claimRow struct {
	Generation   Generation
	Attempts     int
	StoryTitle   string
	StoryVersion int
	Content      string
	VoiceID      string
	StaleParts   []string
}

// claimRows reads what claimSQL returns: a whole generation, then the
// claim's own columns.
var claimRows = func() scanner[claimRow] {
	t := nested(generations, func(r *claimRow) *Generation { return &r.Generation })
	t.columns = append(t.columns,
		column[claimRow]{name: "attempts", dest: func(r *claimRow, _ *nulls) any { return &r.Attempts }},
		column[claimRow]{name: "story_title", dest: func(r *claimRow, _ *nulls) any { return &r.StoryTitle }},
		column[claimRow]{name: "story_version", dest: func(r *claimRow, _ *nulls) any { return &r.StoryVersion }},
		column[claimRow]{name: "content", dest: func(r *claimRow, _ *nulls) any { return &r.Content }},
		column[claimRow]{name: "voice_id", dest: func(r *claimRow, _ *nulls) any { return &r.VoiceID }},
		column[claimRow]{name: "stale_parts", dest: func(r *claimRow, _ *nulls) any { return &r.StaleParts }},
	)
	return scanner[claimRow]{t: t, cols: AllColumns}
}()

// Claim takes the oldest PENDING generation, or an IN_PROGRESS one whose
// lease expired, for owner until now+lease. ok is false when there is
// nothing to claim.
func (d *DB) Claim(ctx context.Context, owner string, lease time.Duration) (job Job, ok bool, err error) {
	rows, err := query(ctx, d, Service(), claimRows, claimSQL, owner, lease)
	if err != nil {
		return Job{}, false, fmt.Errorf("claim generation: %w", err)
	}
	if len(rows) == 0 {
		return Job{}, false, nil
	}
	r := rows[0]
	return Job{
		Generation:   r.Generation,
		StoryTitle:   r.StoryTitle,
		StoryVersion: r.StoryVersion,
		Content:      r.Content,
		VoiceID:      r.VoiceID,
		Attempt:      r.Attempts,
		Owner:        owner,
		StaleParts:   r.StaleParts,
	}, true, nil
}

// leaseHeld is the condition every write under a lease carries.
const leaseHeld = `id = $1 AND lease_owner = $2 AND status = 'in_progress'`

// execLeased runs a statement that touches the leased row as the service
// role and reports ErrLeaseLost when it touched none.
func (d *DB) execLeased(ctx context.Context, what string, sql string, args ...any) error {
	var affected int64
	err := d.Batch(ctx, Service(), func(b *pgx.Batch) {
		b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error {
			affected = ct.RowsAffected()
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, classify(err))
	}
	if affected == 0 {
		return fmt.Errorf("%s: %w", what, ErrLeaseLost)
	}
	return nil
}

// RenewLease extends owner's lease on generation id to now+lease. It
// changes nothing a client can see: neither the notify trigger nor
// updated_at reacts to it.
func (d *DB) RenewLease(ctx context.Context, id uuid.UUID, owner string, lease time.Duration) error {
	return d.execLeased(ctx, "renew lease",
		`UPDATE story_generations SET lease_expires_at = now() + $3::interval WHERE `+leaseHeld, id, owner, lease)
}

// NewPart is an audio part of a generation, stored by its worker.
type NewPart struct {
	// Index counts parts from 0, in narration order.
	Index       int
	StorageKey  string
	ContentType string
	ByteSize    int64
	// DurationMS is how long the part plays; nil when unknown.
	DurationMS *int
	// CharStart and CharEnd are the characters of the story the part
	// narrates: [CharStart, CharEnd).
	CharStart, CharEnd int
}

// RecordPart adds a stored part to the generation, records progress and,
// unless event is empty, logs event, all only while owner holds the lease.
// The part count in the generation's metadata ("parts") changes with it,
// which announces the change to subscribers like any progress.
// Recording the same part again (a retry after a lost answer) replaces it.
func (d *DB) RecordPart(ctx context.Context, id uuid.UUID, owner string, p NewPart, progress int, event string) error {
	return d.execLeased(ctx, "record part", `
		WITH updated AS (
		  UPDATE story_generations SET progress = greatest(progress, $3),
		    metadata = metadata || jsonb_build_object('parts', $5::int + 1)
		  WHERE `+leaseHeld+` RETURNING id
		), part AS (
		  INSERT INTO generation_parts (generation_id, index, storage_key, content_type, byte_size, duration_ms, char_start, char_end)
		  SELECT id, $5, $6, $7, $8, $9, $10, $11 FROM updated
		  ON CONFLICT (generation_id, index) DO UPDATE SET
		    storage_key = excluded.storage_key, content_type = excluded.content_type, byte_size = excluded.byte_size,
		    duration_ms = excluded.duration_ms, char_start = excluded.char_start, char_end = excluded.char_end
		), logged AS (
		  INSERT INTO generation_logs (generation_id, event)
		  SELECT id, $4::text FROM updated WHERE $4::text <> ''
		)
		SELECT 1 FROM updated`, id, owner, min(max(progress, 0), 100), clip(event),
		p.Index, p.StorageKey, p.ContentType, p.ByteSize, p.DurationMS, p.CharStart, p.CharEnd)
}

// Log appends event to the generation's log while owner holds the lease.
func (d *DB) Log(ctx context.Context, id uuid.UUID, owner, event string) error {
	return d.execLeased(ctx, "log generation event", `
		INSERT INTO generation_logs (generation_id, event)
		SELECT id, $3::text FROM story_generations WHERE `+leaseHeld, id, owner, clip(event))
}

// Complete finishes the generation with the stored audio's key, merges
// meta into its metadata and logs 'completed'. Completing again with the
// same key succeeds without a second log event, so a retry after a lost
// answer is safe. ErrLeaseLost means the result was not recorded (the
// generation was cancelled or taken over), so the caller should delete the
// stored audio.
func (d *DB) Complete(ctx context.Context, id uuid.UUID, owner, resultKey string, meta map[string]any) error {
	extra, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("complete generation: metadata: %w", err)
	}
	if meta == nil {
		extra = []byte(`{}`)
	}
	// The second SELECT makes a retry idempotent: when an earlier attempt
	// committed but its answer was lost, the generation is already
	// completed with this very key (keys are unique per attempt), and that
	// is success, not a lost lease. It reads the snapshot from before the
	// UPDATE, so it never matches in the same statement as a successful one.
	return d.execLeased(ctx, "complete generation", `
		WITH done AS (
		  UPDATE story_generations SET
		    status = 'completed', progress = 100, result_url = $3, metadata = metadata || $4::jsonb
		  WHERE `+leaseHeld+` RETURNING id
		), logged AS (
		  INSERT INTO generation_logs (generation_id, event) SELECT id, 'completed' FROM done
		)
		SELECT 1 FROM done
		UNION ALL
		SELECT 1 FROM story_generations WHERE id = $1 AND status = 'completed' AND result_url = $3`,
		id, owner, resultKey, string(extra))
}

// Fail ends the generation as FAILED, records reason in its metadata
// ("error") and logs "failed: <reason>".
func (d *DB) Fail(ctx context.Context, id uuid.UUID, owner, reason string) error {
	return d.execLeased(ctx, "fail generation", `
		WITH failed AS (
		  UPDATE story_generations SET
		    status = 'failed', metadata = metadata || jsonb_build_object('error', $3::text)
		  WHERE `+leaseHeld+` RETURNING id
		)
		INSERT INTO generation_logs (generation_id, event) SELECT id, $4::text FROM failed`,
		id, owner, clip(reason), clip("failed: "+reason))
}

// Release hands a generation back to the queue when its worker shuts down
// before finishing it: it becomes PENDING again (keeping its progress), and the
// claim it used no longer counts as an attempt, since a deliberate
// shutdown says nothing about the generation. Going back to PENDING (rather
// than leaving the lease to expire) lets another worker start at once, and
// the PENDING event that the status change announces wakes the embedded
// workers of the other servers. reason is logged as "released: <reason>".
func (d *DB) Release(ctx context.Context, id uuid.UUID, owner, reason string) error {
	return d.execLeased(ctx, "release generation", `
		WITH released AS (
		  UPDATE story_generations SET
		    status = 'pending', attempts = greatest(attempts - 1, 0)
		  WHERE `+leaseHeld+` RETURNING id
		)
		INSERT INTO generation_logs (generation_id, event) SELECT id, $3::text FROM released`,
		id, owner, clip("released: "+reason))
}

// QueueDepth counts the PENDING generations.
func (d *DB) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := d.Batch(ctx, Service(), func(b *pgx.Batch) {
		b.Queue(`SELECT count(*) FROM story_generations WHERE status = 'pending'`).QueryRow(func(row pgx.Row) error {
			return row.Scan(&n)
		})
	})
	if err != nil {
		return 0, fmt.Errorf("queue depth: %w", err)
	}
	return n, nil
}

// clip shortens s to the longest log event the database accepts, on a
// rune boundary.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxEventLen {
		return s
	}
	r := []rune(s)
	return string(r[:maxEventLen-1]) + "…"
}

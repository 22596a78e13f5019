package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/limit"
)

const (
	storyColumns      = `id, title, slug, content, version, created_at, updated_at`
	generationColumns = `id, user_id, story_id, status, progress, result_url, metadata, created_at, updated_at`
	logColumns        = `id, generation_id, event, occurred_at`
	profileColumns    = `user_id, display_name, avatar_url, created_at, updated_at`
	voiceColumns      = `id, user_id, elevenlabs_voice_id, verification_phrase, verified, provider_verification_required, created_at`
)

// queryAll runs one statement under s in a single round trip and scans
// every row into a T by column name.
func queryAll[T any](ctx context.Context, d *DB, s Session, sql string, args ...any) ([]T, error) {
	var out []T
	err := d.Batch(ctx, s, func(b *pgx.Batch) {
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, pgx.RowToStructByName[T])
			return err
		})
	})
	return out, classify(err)
}

// queryOne is queryAll for statements that yield at most one row;
// ErrNotFound when there is none.
func queryOne[T any](ctx context.Context, d *DB, s Session, sql string, args ...any) (T, error) {
	rows, err := queryAll[T](ctx, d, s, sql, args...)
	if err != nil {
		var zero T
		return zero, err
	}
	if len(rows) == 0 {
		var zero T
		return zero, ErrNotFound
	}
	return rows[0], nil
}

// txOne is queryOne inside a transaction.
func txOne[T any](ctx context.Context, q Querier, sql string, args ...any) (T, error) {
	rows, _ := q.Query(ctx, sql, args...)
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[T])
	return v, classify(err)
}

// likePattern makes a case-insensitive substring pattern of s, with LIKE's
// wildcards in s taken literally.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// StoryKey is the keyset position after which a catalogue page starts.
type StoryKey struct {
	Title string
	ID    uuid.UUID
}

// StoriesParams selects a catalogue page.
type StoriesParams struct {
	Limit  int
	After  *StoryKey
	Search string
}

// Stories lists the catalogue ordered by title (the database collation),
// then id.
func (d *DB) Stories(ctx context.Context, s Session, p StoriesParams) ([]Story, error) {
	var afterTitle *string
	var afterID *uuid.UUID
	if p.After != nil {
		afterTitle, afterID = &p.After.Title, &p.After.ID
	}
	var search *string
	if p.Search != "" {
		pat := likePattern(p.Search)
		search = &pat
	}
	return queryAll[Story](ctx, d, s, `
		SELECT `+storyColumns+` FROM stories
		WHERE ($1::text IS NULL OR title ILIKE $1)
		  AND ($2::text IS NULL OR (title, id) > ($2::text, $3::uuid))
		ORDER BY title, id
		LIMIT $4`, search, afterTitle, afterID, p.Limit)
}

// StoriesByID loads stories by id, in no particular order.
func (d *DB) StoriesByID(ctx context.Context, s Session, ids []uuid.UUID) ([]Story, error) {
	return queryAll[Story](ctx, d, s, `SELECT `+storyColumns+` FROM stories WHERE id = ANY($1)`, ids)
}

// StoryBySlug loads one story by its slug.
func (d *DB) StoryBySlug(ctx context.Context, s Session, slug string) (Story, error) {
	return queryOne[Story](ctx, d, s, `SELECT `+storyColumns+` FROM stories WHERE slug = $1`, slug)
}

// CreateStory inserts a story at version 1.
func (d *DB) CreateStory(ctx context.Context, s Session, title, slug, content string) (Story, error) {
	story, err := queryOne[Story](ctx, d, s, `
		INSERT INTO stories (title, slug, content) VALUES ($1, $2, $3)
		RETURNING `+storyColumns, title, slug, content)
	return story, slugTaken(err, &slug)
}

// slugTaken words the one unique violation a story write can hit.
func slugTaken(err error, slug *string) error {
	if errors.Is(err, ErrConflict) && slug != nil {
		return fmt.Errorf("%w: a story with slug %q already exists", ErrConflict, *slug)
	}
	return err
}

// StoryPatch holds the fields an update changes; nil leaves one as it is.
type StoryPatch struct {
	Title, Slug, Content *string
}

// UpdateStory applies patch if the story is still at expectedVersion and
// bumps its version. ErrNotFound when the story does not exist (or is not
// visible), ErrConflict when its version moved on or the slug is taken,
// ErrForbidden when the session may not edit stories.
func (d *DB) UpdateStory(ctx context.Context, s Session, id uuid.UUID, expectedVersion int, patch StoryPatch) (Story, error) {
	var story Story
	err := d.Tx(ctx, s, func(q Querier) error {
		var err error
		story, err = txOne[Story](ctx, q, `
			UPDATE stories SET
			  title = coalesce($3, title),
			  slug = coalesce($4, slug),
			  content = coalesce($5, content),
			  version = version + 1
			WHERE id = $1 AND version = $2
			RETURNING `+storyColumns, id, expectedVersion, patch.Title, patch.Slug, patch.Content)
		if !errors.Is(err, ErrNotFound) {
			return slugTaken(err, patch.Slug)
		}
		// Nothing updated: tell a missing story from a stale version, and
		// both from a story the update policy hid. A concurrent edit shows
		// here as a newer version; the version this statement was asked for
		// means the row matched but the session may not write it.
		var current int
		if err := q.QueryRow(ctx, `SELECT version FROM stories WHERE id = $1`, id).Scan(&current); err != nil {
			return classify(err)
		}
		if current == expectedVersion {
			return fmt.Errorf("%w: the session may not edit story %s", ErrForbidden, id)
		}
		return fmt.Errorf("%w: story %s is at version %d, not %d", ErrConflict, id, current, expectedVersion)
	})
	return story, err
}

// DeleteStory deletes a story (and, by cascade, its generations).
func (d *DB) DeleteStory(ctx context.Context, s Session, id uuid.UUID) error {
	var deleted int64
	err := d.Batch(ctx, s, func(b *pgx.Batch) {
		b.Queue(`DELETE FROM stories WHERE id = $1`, id).Exec(func(ct pgconn.CommandTag) error {
			deleted = ct.RowsAffected()
			return nil
		})
	})
	if err != nil {
		return classify(err)
	}
	if deleted == 0 {
		return ErrNotFound
	}
	return nil
}

// GenerationKey is the keyset position after which a page of generations
// (newest first) starts.
type GenerationKey struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// GenerationFilter narrows a listing of generations.
type GenerationFilter struct {
	Status *generation.Status
}

// PageParams selects one page of a keyset listing.
type PageParams[K any] struct {
	Limit int
	After *K
}

// GenerationsByOwner lists, for each owner and story pair in keys, a page
// of that user's generations newest first (created_at DESC, id ASC, the
// order story_generations_user_created_idx serves). A zero StoryID in a key
// means any story. Rows come back with the key index they answer in
// KeyIndex, so one statement serves a whole batch of nested connections.
func (d *DB) GenerationsByOwner(ctx context.Context, s Session, keys []OwnerKey, f GenerationFilter, p PageParams[GenerationKey]) ([]Keyed[Generation], error) {
	users := make([]uuid.UUID, len(keys))
	stories := make([]uuid.UUID, len(keys))
	for i, k := range keys {
		users[i], stories[i] = k.UserID, k.StoryID
	}
	var afterAt *time.Time
	var afterID *uuid.UUID
	if p.After != nil {
		afterAt, afterID = &p.After.CreatedAt, &p.After.ID
	}
	var status *string
	if f.Status != nil {
		v := string(*f.Status)
		status = &v
	}
	rows, err := queryAll[keyedGeneration](ctx, d, s, `
		SELECT k.ord - 1 AS key_index, g.*
		FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(user_id, story_id, ord)
		CROSS JOIN LATERAL (
		  SELECT `+generationColumns+` FROM story_generations g
		  WHERE g.user_id = k.user_id
		    AND (k.story_id = '00000000-0000-0000-0000-000000000000' OR g.story_id = k.story_id)
		    AND ($3::generation_status IS NULL OR g.status = $3::generation_status)
		    AND ($4::timestamptz IS NULL OR g.created_at < $4 OR (g.created_at = $4 AND g.id > $5))
		  ORDER BY g.created_at DESC, g.id
		  LIMIT $6
		) g
		ORDER BY k.ord, g.created_at DESC, g.id`,
		users, stories, status, afterAt, afterID, p.Limit)
	if err != nil {
		return nil, err
	}
	out := make([]Keyed[Generation], len(rows))
	for i, r := range rows {
		out[i] = Keyed[Generation]{KeyIndex: r.KeyIndex, Row: r.Generation}
	}
	return out, nil
}

// OwnerKey names whose generations, of which story (uuid.Nil: any), to list.
type OwnerKey struct {
	UserID  uuid.UUID
	StoryID uuid.UUID
}

// Keyed is a row of a batched query with the index of the key it answers.
type Keyed[T any] struct {
	KeyIndex int
	Row      T
}

type keyedGeneration struct {
	KeyIndex int `db:"key_index"`
	Generation
}

type keyedLog struct {
	KeyIndex int `db:"key_index"`
	Log
}

// GenerationsByID loads generations by id; invisible ones are absent.
func (d *DB) GenerationsByID(ctx context.Context, s Session, ids []uuid.UUID) ([]Generation, error) {
	return queryAll[Generation](ctx, d, s, `SELECT `+generationColumns+` FROM story_generations WHERE id = ANY($1)`, ids)
}

// SessionRead is one session's part of GenerationsForSessions.
type SessionRead struct {
	Session Session
	IDs     []uuid.UUID
}

// GenerationsForSessions reads, for each read, the generations among its
// ids that its session may see, all in one transaction and one round trip:
// each statement runs under its own session's role and claims, switched
// transaction-locally before it, so row-level security judges every read
// as that session. It returns the rows per read, in reads' order. One
// transaction for many sessions is what lets the realtime path read each
// event once per watching user rather than once per subscription, at the
// cost of one round trip per batch.
func (d *DB) GenerationsForSessions(ctx context.Context, reads []SessionRead) ([][]Generation, error) {
	if len(reads) == 0 {
		return nil, nil
	}
	out := make([][]Generation, len(reads))
	err := d.Batch(ctx, reads[0].Session, func(b *pgx.Batch) {
		for i, r := range reads {
			if i > 0 {
				b.Queue(setSessionSQL, r.Session.Role, string(r.Session.Claims))
			}
			b.Queue(`SELECT `+generationColumns+` FROM story_generations WHERE id = ANY($1)`, r.IDs).Query(func(rows pgx.Rows) error {
				var err error
				out[i], err = pgx.CollectRows(rows, pgx.RowToStructByName[Generation])
				return err
			})
		}
	})
	if err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// LogKey is the keyset position after which a page of logs (oldest first)
// starts.
type LogKey struct {
	OccurredAt time.Time
	ID         uuid.UUID
}

// LogsByGeneration lists, for each generation in ids, a page of its log
// events oldest first.
func (d *DB) LogsByGeneration(ctx context.Context, s Session, ids []uuid.UUID, p PageParams[LogKey]) ([]Keyed[Log], error) {
	var afterAt *time.Time
	var afterID *uuid.UUID
	if p.After != nil {
		afterAt, afterID = &p.After.OccurredAt, &p.After.ID
	}
	rows, err := queryAll[keyedLog](ctx, d, s, `
		SELECT k.ord - 1 AS key_index, l.*
		FROM unnest($1::uuid[]) WITH ORDINALITY AS k(generation_id, ord)
		CROSS JOIN LATERAL (
		  SELECT `+logColumns+` FROM generation_logs l
		  WHERE l.generation_id = k.generation_id
		    AND ($2::timestamptz IS NULL OR (l.occurred_at, l.id) > ($2::timestamptz, $3::uuid))
		  ORDER BY l.occurred_at, l.id
		  LIMIT $4
		) l
		ORDER BY k.ord, l.occurred_at, l.id`, ids, afterAt, afterID, p.Limit)
	if err != nil {
		return nil, err
	}
	out := make([]Keyed[Log], len(rows))
	for i, r := range rows {
		out[i] = Keyed[Log]{KeyIndex: r.KeyIndex, Row: r.Log}
	}
	return out, nil
}

// GenerationPart is a stored audio part of a generation.
type GenerationPart struct {
	GenerationID uuid.UUID `db:"generation_id"`
	Index        int       `db:"index"`
	StorageKey   string    `db:"storage_key"`
	ContentType  string    `db:"content_type"`
	ByteSize     int       `db:"byte_size"`
	DurationMS   *int      `db:"duration_ms"`
	StartChar    int       `db:"char_start"`
	EndChar      int       `db:"char_end"`
	CreatedAt    time.Time `db:"created_at"`
}

// PartsByGeneration loads the stored parts of the generations in ids, in
// order; row-level security shows owners their own only.
func (d *DB) PartsByGeneration(ctx context.Context, s Session, ids []uuid.UUID) ([]GenerationPart, error) {
	return queryAll[GenerationPart](ctx, d, s, `
		SELECT generation_id, index, storage_key, content_type, byte_size, duration_ms, char_start, char_end, created_at
		FROM generation_parts WHERE generation_id = ANY($1) ORDER BY generation_id, index`, ids)
}

// ErrVoiceNotVerified: the user has no voice sample, or has not verified it.
var ErrVoiceNotVerified = errors.New("voice not verified")

// ErrVoiceProviderUnverified wraps ErrVoiceNotVerified when the user's
// voice sample is verified but the voice provider still holds the voice
// back until it is verified there.
var ErrVoiceProviderUnverified = fmt.Errorf("%w: the voice provider requires verifying the voice", ErrVoiceNotVerified)

// StartGeneration queues a narration of a story for the session's user,
// recording the story version it was asked for, and takes a token of the
// user's rate (a *RateLimitError when there is none). ErrNotFound when the
// story does not exist, ErrVoiceNotVerified without a verified voice
// sample, ErrVoiceProviderUnverified when the provider holds the voice
// back, a *QuotaError when the database's quotas refuse it; the token is
// given back on every failure. With an idempotency key, the user's
// generation made earlier with the same key is returned instead of a new
// one, without a token (created reports which).
func (d *DB) StartGeneration(ctx context.Context, s Session, storyID uuid.UUID, idempotencyKey *string, rate limit.Rate) (g Generation, created bool, err error) {
	err = d.Tx(ctx, s, func(q Querier) error {
		if err := takeToken(ctx, q, "startGeneration", rate); err != nil {
			return err
		}
		var verified, held bool
		err := q.QueryRow(ctx, `
			SELECT coalesce(bool_or(verified), false), coalesce(bool_or(provider_verification_required), false)
			FROM voice_samples WHERE user_id = $1`, s.UserID).Scan(&verified, &held)
		if err != nil {
			return classify(err)
		}
		switch {
		case !verified:
			return ErrVoiceNotVerified
		case held:
			return ErrVoiceProviderUnverified
		}
		g, err = txOne[Generation](ctx, q, `
			INSERT INTO story_generations (user_id, story_id, metadata, idempotency_key)
			SELECT $1, s.id, jsonb_build_object('requested_story_version', s.version), $3
			FROM stories s WHERE s.id = $2
			RETURNING `+generationColumns, s.UserID, storyID, idempotencyKey)
		if qe, ok := quotaError(err); ok {
			return qe
		}
		return err
	})
	if errors.Is(err, ErrConflict) && idempotencyKey != nil {
		// The same key, sent again while the first request was running.
		g, err = d.GenerationByIdempotencyKey(ctx, s, *idempotencyKey)
		return g, false, err
	}
	return g, err == nil, err
}

// GenerationByIdempotencyKey finds the session user's generation started
// with key; ErrNotFound when there is none.
func (d *DB) GenerationByIdempotencyKey(ctx context.Context, s Session, key string) (Generation, error) {
	return queryOne[Generation](ctx, d, s, `SELECT `+generationColumns+`
		FROM story_generations WHERE user_id = $1 AND idempotency_key = $2`, s.UserID, key)
}

// CancelGeneration fails a pending or running generation and logs
// 'canceled'. ErrNotFound when it does not exist or is not visible,
// ErrConflict when it has already finished.
func (d *DB) CancelGeneration(ctx context.Context, s Session, id uuid.UUID) (Generation, error) {
	var g Generation
	err := d.Tx(ctx, s, func(q Querier) error {
		var err error
		g, err = txOne[Generation](ctx, q, `
			UPDATE story_generations SET status = 'failed'
			WHERE id = $1 AND status IN ('pending', 'in_progress')
			RETURNING `+generationColumns, id)
		if errors.Is(err, ErrNotFound) {
			var status generation.Status
			if err := q.QueryRow(ctx, `SELECT status FROM story_generations WHERE id = $1`, id).Scan(&status); err != nil {
				return classify(err)
			}
			// Only completed and failed generations get here, and both
			// read as verbs: "has already completed".
			return fmt.Errorf("%w: generation %s has already %s", ErrConflict, id, status)
		}
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx, `INSERT INTO generation_logs (generation_id, event) VALUES ($1, 'canceled')`, id)
		return classify(err)
	})
	return g, err
}

// ProfilesByUser loads profiles by user id.
func (d *DB) ProfilesByUser(ctx context.Context, s Session, ids []uuid.UUID) ([]Profile, error) {
	return queryAll[Profile](ctx, d, s, `SELECT `+profileColumns+` FROM profiles WHERE user_id = ANY($1)`, ids)
}

// ProfilePatch holds the profile fields an update sets; a field whose Set
// is false stays as it is, a set nil value clears it.
type ProfilePatch struct {
	DisplayName, AvatarURL       *string
	SetDisplayName, SetAvatarURL bool
}

// UpsertProfile creates or updates the session user's profile.
func (d *DB) UpsertProfile(ctx context.Context, s Session, p ProfilePatch) (Profile, error) {
	return queryOne[Profile](ctx, d, s, `
		INSERT INTO profiles AS p (user_id, display_name, avatar_url)
		VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET
		  display_name = CASE WHEN $4 THEN excluded.display_name ELSE p.display_name END,
		  avatar_url = CASE WHEN $5 THEN excluded.avatar_url ELSE p.avatar_url END
		RETURNING `+profileColumns,
		s.UserID, p.DisplayName, p.AvatarURL, p.SetDisplayName, p.SetAvatarURL)
}

// VoiceSamplesByUser loads voice samples by user id.
func (d *DB) VoiceSamplesByUser(ctx context.Context, s Session, ids []uuid.UUID) ([]VoiceSample, error) {
	return queryAll[VoiceSample](ctx, d, s, `SELECT `+voiceColumns+` FROM voice_samples WHERE user_id = ANY($1)`, ids)
}

// UserEmail is an auth.users email the session may see.
type UserEmail struct {
	ID    uuid.UUID `db:"id"`
	Email *string   `db:"email"`
}

// UserEmails loads the emails the session may see (its own; admins: any).
func (d *DB) UserEmails(ctx context.Context, s Session, ids []uuid.UUID) ([]UserEmail, error) {
	return queryAll[UserEmail](ctx, d, s, `SELECT id, email FROM public.user_emails($1)`, ids)
}

// GenerationEvents reads, as the service role, the state of the
// generations with the given ids and of the given users' generations
// updated since a time, as change events: what the notification listener
// re-reads after a reconnect (it is a realtime.StateReader).
func (d *DB) GenerationEvents(ctx context.Context, ids, users []uuid.UUID, since time.Time) ([]generation.Event, error) {
	rows, err := queryAll[Generation](ctx, d, Service(), `
		SELECT `+generationColumns+` FROM story_generations
		WHERE id = ANY($1) OR (user_id = ANY($2) AND updated_at >= $3)`, ids, users, since)
	if err != nil {
		return nil, err
	}
	events := make([]generation.Event, len(rows))
	for i, g := range rows {
		events[i] = generation.Event{
			GenerationID: g.ID, UserID: g.UserID, StoryID: g.StoryID,
			Status: g.Status, Progress: g.Progress, UpdatedAt: g.UpdatedAt,
		}
	}
	return events, nil
}

package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/limit"
)

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
	// Columns are the optional columns to read.
	Columns Columns
}

// Stories lists the catalogue ordered by title (the database collation),
// then id.
func (d *DB) Stories(ctx context.Context, s Session, p StoriesParams) ([]Story, error) {
	var q statement
	var where conditions
	if p.Search != "" {
		where.and("title ILIKE " + q.arg(likePattern(p.Search)))
	}
	if p.After != nil {
		where.and("(title, id) > (" + q.arg(p.After.Title) + "::text, " + q.arg([16]byte(p.After.ID)) + "::uuid)")
	}
	return query(ctx, d, s, scanner[Story]{t: stories, cols: p.Columns}, `
		SELECT `+stories.list(p.Columns, "")+` FROM stories`+where.String()+`
		ORDER BY title, id
		LIMIT `+q.arg(p.Limit), q.args...)
}

// StoriesByID loads the columns cols of stories by id, in no particular
// order.
func (d *DB) StoriesByID(ctx context.Context, s Session, ids []uuid.UUID, cols Columns) ([]Story, error) {
	var out []Story
	err := d.Read(ctx, s, func(r *Reads) { r.StoriesByID(ids, cols, &out) })
	return out, err
}

// StoriesByID queues DB.StoriesByID, into out.
func (r *Reads) StoriesByID(ids []uuid.UUID, cols Columns, out *[]Story) {
	queueRead(r, scanner[Story]{t: stories, cols: cols}, out,
		`SELECT `+stories.list(cols, "")+` FROM stories WHERE id = ANY($1)`, uuidsArg(ids))
}

// StoryBySlug loads the columns cols of one story by its slug.
func (d *DB) StoryBySlug(ctx context.Context, s Session, slug string, cols Columns) (Story, error) {
	return queryOne(ctx, d, s, scanner[Story]{t: stories, cols: cols},
		`SELECT `+stories.list(cols, "")+` FROM stories WHERE slug = $1`, slug)
}

// Whole rows, as writes return them.
var (
	allStories     = scanner[Story]{t: stories, cols: AllColumns}
	allGenerations = scanner[Generation]{t: generations, cols: AllColumns}
	allProfiles    = scanner[Profile]{t: profiles, cols: AllColumns}
	allVoices      = scanner[VoiceSample]{t: voiceSamples, cols: AllColumns}

	storyColumns      = stories.list(AllColumns, "")
	generationColumns = generations.list(AllColumns, "")
	profileColumns    = profiles.list(AllColumns, "")
	voiceColumns      = voiceSamples.list(AllColumns, "")
)

// CreateStory inserts a story at version 1.
func (d *DB) CreateStory(ctx context.Context, s Session, title, slug, content string) (Story, error) {
	story, err := queryOne(ctx, d, s, allStories, `
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
		story, err = txOne(ctx, q, allStories, `
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
	// Columns are the optional columns to read.
	Columns Columns
}

// GenerationsByOwner lists, for each owner and story pair in keys, a page
// of that user's generations newest first (created_at DESC, id ASC, the
// order story_generations_user_created_idx serves). A zero StoryID in a key
// means any story. Rows come back with the key index they answer in
// KeyIndex, so one statement serves a whole batch of nested connections.
func (d *DB) GenerationsByOwner(ctx context.Context, s Session, keys []OwnerKey, f GenerationFilter, p PageParams[GenerationKey]) ([]Keyed[Generation], error) {
	users := make([]uuid.UUID, len(keys))
	storyIDs := make([]uuid.UUID, len(keys))
	for i, k := range keys {
		users[i], storyIDs[i] = k.UserID, k.StoryID
	}
	q := statement{args: []any{uuidsArg(users), uuidsArg(storyIDs)}}
	var where conditions
	where.and("g.user_id = k.user_id")
	where.and("(k.story_id = '00000000-0000-0000-0000-000000000000' OR g.story_id = k.story_id)")
	pageConditions(&q, &where, f, p.After)
	return query(ctx, d, s, keyed(keyedGenerations, p.Columns), `
		SELECT k.ord - 1 AS key_index, g.*
		FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(user_id, story_id, ord)
		CROSS JOIN LATERAL (
		  SELECT `+generations.list(p.Columns, "")+` FROM story_generations g`+where.String()+`
		  ORDER BY g.created_at DESC, g.id
		  LIMIT `+q.arg(p.Limit)+`
		) g
		ORDER BY k.ord, g.created_at DESC, g.id`, q.args...)
}

// pageConditions adds to where what selects a page of generations (alias
// g) whoever its owner: the filter and the keyset position after which the
// page starts, newest first.
func pageConditions(q *statement, where *conditions, f GenerationFilter, after *GenerationKey) {
	if f.Status != nil {
		where.and("g.status = " + q.arg(string(*f.Status)) + "::generation_status")
	}
	if after != nil {
		at, id := q.arg(after.CreatedAt), q.arg([16]byte(after.ID))
		where.and("(g.created_at < " + at + " OR (g.created_at = " + at + " AND g.id > " + id + "))")
	}
}

// GenerationPage is one owner's page of generations as GenerationsByOwner
// reads it, for reads that take the page's generations from the database
// rather than from the caller: queued with the page in one ReadSnapshot,
// the page and what its nodes show (their stories, their logs) cost one
// round trip instead of two.
type GenerationPage struct {
	Owner  OwnerKey
	Filter GenerationFilter
	Page   PageParams[GenerationKey]
}

// sql is the statement selecting cols (over alias g) of the page's first
// limit generations, in page order, with its arguments added to q.
func (p GenerationPage) sql(q *statement, cols string, limit int) string {
	var where conditions
	where.and("g.user_id = " + q.arg([16]byte(p.Owner.UserID)))
	if p.Owner.StoryID != uuid.Nil {
		where.and("g.story_id = " + q.arg([16]byte(p.Owner.StoryID)))
	}
	pageConditions(q, &where, p.Filter, p.Page.After)
	return `SELECT ` + cols + ` FROM story_generations g` + where.String() + `
		ORDER BY g.created_at DESC, g.id LIMIT ` + q.arg(limit)
}

// GenerationPage queues the page's rows (p.Page.Limit of them at most)
// into out, newest first, as GenerationsByOwner reads them.
func (r *Reads) GenerationPage(p GenerationPage, out *[]Generation) {
	var q statement
	queueRead(r, scanner[Generation]{t: generations, cols: p.Page.Columns}, out,
		p.sql(&q, generations.list(p.Page.Columns, "g"), p.Page.Limit), q.args...)
}

// GenerationPageStories is GenerationPage reading as well, in the same
// statement, the columns cols of the story each generation narrates: into
// found, the distinct ones the caller may see, in no particular order.
// A separate statement would select the page again.
func (r *Reads) GenerationPageStories(p GenerationPage, out *[]Generation, cols Columns, found *[]Story) {
	var q statement
	sc := scanner[pageRow]{t: pageRows, cols: p.Page.Columns, after: func(row *pageRow, buf []any) []any {
		// No column of stories is nullable: it needs no nulls.
		return stories.dests(cols, &row.story, nil, buf)
	}}
	r.b.Queue(`SELECT `+generations.list(p.Page.Columns, "g")+`, `+stories.joinedList(cols, "s")+`
		FROM (`+p.sql(&q, generations.list(p.Page.Columns, "g"), p.Page.Limit)+`) g
		LEFT JOIN stories s ON s.id = g.story_id
		ORDER BY g.created_at DESC, g.id`, q.args...).Query(func(rows pgx.Rows) error {
		page, err := sc.collect(rows)
		*out = slices.Grow(*out, len(page))
		for i := range page {
			*out = append(*out, page[i].Generation)
			// A story the caller may not see reads as zeros (joinedList).
			if id := page[i].story.ID; id != uuid.Nil && slices.IndexFunc(*found, func(f Story) bool { return f.ID == id }) < 0 {
				*found = append(*found, page[i].story)
			}
		}
		return err
	})
}

// pageRow is a generation read with its story (GenerationPageStories).
type pageRow struct {
	Generation
	story Story
}

var pageRows = nested(generations, func(r *pageRow) *Generation { return &r.Generation })

// LogsOfPage queues the page lp of the logs of each of the page's first
// nodes generations into out, keyed by the generation's position in the
// page: what LogsByGeneration reads for those generations' ids.
func (r *Reads) LogsOfPage(p GenerationPage, nodes int, lp PageParams[LogKey], out *[]Keyed[Log]) {
	var q statement
	page := p.sql(&q, "g.id, row_number() OVER (ORDER BY g.created_at DESC, g.id) AS ord", nodes)
	queueRead(r, keyed(keyedLogs, lp.Columns), out, `
		SELECT k.ord - 1 AS key_index, l.*
		FROM (`+page+`) k`+logsOf(&q, "k.id", lp)+`
		ORDER BY k.ord, l.occurred_at, l.id`, q.args...)
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

// Rows read with the index of the key they answer.
var (
	keyedGenerations = nested(generations, func(r *Keyed[Generation]) *Generation { return &r.Row })
	keyedLogs        = nested(logs, func(r *Keyed[Log]) *Log { return &r.Row })
)

// keyed reads rows whose first column is the index of the key they answer
// and whose others are kt's columns in cols.
func keyed[T any](kt *table[Keyed[T]], cols Columns) scanner[Keyed[T]] {
	return scanner[Keyed[T]]{t: kt, cols: cols, extra: func(r *Keyed[T]) any { return &r.KeyIndex }}
}

// GenerationsByID loads the columns cols of generations by id; invisible
// ones are absent.
func (d *DB) GenerationsByID(ctx context.Context, s Session, ids []uuid.UUID, cols Columns) ([]Generation, error) {
	return query(ctx, d, s, scanner[Generation]{t: generations, cols: cols},
		`SELECT `+generations.list(cols, "")+` FROM story_generations WHERE id = ANY($1)`, uuidsArg(ids))
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
				b.Queue(setSessionSQL, r.Session.Role, r.Session.claimsArg())
			}
			b.Queue(`SELECT `+generationColumns+` FROM story_generations WHERE id = ANY($1)`, uuidsArg(r.IDs)).Query(func(rows pgx.Rows) error {
				var err error
				out[i], err = allGenerations.collect(rows)
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
	var out []Keyed[Log]
	err := d.Read(ctx, s, func(r *Reads) { r.LogsByGeneration(ids, p, &out) })
	return out, err
}

// LogsByGeneration queues DB.LogsByGeneration, into out.
func (r *Reads) LogsByGeneration(ids []uuid.UUID, p PageParams[LogKey], out *[]Keyed[Log]) {
	q := statement{args: []any{uuidsArg(ids)}}
	queueRead(r, keyed(keyedLogs, p.Columns), out, `
		SELECT k.ord - 1 AS key_index, l.*
		FROM unnest($1::uuid[]) WITH ORDINALITY AS k(generation_id, ord)`+
		logsOf(&q, "k.generation_id", p)+`
		ORDER BY k.ord, l.occurred_at, l.id`, q.args...)
}

// logsOf is the lateral join (alias l) of the page p of the logs of the
// generation whose id is the expression generation, oldest first.
func logsOf(q *statement, generation string, p PageParams[LogKey]) string {
	var where conditions
	where.and("l.generation_id = " + generation)
	if p.After != nil {
		where.and("(l.occurred_at, l.id) > (" + q.arg(p.After.OccurredAt) + "::timestamptz, " + q.arg([16]byte(p.After.ID)) + "::uuid)")
	}
	return `
		CROSS JOIN LATERAL (
		  SELECT ` + logs.list(p.Columns, "") + ` FROM generation_logs l` + where.String() + `
		  ORDER BY l.occurred_at, l.id
		  LIMIT ` + q.arg(p.Limit) + `
		) l`
}

// GenerationPart is a stored audio part of a generation.
type GenerationPart struct {
	GenerationID uuid.UUID
	Index        int
	StorageKey   string
	ContentType  string
	ByteSize     int
	DurationMS   *int
	StartChar    int
	EndChar      int
	CreatedAt    time.Time
}

var parts = scanner[GenerationPart]{cols: AllColumns, t: &table[GenerationPart]{columns: []column[GenerationPart]{
	{name: "generation_id", dest: func(r *GenerationPart, _ *nulls) any { return (*[16]byte)(&r.GenerationID) }},
	{name: "index", dest: func(r *GenerationPart, _ *nulls) any { return &r.Index }},
	{name: "storage_key", dest: func(r *GenerationPart, _ *nulls) any { return &r.StorageKey }},
	{name: "content_type", dest: func(r *GenerationPart, _ *nulls) any { return &r.ContentType }},
	{name: "byte_size", dest: func(r *GenerationPart, _ *nulls) any { return &r.ByteSize }},
	{name: "duration_ms", dest: func(r *GenerationPart, _ *nulls) any { return &r.DurationMS }},
	{name: "char_start", dest: func(r *GenerationPart, _ *nulls) any { return &r.StartChar }},
	{name: "char_end", dest: func(r *GenerationPart, _ *nulls) any { return &r.EndChar }},
	{name: "created_at", dest: func(r *GenerationPart, _ *nulls) any { return &r.CreatedAt }},
}}}

// PartsByGeneration loads the stored parts of the generations in ids, in
// order; row-level security shows owners their own only.
func (d *DB) PartsByGeneration(ctx context.Context, s Session, ids []uuid.UUID) ([]GenerationPart, error) {
	return query(ctx, d, s, parts, `
		SELECT `+parts.t.list(AllColumns, "")+`
		FROM generation_parts WHERE generation_id = ANY($1) ORDER BY generation_id, index`, uuidsArg(ids))
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
		g, err = txOne(ctx, q, allGenerations, `
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
	return queryOne(ctx, d, s, allGenerations, `SELECT `+generationColumns+`
		FROM story_generations WHERE user_id = $1 AND idempotency_key = $2`, s.UserID, key)
}

// CancelGeneration fails a pending or running generation and logs
// 'canceled'. ErrNotFound when it does not exist or is not visible,
// ErrConflict when it has already finished.
func (d *DB) CancelGeneration(ctx context.Context, s Session, id uuid.UUID) (Generation, error) {
	var g Generation
	err := d.Tx(ctx, s, func(q Querier) error {
		var err error
		g, err = txOne(ctx, q, allGenerations, `
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

// ProfilesByUser loads the columns cols of profiles by user id.
func (d *DB) ProfilesByUser(ctx context.Context, s Session, ids []uuid.UUID, cols Columns) ([]Profile, error) {
	return query(ctx, d, s, scanner[Profile]{t: profiles, cols: cols},
		`SELECT `+profiles.list(cols, "")+` FROM profiles WHERE user_id = ANY($1)`, uuidsArg(ids))
}

// ProfilePatch holds the profile fields an update sets; a field whose Set
// is false stays as it is, a set nil value clears it.
type ProfilePatch struct {
	DisplayName, AvatarURL       *string
	SetDisplayName, SetAvatarURL bool
}

// UpsertProfile creates or updates the session user's profile.
func (d *DB) UpsertProfile(ctx context.Context, s Session, p ProfilePatch) (Profile, error) {
	return queryOne(ctx, d, s, allProfiles, `
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
	return query(ctx, d, s, allVoices, `SELECT `+voiceColumns+` FROM voice_samples WHERE user_id = ANY($1)`, uuidsArg(ids))
}

// UserEmail is an auth.users email the session may see.
type UserEmail struct {
	ID    uuid.UUID
	Email *string
}

var userEmails = scanner[UserEmail]{cols: AllColumns, t: &table[UserEmail]{
	columns: []column[UserEmail]{
		{name: "id", dest: func(r *UserEmail, _ *nulls) any { return (*[16]byte)(&r.ID) }},
		{name: "email", dest: func(_ *UserEmail, n *nulls) any { return &n.text[0] }},
	},
	set: func(r *UserEmail, n *nulls) { r.Email = n.string(0) },
}}

// UserEmails loads the emails the session may see (its own; admins: any).
func (d *DB) UserEmails(ctx context.Context, s Session, ids []uuid.UUID) ([]UserEmail, error) {
	var out []UserEmail
	err := d.Read(ctx, s, func(r *Reads) { r.UserEmails(ids, &out) })
	return out, err
}

// UserEmails queues DB.UserEmails, into out.
func (r *Reads) UserEmails(ids []uuid.UUID, out *[]UserEmail) {
	queueRead(r, userEmails, out, `SELECT id, email FROM public.user_emails($1)`, uuidsArg(ids))
}

// GenerationEvents reads, as the service role, the state of the
// generations with the given ids and of the given users' generations
// updated since a time, as change events: what the notification listener
// re-reads after a reconnect (it is a realtime.StateReader).
func (d *DB) GenerationEvents(ctx context.Context, ids, users []uuid.UUID, since time.Time) ([]generation.Event, error) {
	rows, err := query(ctx, d, Service(), scanner[Generation]{t: generations, cols: GenerationProgress}, `
		SELECT `+generations.list(GenerationProgress, "")+` FROM story_generations
		WHERE id = ANY($1) OR (user_id = ANY($2) AND updated_at >= $3)`, uuidsArg(ids), uuidsArg(users), since)
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

package db

import (
	"context"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Columns is a set of a table's optional columns, one bit each. A read
// fetches the columns of the set and its table's key columns: the ids, and
// what cursors, nested fields and the realtime stream need. Reading only
// what an operation selects keeps 2 KB of story content per row off a
// catalogue page that shows titles.
type Columns uint32

// The optional columns of stories.
const (
	StorySlug Columns = 1 << iota
	StoryContent
	StoryVersion
	StoryCreatedAt
	StoryUpdatedAt
)

// The optional columns of story_generations.
const (
	GenerationProgress Columns = 1 << iota
	GenerationResult
	GenerationMetadata
)

// The optional columns of generation_logs.
const (
	LogEvent Columns = 1 << iota
)

// The optional columns of profiles.
const (
	ProfileDisplayName Columns = 1 << iota
	ProfileAvatarURL
	ProfileCreatedAt
	ProfileUpdatedAt
)

// AllColumns reads every column: writes return whole rows.
const AllColumns Columns = 1<<32 - 1

// column is one column of a table read into a field of T.
type column[T any] struct {
	name string
	// opt is the column's bit; 0 for a key column, always read.
	opt Columns
	// dest points into row at the field the column is scanned into. Its
	// types are ones pgx scans without reflection: *[16]byte for uuid.UUID
	// ids, *string for enums, *[]byte for jsonb, pgtype wrappers for NULLs.
	dest func(row *T, n *nulls) any
	// zero is the SQL value read in place of NULL when the row comes from
	// the outer side of an outer join (see table.joinedList); empty for a
	// table never read so.
	zero string
}

// nulls holds the nullable columns of one row while it is scanned; set
// copies them into the row.
type nulls struct {
	text [2]pgtype.Text
}

func (n *nulls) string(i int) *string {
	if !n.text[i].Valid {
		return nil
	}
	s := n.text[i].String
	return &s
}

// table describes how rows of T are read: its columns, in select-list
// order, and how the nullable ones are stored.
type table[T any] struct {
	columns []column[T]
	// set stores what nulls holds after a row is scanned; nil when the
	// table has no nullable column.
	set func(row *T, n *nulls)
}

// nested is t read into the T that field finds in a P, such as a row
// together with values about it.
func nested[P, T any](t *table[T], field func(*P) *T) *table[P] {
	p := &table[P]{columns: make([]column[P], len(t.columns))}
	for i, c := range t.columns {
		p.columns[i] = column[P]{name: c.name, opt: c.opt, dest: func(r *P, n *nulls) any { return c.dest(field(r), n) }}
	}
	if t.set != nil {
		p.set = func(r *P, n *nulls) { t.set(field(r), n) }
	}
	return p
}

// list is the select list of the columns in cols, each prefixed with
// alias and a dot when alias is not empty.
func (t *table[T]) list(cols Columns, alias string) string {
	return t.each(cols, func(b *strings.Builder, c column[T]) {
		if alias != "" {
			b.WriteString(alias)
			b.WriteByte('.')
		}
		b.WriteString(c.name)
	})
}

// joinedList is list for a table on the outer side of a LEFT JOIN: each
// column reads its zero value where the join found no row, so that the
// row scans into the same destinations, with a zero key.
func (t *table[T]) joinedList(cols Columns, alias string) string {
	return t.each(cols, func(b *strings.Builder, c column[T]) {
		b.WriteString("coalesce(" + alias + "." + c.name + ", " + c.zero + ")")
	})
}

// each writes, comma-separated, what item writes for each column in cols.
// The statements are built on every request: item writes into b rather
// than returning a string to copy.
func (t *table[T]) each(cols Columns, item func(b *strings.Builder, c column[T])) string {
	var b strings.Builder
	for _, c := range t.columns {
		if c.opt != 0 && cols&c.opt == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		item(&b, c)
	}
	return b.String()
}

// dests appends to buf the scan destinations of the columns in cols, in
// list order, pointing into row and n.
func (t *table[T]) dests(cols Columns, row *T, n *nulls, buf []any) []any {
	for _, c := range t.columns {
		if c.opt == 0 || cols&c.opt != 0 {
			buf = append(buf, c.dest(row, n))
		}
	}
	return buf
}

// scanner reads rows of T whose first columns may be extra values (a key
// index) followed by a table's columns.
type scanner[T any] struct {
	t    *table[T]
	cols Columns
	// extra, when set, is the destination of a column before the table's.
	extra func(row *T) any
	// after, when set, appends the destinations of columns after the
	// table's.
	after func(row *T, buf []any) []any
}

// collect reads every row into a new T, positionally and without
// reflection; one destination slice serves every row.
func (s scanner[T]) collect(rows pgx.Rows) ([]T, error) {
	defer rows.Close()
	var (
		out  []T
		n    nulls
		buf  = make([]any, 0, len(s.t.columns)+1)
		zero T
	)
	for rows.Next() {
		out = append(out, zero)
		row := &out[len(out)-1]
		buf = buf[:0]
		if s.extra != nil {
			buf = append(buf, s.extra(row))
		}
		n = nulls{}
		buf = s.t.dests(s.cols, row, &n, buf)
		if s.after != nil {
			buf = s.after(row, buf)
		}
		if err := rows.Scan(buf...); err != nil {
			return nil, err
		}
		if s.t.set != nil {
			s.t.set(row, &n)
		}
	}
	return out, rows.Err()
}

// one reads the first row; ErrNotFound when there is none.
func (s scanner[T]) one(rows pgx.Rows) (T, error) { return first(s.collect(rows)) }

// first is the first of rows; ErrNotFound when there is none.
func first[T any](rows []T, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if len(rows) == 0 {
		return zero, ErrNotFound
	}
	return rows[0], nil
}

// statement builds a statement's text and arguments together, so that a
// listing names only the predicates it uses. "$1 IS NULL OR ..." for an
// optional filter would keep PostgreSQL from caching one generic plan (it
// plans such a statement anew at every execution, a millisecond of CPU
// for a page of generations) and from using an index for the predicate.
type statement struct {
	args []any
}

// arg adds an argument and returns its placeholder.
func (q *statement) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// conditions is a WHERE clause of predicates joined by AND.
type conditions struct{ b strings.Builder }

func (c *conditions) and(predicate string) {
	if c.b.Len() == 0 {
		c.b.WriteString(" WHERE ")
	} else {
		c.b.WriteString(" AND ")
	}
	c.b.WriteString(predicate)
}

// String is the clause, with a leading space; empty without predicates.
func (c *conditions) String() string { return c.b.String() }

// uuidsArg passes ids as the [16]byte values pgx encodes directly: as
// uuid.UUID they would go through its driver.Valuer, as text, one string
// allocation each.
func uuidsArg(ids []uuid.UUID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// Reads are reads queued to run together, in one transaction and one
// round trip: the nested fields of a page (stories, logs, emails) cost one
// round trip however many of them the operation asks for.
type Reads struct{ b *pgx.Batch }

// Read runs the reads queue adds under s in one transaction and one round
// trip. The reads' results are in place when it returns nil.
func (d *DB) Read(ctx context.Context, s Session, queue func(r *Reads)) error {
	return classify(d.send(ctx, s, "", func(b *pgx.Batch) { queue(&Reads{b: b}) }))
}

// ReadSnapshot is Read for reads that must agree with one another: they
// share one snapshot of the database (a read-only REPEATABLE READ
// transaction), where Read's statements each see the commits made before
// it started. A page and the reads nested under it by position (see
// GenerationPage) need it.
func (d *DB) ReadSnapshot(ctx context.Context, s Session, queue func(r *Reads)) error {
	return classify(d.send(ctx, s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", func(b *pgx.Batch) { queue(&Reads{b: b}) }))
}

// queueRead queues a statement whose rows sc reads into out.
func queueRead[T any](r *Reads, sc scanner[T], out *[]T, sql string, args ...any) {
	r.b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		var err error
		*out, err = sc.collect(rows)
		return err
	})
}

// query runs one statement under s in a single round trip and reads its
// rows with sc.
func query[T any](ctx context.Context, d *DB, s Session, sc scanner[T], sql string, args ...any) ([]T, error) {
	var out []T
	err := d.Read(ctx, s, func(r *Reads) { queueRead(r, sc, &out, sql, args...) })
	return out, err
}

// queryOne is query for statements that yield at most one row;
// ErrNotFound when there is none.
func queryOne[T any](ctx context.Context, d *DB, s Session, sc scanner[T], sql string, args ...any) (T, error) {
	return first(query(ctx, d, s, sc, sql, args...))
}

// txOne is queryOne inside a transaction.
func txOne[T any](ctx context.Context, q Querier, sc scanner[T], sql string, args ...any) (T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		var zero T
		return zero, classify(err)
	}
	v, err := sc.one(rows)
	return v, classify(err)
}

var stories = &table[Story]{columns: []column[Story]{
	{name: "id", zero: "'00000000-0000-0000-0000-000000000000'", dest: func(r *Story, _ *nulls) any { return (*[16]byte)(&r.ID) }},
	{name: "title", zero: "''", dest: func(r *Story, _ *nulls) any { return &r.Title }},
	{name: "slug", opt: StorySlug, zero: "''", dest: func(r *Story, _ *nulls) any { return &r.Slug }},
	{name: "content", opt: StoryContent, zero: "''", dest: func(r *Story, _ *nulls) any { return &r.Content }},
	{name: "version", opt: StoryVersion, zero: "0", dest: func(r *Story, _ *nulls) any { return &r.Version }},
	{name: "created_at", opt: StoryCreatedAt, zero: "'epoch'", dest: func(r *Story, _ *nulls) any { return &r.CreatedAt }},
	{name: "updated_at", opt: StoryUpdatedAt, zero: "'epoch'", dest: func(r *Story, _ *nulls) any { return &r.UpdatedAt }},
}}

// Generations always carry status and updated_at: the realtime stream
// orders what it sends by them, and resultUrl depends on the status.
var generations = &table[Generation]{
	columns: []column[Generation]{
		{name: "id", dest: func(r *Generation, _ *nulls) any { return (*[16]byte)(&r.ID) }},
		{name: "user_id", dest: func(r *Generation, _ *nulls) any { return (*[16]byte)(&r.UserID) }},
		{name: "story_id", dest: func(r *Generation, _ *nulls) any { return (*[16]byte)(&r.StoryID) }},
		{name: "status", dest: func(r *Generation, _ *nulls) any { return (*string)(&r.Status) }},
		{name: "progress", opt: GenerationProgress, dest: func(r *Generation, _ *nulls) any { return &r.Progress }},
		{name: "result_url", opt: GenerationResult, dest: func(_ *Generation, n *nulls) any { return &n.text[0] }},
		{name: "metadata", opt: GenerationMetadata, dest: func(r *Generation, _ *nulls) any { return (*[]byte)(&r.Metadata) }},
		{name: "created_at", dest: func(r *Generation, _ *nulls) any { return &r.CreatedAt }},
		{name: "updated_at", dest: func(r *Generation, _ *nulls) any { return &r.UpdatedAt }},
	},
	set: func(r *Generation, n *nulls) { r.ResultKey = n.string(0) },
}

var logs = &table[Log]{columns: []column[Log]{
	{name: "id", dest: func(r *Log, _ *nulls) any { return (*[16]byte)(&r.ID) }},
	{name: "generation_id", dest: func(r *Log, _ *nulls) any { return (*[16]byte)(&r.GenerationID) }},
	{name: "event", opt: LogEvent, dest: func(r *Log, _ *nulls) any { return &r.Event }},
	{name: "occurred_at", dest: func(r *Log, _ *nulls) any { return &r.OccurredAt }},
}}

var profiles = &table[Profile]{
	columns: []column[Profile]{
		{name: "user_id", dest: func(r *Profile, _ *nulls) any { return (*[16]byte)(&r.UserID) }},
		{name: "display_name", opt: ProfileDisplayName, dest: func(_ *Profile, n *nulls) any { return &n.text[0] }},
		{name: "avatar_url", opt: ProfileAvatarURL, dest: func(_ *Profile, n *nulls) any { return &n.text[1] }},
		{name: "created_at", opt: ProfileCreatedAt, dest: func(r *Profile, _ *nulls) any { return &r.CreatedAt }},
		{name: "updated_at", opt: ProfileUpdatedAt, dest: func(r *Profile, _ *nulls) any { return &r.UpdatedAt }},
	},
	set: func(r *Profile, n *nulls) { r.DisplayName, r.AvatarURL = n.string(0), n.string(1) },
}

var voiceSamples = &table[VoiceSample]{columns: []column[VoiceSample]{
	{name: "id", dest: func(r *VoiceSample, _ *nulls) any { return (*[16]byte)(&r.ID) }},
	{name: "user_id", dest: func(r *VoiceSample, _ *nulls) any { return (*[16]byte)(&r.UserID) }},
	{name: "elevenlabs_voice_id", dest: func(r *VoiceSample, _ *nulls) any { return &r.ElevenlabsVoiceID }},
	{name: "verification_phrase", dest: func(r *VoiceSample, _ *nulls) any { return &r.VerificationPhrase }},
	{name: "verified", dest: func(r *VoiceSample, _ *nulls) any { return &r.Verified }},
	{name: "provider_verification_required", dest: func(r *VoiceSample, _ *nulls) any { return &r.ProviderVerificationRequired }},
	{name: "created_at", dest: func(r *VoiceSample, _ *nulls) any { return &r.CreatedAt }},
}}

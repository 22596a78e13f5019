package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// localAuthMarker is the comment the migrations put on an auth.users table
// they created themselves (rather than Supabase's).
const localAuthMarker = "narrate local auth shim"

// ErrNotLocalAuth: users are managed by Supabase Auth, not by this server.
var ErrNotLocalAuth = errors.New("auth.users is managed by Supabase Auth")

// EnsureUser returns the id of the auth user with this email, creating the
// user when the database has the local auth shim. On a Supabase database it
// only looks the user up, through public.auth_user_id (the service role
// may not read auth.users there): only Supabase Auth creates users, so an
// unknown email is ErrNotLocalAuth, saying to sign up first.
func (d *DB) EnsureUser(ctx context.Context, email string) (uuid.UUID, error) {
	var id uuid.UUID
	err := d.Tx(ctx, Service(), func(q Querier) error {
		var marker *string
		if err := q.QueryRow(ctx, `SELECT obj_description('auth.users'::regclass, 'pg_class')`).Scan(&marker); err != nil {
			return fmt.Errorf("inspect auth.users: %w", err)
		}
		if marker == nil || *marker != localAuthMarker {
			// Supabase Auth keeps emails in lower case.
			var found *uuid.UUID
			if err := q.QueryRow(ctx, `SELECT public.auth_user_id($1)`, strings.ToLower(email)).Scan(&found); err != nil {
				return fmt.Errorf("look the user up: %w", err)
			}
			if found == nil {
				return fmt.Errorf("%w: %s has no account yet; sign up through Supabase Auth first "+
					"(the app's sign-up, or Authentication > Users > Add user in the Supabase dashboard), then ask again",
					ErrNotLocalAuth, email)
			}
			id = *found
			return nil
		}
		return q.QueryRow(ctx, `
			INSERT INTO auth.users (email) VALUES ($1)
			ON CONFLICT (email) DO UPDATE SET email = excluded.email
			RETURNING id`, email).Scan(&id)
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("ensure user %s: %w", email, err)
	}
	return id, nil
}

// NewStory is a story to seed.
type NewStory struct {
	Title, Slug, Content string
}

// SeedStories loads stories into an empty catalogue and reports how many it
// added; a catalogue that already has stories is left alone, so the demo
// stories are loaded once and an admin's deletions stay deleted.
func (d *DB) SeedStories(ctx context.Context, stories []NewStory) (int64, error) {
	titles := make([]string, len(stories))
	slugs := make([]string, len(stories))
	contents := make([]string, len(stories))
	for i, s := range stories {
		titles[i], slugs[i], contents[i] = s.Title, s.Slug, s.Content
	}
	var added int64
	err := d.Batch(ctx, Service(), func(b *pgx.Batch) {
		// The lock makes two servers starting at once agree on "empty".
		b.Queue(`LOCK TABLE stories IN SHARE ROW EXCLUSIVE MODE`)
		b.Queue(`
			INSERT INTO stories (title, slug, content)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			WHERE NOT EXISTS (SELECT 1 FROM stories)`, titles, slugs, contents).Exec(func(ct pgconn.CommandTag) error {
			added = ct.RowsAffected()
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("seed stories: %w", err)
	}
	return added, nil
}

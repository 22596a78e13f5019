package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/localdb"
)

// errNoDatabase is returned when neither -db nor a usable -data-dir tells
// the tool where the server's database is.
var errNoDatabase = errors.New("no database: pass -db, or -data-dir of a server running its own PostgreSQL")

// pidFile is what the postmaster.pid of the local cluster a server runs
// under DATA_DIR says about the cluster.
type pidFile struct {
	// pid is the postmaster's process id (line 1), zero when unreadable:
	// only the CPU figures need it.
	pid int
	// port is the cluster's TCP port (line 4).
	port int
}

// readPIDFile finds the local cluster a server runs for dataDir: under
// DATA_DIR/postgres, or where the server keeps it when the postgres user
// cannot reach DATA_DIR. Errors wrap errNoDatabase.
func readPIDFile(dataDir string) (pidFile, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return pidFile{}, fmt.Errorf("%w: %w", errNoDatabase, err)
	}
	for _, dir := range (app.Layout{DataDir: abs}).ClusterDirs() {
		if pid, port, ok := localdb.Running(dir); ok {
			return pidFile{pid: pid, port: port}, nil
		}
	}
	return pidFile{}, fmt.Errorf("%w: no running PostgreSQL for %s", errNoDatabase, abs)
}

// adminURL is the superuser URL of the local cluster.
func (pf pidFile) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pf.port, app.LocalDatabase)
}

// secretFromDataDir reads the development JWT secret a server keeps in
// dataDir. The server uses the file's content, trimmed, as the key bytes.
func secretFromDataDir(dataDir string) ([]byte, error) {
	raw, err := os.ReadFile(app.Layout{DataDir: dataDir}.JWTSecretFile())
	if err != nil {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(raw)))
	if len(secret) == 0 {
		return nil, errors.New("read JWT secret: empty file")
	}
	return secret, nil
}

// fixtures are the rows one run creates: users, one story, and one
// IN_PROGRESS generation per subscriber. Every row carries the run's tag, so
// cleanup removes exactly them.
type fixtures struct {
	tag     string
	storyID uuid.UUID
	users   []uuid.UUID
	// generations[i] belongs to users[owner[i]] and is watched by
	// subscriber i.
	generations []uuid.UUID
	owner       []int
	tokens      []string
}

// createFixtures inserts the run's users, story and generations as the
// superuser, and mints a token per user valid for ttl. The generations are
// dealt out to the users perSocket at a time, so the subscriptions that
// share a socket all belong to its user.
func createFixtures(ctx context.Context, pool *pgxpool.Pool, secret []byte, audience string, users, generations, perSocket int, ttl time.Duration) (*fixtures, error) {
	f := &fixtures{tag: "loadtest-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	var emails []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			INSERT INTO auth.users (email)
			SELECT $1 || '-' || i || '@loadtest.invalid' FROM generate_series(1, $2::int) AS i
			RETURNING id, email`, f.tag, users)
		if err != nil {
			return fmt.Errorf("create users: %w", err)
		}
		created, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			ID    uuid.UUID
			Email string
		}])
		if err != nil {
			return fmt.Errorf("create users: %w", err)
		}
		for _, u := range created {
			f.users = append(f.users, u.ID)
			emails = append(emails, u.Email)
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO stories (title, slug, content)
			VALUES ('Load test story', $1, 'Once upon a time, many listeners waited.')
			RETURNING id`, f.tag).Scan(&f.storyID)
		if err != nil {
			return fmt.Errorf("create story: %w", err)
		}
		owners := make([]uuid.UUID, generations)
		for i := range owners {
			owners[i] = f.users[(i/perSocket)%len(f.users)]
		}
		rows, err = tx.Query(ctx, `
			INSERT INTO story_generations (user_id, story_id, status, progress)
			SELECT u, $2, 'in_progress', 0 FROM unnest($1::uuid[]) AS u
			RETURNING id, user_id`, owners, f.storyID)
		if err != nil {
			return fmt.Errorf("create generations: %w", err)
		}
		gens, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			ID, UserID uuid.UUID
		}])
		if err != nil {
			return fmt.Errorf("create generations: %w", err)
		}
		if len(gens) != generations {
			return fmt.Errorf("create generations: got %d rows, want %d", len(gens), generations)
		}
		userIndex := make(map[uuid.UUID]int, len(f.users))
		for i, id := range f.users {
			userIndex[id] = i
		}
		for _, g := range gens {
			f.generations = append(f.generations, g.ID)
			f.owner = append(f.owner, userIndex[g.UserID])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	f.tokens = make([]string, len(f.users))
	for i, id := range f.users {
		if f.tokens[i], err = auth.Mint(secret, id, emails[i], false, audience, ttl); err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
	}
	return f, nil
}

// remove deletes the run's rows; the generations go with their users.
func (f *fixtures) remove(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `DELETE FROM auth.users WHERE email LIKE $1 || '-%'`, f.tag); err != nil {
		return fmt.Errorf("remove users: %w", err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM stories WHERE id = $1`, f.storyID); err != nil {
		return fmt.Errorf("remove story: %w", err)
	}
	return nil
}

package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PersistedOperation returns the query registered under hash (the hex
// SHA-256 of its text) and whether it is a trusted document. ok is false
// when there is none.
func (d *DB) PersistedOperation(ctx context.Context, hash string) (query string, trusted, ok bool, err error) {
	err = d.Tx(ctx, Service(), func(q Querier) error {
		// Marking the use at most hourly keeps reads from writing on every
		// request while pruning still knows what is in use.
		return q.QueryRow(ctx, `
			WITH hit AS (SELECT hash, query, trusted, used_at FROM persisted_operations WHERE hash = $1),
			touch AS (
				UPDATE persisted_operations p SET used_at = now() FROM hit
				WHERE p.hash = hit.hash AND hit.used_at < now() - interval '1 hour'
			)
			SELECT query, trusted FROM hit`, hash).Scan(&query, &trusted)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, false, nil
	}
	if err != nil {
		return "", false, false, fmt.Errorf("read persisted operation: %w", err)
	}
	return query, trusted, true, nil
}

// PersistOperation registers an automatic persisted query and prunes the
// least recently used automatic ones beyond limit, so that clients cannot
// grow the table without bound. Trusted documents are neither replaced nor
// pruned.
func (d *DB) PersistOperation(ctx context.Context, hash, query string, limit int) error {
	err := d.Tx(ctx, Service(), func(q Querier) error {
		tag, err := q.Exec(ctx, `
			INSERT INTO persisted_operations (hash, query) VALUES ($1, $2)
			ON CONFLICT (hash) DO UPDATE SET used_at = now()
			WHERE persisted_operations.used_at < now() - interval '1 hour'`, hash, query)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = q.Exec(ctx, `
			DELETE FROM persisted_operations WHERE hash IN (
				SELECT hash FROM persisted_operations WHERE NOT trusted
				ORDER BY used_at DESC, hash OFFSET $1)`, limit)
		return err
	})
	if err != nil {
		return fmt.Errorf("persist operation: %w", err)
	}
	return nil
}

// TrustOperations registers trusted documents, by hash, in one
// transaction; an automatic entry with the same hash becomes trusted.
func (d *DB) TrustOperations(ctx context.Context, docs map[string]string) error {
	hashes := make([]string, 0, len(docs))
	queries := make([]string, 0, len(docs))
	for h, q := range docs {
		hashes, queries = append(hashes, h), append(queries, q)
	}
	err := d.Tx(ctx, Service(), func(q Querier) error {
		_, err := q.Exec(ctx, `
			INSERT INTO persisted_operations (hash, query, trusted)
			SELECT * , true FROM unnest($1::text[], $2::text[])
			ON CONFLICT (hash) DO UPDATE SET trusted = true, query = excluded.query`, hashes, queries)
		return err
	})
	if err != nil {
		return fmt.Errorf("register trusted documents: %w", err)
	}
	return nil
}

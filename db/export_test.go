package db

import "github.com/jackc/pgx/v5"

// QueueForTest queues any statement in a Read, for tests of Read itself.
func (r *Reads) QueueForTest(sql string, args ...any) *pgx.QueuedQuery {
	return r.b.Queue(sql, args...)
}

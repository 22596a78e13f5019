package db_test

import (
	"context"
	"testing"
	"time"
)

// TestUpdatedAtTrigger checks that every update moves updated_at forward on
// the tables that have it, even two updates of one row inside a single
// transaction: the trigger uses clock_timestamp(), not the transaction's
// start time, because subscribers order a generation's changes by it.
func TestUpdatedAtTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newTestDB(t)
	mustExec(t, d.Admin, `INSERT INTO auth.users (id, email) VALUES ('00000000-0000-0000-0000-0000000000a1', 'a@example.com')`)
	mustExec(t, d.Admin, `INSERT INTO profiles (user_id, display_name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'A')`)
	mustExec(t, d.Admin, `INSERT INTO stories (id, title, slug, content) VALUES ('00000000-0000-0000-0000-0000000000b1', 'T', 't', 'x')`)
	mustExec(t, d.Admin, `INSERT INTO story_generations (id, user_id, story_id) VALUES
		('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1')`)

	for _, tc := range []struct{ table, set, key string }{
		{"profiles", "display_name = display_name || '!'", "user_id = '00000000-0000-0000-0000-0000000000a1'"},
		{"stories", "title = title || '!'", "id = '00000000-0000-0000-0000-0000000000b1'"},
		{"story_generations", "progress = progress + 1", "id = '00000000-0000-0000-0000-0000000000c1'"},
	} {
		tx, err := d.Admin.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var before, first, second time.Time
		read := func(dst *time.Time) {
			if err := tx.QueryRow(ctx, `SELECT updated_at FROM `+tc.table+` WHERE `+tc.key).Scan(dst); err != nil {
				t.Fatalf("%s: %v", tc.table, err)
			}
		}
		update := func() {
			if _, err := tx.Exec(ctx, `UPDATE `+tc.table+` SET `+tc.set+` WHERE `+tc.key); err != nil {
				t.Fatalf("%s: %v", tc.table, err)
			}
		}
		read(&before)
		update()
		read(&first)
		update()
		read(&second)
		_ = tx.Rollback(ctx)
		if !first.After(before) || !second.After(first) {
			t.Errorf("%s: updated_at %v, then %v, then %v; want it to rise with every update", tc.table, before, first, second)
		}
	}
}

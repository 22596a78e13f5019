package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/db"
)

// voiceRow is what the database holds about a user's voice samples.
type voiceRow struct {
	Count    int
	VoiceID  string
	Verified bool
}

func voiceRowOf(t *testing.T, tdb *testDB, user uuid.UUID) voiceRow {
	t.Helper()
	var r voiceRow
	err := tdb.Admin.QueryRow(context.Background(), `
		SELECT count(*), coalesce(max(elevenlabs_voice_id), ''), coalesce(bool_or(verified), false)
		FROM voice_samples WHERE user_id = $1`, user).Scan(&r.Count, &r.VoiceID, &r.Verified)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testReplaceVoiceSample(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()

	tests := []struct {
		name         string
		user         uuid.UUID
		wantPrevious string
	}{
		{name: "first sample", user: f.F},
		{name: "replaces a verified sample", user: f.A, wantPrevious: "voice-a"},
		{name: "replaces an unverified sample", user: f.B, wantPrevious: "voice-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sample, previous, err := d.ReplaceVoiceSample(ctx, tt.user, "new-voice", false, "apple river candle")
			if err != nil {
				t.Fatal(err)
			}
			if sample.UserID != tt.user || sample.ElevenlabsVoiceID != "new-voice" || sample.VerificationPhrase != "apple river candle" || sample.Verified {
				t.Errorf("new sample = %+v", sample)
			}
			switch {
			case tt.wantPrevious == "" && previous != nil:
				t.Errorf("previous = %+v, want none", previous)
			case tt.wantPrevious != "" && (previous == nil || previous.ElevenlabsVoiceID != tt.wantPrevious):
				t.Errorf("previous = %+v, want voice %q", previous, tt.wantPrevious)
			}
			if got, want := voiceRowOf(t, tdb, tt.user), (voiceRow{Count: 1, VoiceID: "new-voice"}); got != want {
				t.Errorf("database holds %+v, want %+v", got, want)
			}
		})
	}
	if got, want := voiceRowOf(t, tdb, f.M), (voiceRow{}); got != want {
		t.Errorf("an uninvolved user has %+v", got)
	}
}

func testVerifyAndDeleteVoiceSampleByID(t *testing.T, tdb *testDB) {
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()
	sessionB, sessionF := sessionOf(f.B), sessionOf(f.F)

	old, err := d.VoiceSample(ctx, sessionB)
	if err != nil {
		t.Fatal(err)
	}
	current, _, err := d.ReplaceVoiceSample(ctx, f.B, "voice-b2", false, "copper garden river")
	if err != nil {
		t.Fatal(err)
	}

	// A recording checked against the replaced sample's phrase must not
	// verify the sample that replaced it.
	if _, err := d.VerifyVoiceSample(ctx, f.B, old.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("verify replaced sample: err = %v, want ErrNotFound", err)
	}
	// Another user cannot verify or delete B's sample even knowing its id.
	if _, err := d.VerifyVoiceSample(ctx, f.F, current.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("verify as another user: err = %v, want ErrNotFound", err)
	}
	if _, err := d.DeleteVoiceSample(ctx, sessionF, current.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("delete as another user: err = %v, want ErrNotFound", err)
	}
	if _, err := d.VoiceSample(ctx, sessionF); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("load as a user without a sample: err = %v, want ErrNotFound", err)
	}
	if got, want := voiceRowOf(t, tdb, f.B), (voiceRow{Count: 1, VoiceID: "voice-b2"}); got != want {
		t.Fatalf("database holds %+v, want %+v", got, want)
	}

	verified, err := d.VerifyVoiceSample(ctx, f.B, current.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !verified.Verified || verified.ID != current.ID {
		t.Errorf("verified = %+v", verified)
	}
	if _, err := d.DeleteVoiceSample(ctx, sessionB, old.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("delete replaced sample: err = %v, want ErrNotFound", err)
	}
	deleted, err := d.DeleteVoiceSample(ctx, sessionB, current.ID)
	if err != nil {
		t.Fatal(err)
	}
	if deleted.ElevenlabsVoiceID != "voice-b2" {
		t.Errorf("deleted = %+v", deleted)
	}
	if got := voiceRowOf(t, tdb, f.B); got.Count != 0 {
		t.Errorf("database still holds %+v", got)
	}
}

// TestConcurrentReplaceVoiceSampleConflicts has a database of its own:
// waitForLockWait would take another test's lock wait for its own.
func TestConcurrentReplaceVoiceSampleConflicts(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	f, d := tdb.fixtureAndDB(t, 0)
	ctx := context.Background()

	// The first replacement holds its transaction open over the old row.
	tx, err := tdb.App.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// After Commit, Rollback does nothing.
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, setSessionSQL, "service_role", `{"role":"service_role"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM voice_samples WHERE user_id = $1`, f.A); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase) VALUES ($1, 'first', 'one two')`, f.A); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, _, err := d.ReplaceVoiceSample(ctx, f.A, "second", false, "three four")
		done <- err
	}()
	waitForLockWait(t, tdb)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, db.ErrConflict) {
		t.Fatalf("racing replacement: err = %v, want ErrConflict", err)
	}
	if got, want := voiceRowOf(t, tdb, f.A), (voiceRow{Count: 1, VoiceID: "first"}); got != want {
		t.Errorf("database holds %+v, want the first replacement %+v", got, want)
	}
}

// waitForLockWait waits until a session of the test's database waits for
// a lock.
func waitForLockWait(t *testing.T, tdb *testDB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var waiting bool
		err := tdb.Admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
		if err != nil {
			t.Fatalf("waiting for a blocked session: %v", err)
		}
		if waiting {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("no session started waiting for the lock")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

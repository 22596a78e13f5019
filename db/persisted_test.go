package db_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/google/uuid"

	"github.com/narrate/narrate/db/dbtest"
)

// TestPersistedOperationsOnlyForTheServer: the API roles (and so, on
// Supabase, anyone with the public anon key) can neither read nor plant
// persisted operations; the server's privileged role can.
func TestPersistedOperationsOnlyForTheServer(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	ctx := context.Background()
	d := openDB(t, tdb.AppURL, 2)
	const q = `{ stories { nodes { id } } }`
	sum := sha256.Sum256([]byte(q))
	hash := hex.EncodeToString(sum[:])
	if err := d.PersistOperation(ctx, hash, q, 10); err != nil {
		t.Fatal(err)
	}
	got, trusted, ok, err := d.PersistedOperation(ctx, hash)
	if err != nil || !ok || got != q || trusted {
		t.Fatalf("PersistedOperation = %q, trusted %v, ok %v, err %v", got, trusted, ok, err)
	}
	if err := d.TrustOperations(ctx, map[string]string{hash: q}); err != nil {
		t.Fatal(err)
	}
	if _, trusted, _, _ := d.PersistedOperation(ctx, hash); !trusted {
		t.Error("TrustOperations did not mark the operation trusted")
	}

	for name, who := range map[string]identity{"anon": anonIdentity, "authenticated": userIdentity(uuid.New(), true)} {
		for _, sql := range []string{
			`SELECT count(*) FROM persisted_operations`,
			`INSERT INTO persisted_operations (hash, query) VALUES (repeat('a', 64), '{ __typename }')`,
			`UPDATE persisted_operations SET query = '{ __typename }'`,
		} {
			if _, err := execAs(ctx, tdb.App, who, sql); dbtest.SQLState(err) != codeDenied {
				t.Errorf("%s: %s: err %v, want permission denied", name, sql, err)
			}
		}
	}
}

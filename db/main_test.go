package db_test

import (
	"testing"

	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }

// TestShared runs, on one database, the tests whose rows cannot meet:
// each makes a fixture of its own (fresh users, stories under a slug prefix
// of its own) and looks only at those. Copying the template for every test
// would cost about 300 ms each, one copy at a time. Tests that need an
// empty catalogue or change the schema get a database of their own.
func TestShared(t *testing.T) {
	t.Parallel()
	tdb := newTestDB(t)
	tests := []struct {
		name string
		fn   func(*testing.T, *testDB)
	}{
		{"Policies", testPolicies},
		{"UserEmails", testUserEmails},
		{"NoPolicyGrantsEveryRole", testNoPolicyGrantsEveryRole},
		{"UserPoliciesAreOwnerOnly", testUserPoliciesAreOwnerOnly},
		{"RowLevelSecurityEnabled", testRowLevelSecurityEnabled},
		{"ShimReadsTransactionLocalClaims", testShimReadsTransactionLocalClaims},
		{"PooledConnectionForgetsIdentity", testPooledConnectionForgetsIdentity},
		{"ZeroSessionFailsClosed", testZeroSessionFailsClosed},
		{"TxRollsBackOnError", testTxRollsBackOnError},
		{"BatchFailingStatementRollsBack", testBatchFailingStatementRollsBack},
		{"BatchCallbackErrorDoesNotRollBack", testBatchCallbackErrorDoesNotRollBack},
		{"ReadImplicitTransaction", testReadImplicitTransaction},
		{"MigrationsTwiceIsNoop", testMigrationsTwiceIsNoop},
		{"MigrationsOnSupabase", testMigrationsOnSupabase},
		{"EnsureUserOnLocalAuth", testEnsureUserOnLocalAuth},
		{"GenerationsByOwnerBatches", testGenerationsByOwnerBatches},
		{"LogsByGenerationBatches", testLogsByGenerationBatches},
		{"GenerationPageNested", testGenerationPageNested},
		{"StoryWrites", testStoryWrites},
		{"GenerationWrites", testGenerationWrites},
		{"UpsertProfile", testUpsertProfile},
		{"ReplaceVoiceSample", testReplaceVoiceSample},
		{"VerifyAndDeleteVoiceSampleByID", testVerifyAndDeleteVoiceSampleByID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, tdb)
		})
	}
}

package api_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/localdb"
	"github.com/narrate/narrate/migrations"
)

// TestTerminalEventSurvivesDatabaseRestart restarts PostgreSQL under a
// subscribed client and completes the generation before the listener is
// back: the client still gets COMPLETED. It runs its own cluster, since the
// shared one serves every other test.
func TestTerminalEventSurvivesDatabaseRestart(t *testing.T) {
	t.Parallel()
	if os.Getenv("TEST_DATABASE_URL") != "" || os.Getenv("DATABASE_URL") != "" {
		t.Skip("needs a PostgreSQL cluster of its own to restart")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "restart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	opts := localdb.Options{Dir: dir, Ephemeral: true, Temporary: true}
	cluster, err := localdb.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	appURL, err := localdb.Provision(ctx, cluster.AdminURL("postgres"), "narrate", migrations.Up)
	if err != nil {
		t.Fatal(err)
	}
	// A slow reconnect, so the change is made while the listener is down.
	srv := apptest.Start(t, &dbtest.DB{AppURL: appURL, AdminURL: cluster.AdminURL("narrate")},
		apptest.WithApp(app.WithListenBackoff(time.Second)))
	e := &env{t: t, Server: srv}
	alice, gen := e.aliceWithGeneration(generation.InProgress)
	c, _ := followGeneration(t, srv.URL, protoTransportWS, alice.Token, gen)

	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	opts.Port = cluster.Port()
	if cluster, err = localdb.Start(ctx, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	srv.Admin.Reset() // its connections died with the server
	if srv.App.Listener.Connected() {
		t.Log("listener reconnected before the change; the test proves less")
	}
	e.setProgress(gen, generation.Completed, 100)

	if last := lastProgress(t, progressUntilComplete(t, c, "1", 20*time.Second)); last.Status != "COMPLETED" {
		t.Fatalf("last event %+v, want COMPLETED", last)
	}
}

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/localdb"
	"github.com/narrate/narrate/migrations"
)

// LocalDatabase is the name of the database in the local cluster.
const LocalDatabase = "narrate"

// Database is where the server's data lives: DATABASE_URL, or a local
// PostgreSQL cluster under DATA_DIR that this process runs.
type Database struct {
	// URL is the application's login.
	URL string
	// cluster is the local cluster this process started, nil otherwise.
	cluster *localdb.Cluster
	logger  *slog.Logger
}

// Local reports whether the server runs its own development cluster.
func (d *Database) Local() bool { return d.cluster != nil }

// Close stops the local cluster, if this process started one.
func (d *Database) Close() {
	if d.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := d.cluster.Stop(ctx); err != nil {
		d.logger.Error("stop local postgres", "err", err)
	}
}

// OpenDatabase finds the database and, when migrate is set, brings its
// schema up to date. With no DATABASE_URL it starts (initialising on first
// use) the local cluster in DATA_DIR/postgres; there, migrations run as the
// cluster's superuser and the server logs in as the non-superuser
// "authenticator", as it would on Supabase.
func OpenDatabase(ctx context.Context, cfg config.Config, logger *slog.Logger, migrate bool) (*Database, error) {
	run := func(ctx context.Context, url string) error {
		if !migrate {
			return nil
		}
		return migrations.UpLogged(ctx, url, logger)
	}
	if cfg.DatabaseURL != "" {
		if err := run(ctx, cfg.DatabaseURL); err != nil {
			return nil, err
		}
		return &Database{URL: cfg.DatabaseURL, logger: logger}, nil
	}

	// DATA_DIR itself must stay traversable: when the server runs as root,
	// PostgreSQL runs as the postgres user, which needs to reach its
	// directory inside.
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create DATA_DIR: %w", err)
	}
	layout := Layout{DataDir: cfg.DataDir}
	dir := layout.ClusterDir()
	logger.Info("DATABASE_URL is not set: starting a local PostgreSQL cluster", "dir", dir)
	cluster, err := localdb.Start(ctx, localdb.Options{Dir: dir, Reuse: true, Logger: logger})
	if errors.Is(err, localdb.ErrUnreachable) {
		// Running as root with DATA_DIR somewhere the postgres user cannot
		// enter (a checkout under /root, typically): keep the cluster, and
		// only it, elsewhere.
		fallback := layout.FallbackClusterDir()
		logger.Warn("the postgres user cannot reach DATA_DIR; keeping the local cluster elsewhere", "dir", fallback, "data_dir", cfg.DataDir)
		cluster, err = localdb.Start(ctx, localdb.Options{Dir: fallback, Reuse: true, Logger: logger})
	}
	if err != nil {
		return nil, fmt.Errorf("start local postgres: %w", err)
	}
	d := &Database{cluster: cluster, logger: logger}
	d.URL, err = localdb.Provision(ctx, cluster.AdminURL("postgres"), LocalDatabase, run)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("provision local database: %w", err)
	}
	logger.Info("local PostgreSQL is up", "url", cluster.AdminURL(LocalDatabase))
	return d, nil
}

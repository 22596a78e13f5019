package main

import (
	"context"
	"log/slog"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/pacer"
)

// serve runs the server in mode until ctx is cancelled (SIGINT, SIGTERM),
// then shuts it down in order and returns nil.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, mode app.Mode) error {
	a, err := app.New(ctx, cfg, app.WithMode(mode), app.WithLogger(logger))
	if err != nil {
		return err
	}
	// The collector's pace belongs to the process, not to an App (tests
	// run many in one process), so the command sets it.
	paceCtx, stopPacing := context.WithCancel(ctx)
	paced := make(chan struct{})
	go func() { defer close(paced); pacer.Run(paceCtx, pacer.Defaults(), logger) }()
	defer func() { stopPacing(); <-paced }()
	return a.Run(ctx)
}

// migrate applies the migrations and exits.
func migrate(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	d, err := app.OpenDatabase(ctx, cfg, logger, true)
	if err != nil {
		return err
	}
	d.Close()
	logger.Info("database is up to date")
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"time"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/config"
	"github.com/narrate/narrate/db"
)

// token prints a signed development access token for a user, creating the
// user in a local auth schema. The token alone goes to stdout, so
// `TOKEN=$(server token --email ...)` works; messages go to stderr.
func token(ctx context.Context, cfg config.Config, logger *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "the user's email (required)")
	admin := fs.Bool("admin", false, "make the token an admin's (app_metadata.role = admin)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if _, err := mail.ParseAddress(*email); err != nil || *email == "" {
		return usageError{fmt.Errorf("token: --email must be an email address")}
	}
	if *ttl <= 0 {
		return usageError{fmt.Errorf("token: --ttl must be positive")}
	}
	secret, err := app.JWTSecret(cfg, logger)
	if err != nil {
		return err
	}
	if secret == nil {
		return errors.New("token: signing needs JWT_SECRET (tokens of a JWKS_URL project are issued by Supabase Auth)")
	}

	// Only the user's id is needed from the database; leave the schema as
	// it is so a token can be minted while a server runs.
	database, err := app.OpenDatabase(ctx, cfg, logger, false)
	if err != nil {
		return err
	}
	defer database.Close()
	pool, err := db.Open(ctx, database.URL, db.Options{MaxConns: 1})
	if err != nil {
		return err
	}
	defer pool.Close()
	userID, err := pool.EnsureUser(ctx, *email)
	if err != nil {
		return err
	}
	tok, err := auth.Mint(secret, userID, *email, *admin, cfg.JWTAudience, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

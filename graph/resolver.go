// Package graph is the GraphQL layer: gqlgen's generated executor, the
// resolvers, the per-response dataloaders and the mapping of errors to the
// API's codes.
package graph

import (
	"log/slog"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/limit"
	"github.com/narrate/narrate/realtime"
	"github.com/narrate/narrate/voice"
)

// Resolver is the root of all resolvers; it holds the process-wide
// dependencies. Per-request state (the viewer, the loaders) travels in the
// context.
type Resolver struct {
	DB     *db.DB
	Logger *slog.Logger
	// SignAudio turns a stored audio key into a signed, expiring URL; nil
	// while no audio storage is configured.
	SignAudio func(key string) string
	// Hub delivers generation changes to subscriptions; nil serves none.
	Hub *realtime.Hub
	// Metrics records subscription activity; nil records nothing.
	Metrics *realtime.Metrics
	// Voice clones voices and transcribes verification recordings for the
	// voice-sample mutations; they fail with an internal error while nil.
	Voice voice.Provider
	// Limits holds the rates of the paid mutations; nil limits nothing
	// (the database's quotas still hold).
	Limits *limit.Settings
}

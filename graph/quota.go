package graph

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/limit"
)

// The rate-limited actions, named as the mutations that take them.
const (
	actionStartGeneration   = "startGeneration"
	actionCreateVoiceSample = "createVoiceSample"
	actionVerifyVoiceSample = "verifyVoiceSample"
)

// rateOf is the configured rate of an action.
func (r *Resolver) rateOf(action string) limit.Rate {
	if r.Limits == nil {
		return limit.Rate{}
	}
	switch action {
	case actionStartGeneration:
		return r.Limits.StartGenerationRate
	case actionCreateVoiceSample:
		return r.Limits.CreateVoiceSampleRate
	case actionVerifyVoiceSample:
		return r.Limits.VerifyVoiceSampleRate
	}
	return limit.Rate{}
}

// takeToken takes one of the user's tokens for action, or refuses with
// RATE_LIMITED and the seconds until the next token. It runs before the
// paid work, so a refused call costs one database round trip.
func (r *Resolver) takeToken(ctx context.Context, v Viewer, action string) error {
	return fromDB(r.DB.TakeToken(ctx, v.Session, action, r.rateOf(action)), "")
}

// maxIdempotencyKey is the longest idempotency key, as the column allows.
const maxIdempotencyKey = 200

// startGeneration queues a narration, within the viewer's rate and the
// database's quotas. A known idempotency key returns its generation
// without taking a token or queueing anything.
func (r *Resolver) startGeneration(ctx context.Context, storyID uuid.UUID, key *string) (*db.Generation, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	if key != nil {
		if err := checkText("idempotencyKey", key, maxIdempotencyKey); err != nil {
			return nil, err
		}
		g, err := r.DB.GenerationByIdempotencyKey(ctx, v.Session, *key)
		if err == nil {
			return &g, nil
		}
		if !errors.Is(err, db.ErrNotFound) {
			return nil, err
		}
	}
	g, _, err := r.DB.StartGeneration(ctx, v.Session, storyID, key, r.rateOf(actionStartGeneration))
	if err != nil {
		return nil, fromDB(err, "story not found")
	}
	return &g, nil
}

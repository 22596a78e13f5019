package db

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// VoiceSample loads the session user's voice sample; ErrNotFound when the
// user has none.
func (d *DB) VoiceSample(ctx context.Context, s Session) (VoiceSample, error) {
	return queryOne(ctx, d, s, allVoices, `SELECT `+voiceColumns+` FROM voice_samples WHERE user_id = $1`, s.UserID)
}

// ReplaceVoiceSample deletes the user's voice sample, if there is one, and
// inserts a new, unverified one for the cloned voice voiceID with the
// verification phrase phrase (providerHeld: the provider holds the voice
// back until it is verified there), in one transaction and one round trip. It
// writes as the service role: users may not write voice samples themselves
// (see the migration), so the caller must have authenticated userID and
// cloned voiceID for them.
// It returns the new sample and the one it replaced (nil when there was
// none), whose voice the caller deletes at the provider after this commits.
//
// Two replacements racing for the same user serialise on the row: the
// later one's insert then violates the one-sample-per-user key and fails
// with ErrConflict, leaving the earlier one's sample in place.
func (d *DB) ReplaceVoiceSample(ctx context.Context, userID uuid.UUID, voiceID string, providerHeld bool, phrase string) (VoiceSample, *VoiceSample, error) {
	var (
		sample   VoiceSample
		previous *VoiceSample
	)
	err := d.Batch(ctx, Service(), func(b *pgx.Batch) {
		b.Queue(`DELETE FROM voice_samples WHERE user_id = $1 RETURNING `+voiceColumns, userID).
			Query(func(rows pgx.Rows) error {
				old, err := allVoices.collect(rows)
				if err != nil {
					return err
				}
				if len(old) > 0 {
					previous = &old[0]
				}
				return nil
			})
		b.Queue(`INSERT INTO voice_samples (user_id, elevenlabs_voice_id, verification_phrase, provider_verification_required)
			VALUES ($1, $2, $3, $4) RETURNING `+voiceColumns, userID, voiceID, phrase, providerHeld).
			Query(func(rows pgx.Rows) error {
				var err error
				sample, err = allVoices.one(rows)
				return err
			})
	})
	if err != nil {
		return VoiceSample{}, nil, classify(err)
	}
	return sample, previous, nil
}

// VerifyVoiceSample marks the user's voice sample id verified and returns
// it, as the service role: only the server, having matched the recording
// against the phrase, may. Naming the sample by id keeps a recording
// checked against one sample's phrase from verifying a sample that replaced
// it meanwhile: then, or when the user has no sample, it fails with
// ErrNotFound.
func (d *DB) VerifyVoiceSample(ctx context.Context, userID, id uuid.UUID) (VoiceSample, error) {
	return queryOne(ctx, d, Service(), allVoices, `
		UPDATE voice_samples SET verified = true
		WHERE id = $1 AND user_id = $2
		RETURNING `+voiceColumns, id, userID)
}

// DeleteVoiceSample deletes the session user's voice sample id and returns
// it; ErrNotFound when the user has no sample with that id (none at all, or
// one that replaced it meanwhile).
func (d *DB) DeleteVoiceSample(ctx context.Context, s Session, id uuid.UUID) (VoiceSample, error) {
	return queryOne(ctx, d, s, allVoices, `
		DELETE FROM voice_samples WHERE id = $1 AND user_id = $2
		RETURNING `+voiceColumns, id, s.UserID)
}

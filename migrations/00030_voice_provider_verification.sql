-- ElevenLabs answers POST /v1/voices/add with requires_verification: when
-- it is true the voice exists but cannot narrate until it is verified at
-- ElevenLabs. The sample records that, so that startGeneration refuses it
-- with a clear reason instead of queueing a narration whose every chunk the
-- provider would reject.

-- +goose Up
ALTER TABLE public.voice_samples
  ADD COLUMN provider_verification_required boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE public.voice_samples DROP COLUMN provider_verification_required;

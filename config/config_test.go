package config

import (
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestWorkerAndAudioSettings(t *testing.T) {
	t.Parallel()
	c, err := Parse(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.WorkerPollInterval != DefaultWorkerPollInterval || c.WorkerLease != DefaultWorkerLease ||
		c.AudioURLTTL != time.Hour || c.ElevenLabsMaxConcurrent != DefaultElevenLabsMaxConcurrent ||
		c.WorkerConcurrency != DefaultWorkerConcurrency {
		t.Fatalf("defaults = %+v", c)
	}

	c, err = Parse(env(map[string]string{
		"WORKER_POLL_INTERVAL": "500ms", "WORKER_LEASE": "1m", "AUDIO_URL_TTL": "15m",
		"ELEVENLABS_MAX_CONCURRENT": "5", "ELEVENLABS_MODEL_ID": "eleven_flash_v2_5", "AUDIO_SIGNING_SECRET": "s3cret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.WorkerPollInterval != 500*time.Millisecond || c.WorkerLease != time.Minute || c.AudioURLTTL != 15*time.Minute ||
		c.ElevenLabsMaxConcurrent != 5 || c.ElevenLabsModelID != "eleven_flash_v2_5" || c.AudioSigningSecret != "s3cret" {
		t.Fatalf("parsed = %+v", c)
	}
}

func TestInvalidWorkerSettings(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"poll not a duration":  {"WORKER_POLL_INTERVAL": "often"},
		"poll too short":       {"WORKER_POLL_INTERVAL": "1ms"},
		"lease too short":      {"WORKER_LEASE": "1s"},
		"ttl negative":         {"AUDIO_URL_TTL": "-1h"},
		"concurrency negative": {"WORKER_CONCURRENCY": "-1"},
		"provider limit zero":  {"ELEVENLABS_MAX_CONCURRENT": "0"},
	} {
		if _, err := Parse(env(vars)); err == nil {
			t.Errorf("%s: Parse(%v) succeeded", name, vars)
		}
	}
}

package config

import (
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/narrate/narrate/limit"
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

func TestSocketSettings(t *testing.T) {
	t.Parallel()
	c, err := Parse(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := SocketLimits{SubscriptionsPerSocket: DefaultSubscriptionsPerSocket, SocketsPerUser: DefaultSocketsPerUser, SocketsPerAddress: DefaultSocketsPerAddress}
	if c.Sockets != want || c.EventReaders != DefaultEventReaders {
		t.Fatalf("defaults = %+v, %d event readers", c.Sockets, c.EventReaders)
	}
	c, err = Parse(env(map[string]string{
		"WS_MAX_SUBSCRIPTIONS_PER_SOCKET": "10", "WS_MAX_SOCKETS_PER_USER": "0",
		"WS_MAX_SOCKETS_PER_ADDRESS": "20000", "REALTIME_EVENT_READERS": "4",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want = SocketLimits{SubscriptionsPerSocket: 10, SocketsPerUser: -1, SocketsPerAddress: 20000}
	if c.Sockets != want || c.EventReaders != 4 {
		t.Fatalf("parsed = %+v, %d event readers", c.Sockets, c.EventReaders)
	}
}

// TestServerSettings covers the settings outside the worker, audio and S3
// groups: defaults, derived values and normalisation.
func TestServerSettings(t *testing.T) {
	t.Parallel()
	abs := func(p string) string {
		t.Helper()
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name  string
		vars  map[string]string
		check func(c Config) bool
	}{
		{"DATA_DIR defaults to an absolute .data", nil, func(c Config) bool { return c.DataDir == abs(DefaultDataDir) }},
		{"DATA_DIR is made absolute", map[string]string{"DATA_DIR": "var/narrate"}, func(c Config) bool { return c.DataDir == abs("var/narrate") }},
		{"PORT defaults", nil, func(c Config) bool { return c.Port == DefaultPort }},
		{"PUBLIC_URL follows PORT", map[string]string{"PORT": "9000"}, func(c Config) bool {
			return c.Port == 9000 && c.PublicURL == "http://localhost:9000"
		}},
		{"PUBLIC_URL loses its trailing slash", map[string]string{"PUBLIC_URL": "https://api.example.com/"}, func(c Config) bool {
			return c.PublicURL == "https://api.example.com"
		}},
		{"ELEVENLABS_BASE_URL defaults", nil, func(c Config) bool { return c.ElevenLabsBaseURL == DefaultElevenLabsBaseURL }},
		{"ELEVENLABS_BASE_URL loses its trailing slash", map[string]string{"ELEVENLABS_BASE_URL": "http://localhost:9999/"}, func(c Config) bool {
			return c.ElevenLabsBaseURL == "http://localhost:9999"
		}},
		{"JWT_AUDIENCE defaults", nil, func(c Config) bool { return c.JWTAudience == DefaultAudience }},
		{"MIGRATE_ON_START defaults to true", nil, func(c Config) bool { return c.MigrateOnStart }},
		{"MIGRATE_ON_START false", map[string]string{"MIGRATE_ON_START": "false"}, func(c Config) bool { return !c.MigrateOnStart }},
		{"CORS_HEADERS unset echoes preflights", nil, func(c Config) bool { return c.CORSHeaders == nil }},
		{"CORS_HEADERS listed", map[string]string{"CORS_HEADERS": "Authorization, Content-Type,"}, func(c Config) bool {
			return slices.Equal(c.CORSHeaders, []string{"Authorization", "Content-Type"})
		}},
		{"CORS_ORIGINS unset allows any", nil, func(c Config) bool { return c.CORSOrigins == nil }},
		{"CORS_ORIGINS wildcard allows any", map[string]string{"CORS_ORIGINS": "*"}, func(c Config) bool { return c.CORSOrigins == nil }},
		{"CORS_ORIGINS trimmed, blanks dropped", map[string]string{"CORS_ORIGINS": " https://a.example.com/ ,, http://localhost:5173"}, func(c Config) bool {
			return slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "http://localhost:5173"})
		}},
		{"JWKS_URL kept", map[string]string{"JWKS_URL": "https://ref.supabase.co/auth/v1/.well-known/jwks.json"}, func(c Config) bool {
			return c.JWKSURL == "https://ref.supabase.co/auth/v1/.well-known/jwks.json"
		}},
		{"listener uses the database URL", nil, func(c Config) bool { return c.ListenDatabaseURL("postgres://db") == "postgres://db" }},
		{"listener uses LISTEN_DATABASE_URL", map[string]string{"LISTEN_DATABASE_URL": "postgres://direct"}, func(c Config) bool {
			return c.ListenDatabaseURL("postgres://pooler") == "postgres://direct"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(env(tt.vars))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("Parse(%v) = %+v", tt.vars, c)
			}
		})
	}
}

func TestInvalidSettings(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"poll not a duration":           {"WORKER_POLL_INTERVAL": "often"},
		"poll too short":                {"WORKER_POLL_INTERVAL": "1ms"},
		"lease too short":               {"WORKER_LEASE": "1s"},
		"ttl negative":                  {"AUDIO_URL_TTL": "-1h"},
		"concurrency negative":          {"WORKER_CONCURRENCY": "-1"},
		"provider limit zero":           {"ELEVENLABS_MAX_CONCURRENT": "0"},
		"port not a number":             {"PORT": "http"},
		"port too large":                {"PORT": "70000"},
		"migrate not a boolean":         {"MIGRATE_ON_START": "maybe"},
		"public URL without a scheme":   {"PUBLIC_URL": "api.example.com"},
		"public URL not http":           {"PUBLIC_URL": "ftp://api.example.com"},
		"JWKS URL relative":             {"JWKS_URL": "/jwks.json"},
		"socket cap negative":           {"WS_MAX_SOCKETS_PER_USER": "-1"},
		"subscription cap not a number": {"WS_MAX_SUBSCRIPTIONS_PER_SOCKET": "many"},
		"no event readers":              {"REALTIME_EVENT_READERS": "0"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := Parse(env(vars)); err == nil {
				t.Errorf("Parse(%v) succeeded", vars)
			}
		})
	}
}

func TestS3StorageSettings(t *testing.T) {
	t.Parallel()
	full := map[string]string{
		"STORAGE_S3_ENDPOINT":          "https://abcd.storage.supabase.co/storage/v1/s3/",
		"STORAGE_S3_BUCKET":            "narrations",
		"STORAGE_S3_ACCESS_KEY_ID":     "key-id",
		"STORAGE_S3_SECRET_ACCESS_KEY": "secret",
	}
	with := func(extra map[string]string) map[string]string {
		vars := maps.Clone(full)
		maps.Copy(vars, extra)
		return vars
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want S3Storage
	}{
		{"unset: local storage", nil, S3Storage{Region: DefaultS3Region, PathStyle: true}},
		{"defaults", full, S3Storage{
			Endpoint: "https://abcd.storage.supabase.co/storage/v1/s3", Bucket: "narrations", Region: "us-east-1",
			AccessKeyID: "key-id", SecretAccessKey: "secret", PathStyle: true,
		}},
		{"everything", with(map[string]string{
			"STORAGE_S3_REGION": "eu-central-1", "STORAGE_S3_PREFIX": "prod/audio", "STORAGE_S3_PATH_STYLE": "false",
		}), S3Storage{
			Endpoint: "https://abcd.storage.supabase.co/storage/v1/s3", Bucket: "narrations", Region: "eu-central-1",
			Prefix: "prod/audio", AccessKeyID: "key-id", SecretAccessKey: "secret", PathStyle: false,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(env(tc.vars))
			if err != nil {
				t.Fatal(err)
			}
			if c.StorageS3 != tc.want {
				t.Errorf("StorageS3 = %+v, want %+v", c.StorageS3, tc.want)
			}
			if c.StorageS3.Enabled() != (tc.want.Bucket != "") {
				t.Errorf("Enabled() = %v", c.StorageS3.Enabled())
			}
		})
	}
}

func TestInvalidS3StorageSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string // a substring of the error
	}{
		{"bucket without endpoint", map[string]string{
			"STORAGE_S3_BUCKET": "b", "STORAGE_S3_ACCESS_KEY_ID": "k", "STORAGE_S3_SECRET_ACCESS_KEY": "s",
		}, "STORAGE_S3_ENDPOINT: required"},
		{"endpoint not a URL", map[string]string{
			"STORAGE_S3_BUCKET": "b", "STORAGE_S3_ENDPOINT": "storage.example.com", "STORAGE_S3_ACCESS_KEY_ID": "k", "STORAGE_S3_SECRET_ACCESS_KEY": "s",
		}, "not an absolute http(s) URL"},
		{"no secret", map[string]string{
			"STORAGE_S3_BUCKET": "b", "STORAGE_S3_ENDPOINT": "http://localhost:9000", "STORAGE_S3_ACCESS_KEY_ID": "k",
		}, "STORAGE_S3_SECRET_ACCESS_KEY"},
		{"no access key", map[string]string{
			"STORAGE_S3_BUCKET": "b", "STORAGE_S3_ENDPOINT": "http://localhost:9000", "STORAGE_S3_SECRET_ACCESS_KEY": "s",
		}, "STORAGE_S3_ACCESS_KEY_ID"},
		{"endpoint without bucket", map[string]string{"STORAGE_S3_ENDPOINT": "http://localhost:9000"}, "STORAGE_S3_BUCKET is not"},
		{"keys without bucket", map[string]string{"STORAGE_S3_ACCESS_KEY_ID": "k", "STORAGE_S3_SECRET_ACCESS_KEY": "s"}, "STORAGE_S3_BUCKET is not"},
		{"path style not a boolean", map[string]string{"STORAGE_S3_PATH_STYLE": "path"}, "STORAGE_S3_PATH_STYLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(env(tc.vars))
			if err == nil {
				t.Fatalf("Parse(%v) succeeded", tc.vars)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestProductionGuard(t *testing.T) {
	t.Parallel()
	const dbURL = "postgres://narrate@db.example.com/narrate"
	tests := []struct {
		name     string
		vars     map[string]string
		provider string
		err      string
		// noTokenKey: RequireTokenKey refuses the configuration.
		noTokenKey bool
	}{
		{name: "local development needs nothing", vars: nil, provider: VoiceLocal},
		{name: "database without a token key", vars: map[string]string{"DATABASE_URL": dbURL, "ELEVENLABS_API_KEY": "k"}, provider: VoiceElevenLabs, noTokenKey: true},
		{name: "database with JWT_SECRET", vars: map[string]string{"DATABASE_URL": dbURL, "JWT_SECRET": "s", "ELEVENLABS_API_KEY": "k"}, provider: VoiceElevenLabs},
		{name: "database with JWKS_URL", vars: map[string]string{"DATABASE_URL": dbURL, "JWKS_URL": "https://ref.supabase.co/jwks", "ELEVENLABS_API_KEY": "k"}, provider: VoiceElevenLabs},
		{name: "database without a voice key gets none", vars: map[string]string{"DATABASE_URL": dbURL, "JWT_SECRET": "s"}, provider: VoiceNone},
		{name: "none asked for in development", vars: map[string]string{"VOICE_PROVIDER": "none"}, provider: VoiceNone},
		{name: "database with the local provider asked for", vars: map[string]string{"DATABASE_URL": dbURL, "JWT_SECRET": "s", "VOICE_PROVIDER": "local"}, provider: VoiceLocal},
		{name: "local provider asked for despite a key", vars: map[string]string{"ELEVENLABS_API_KEY": "k", "VOICE_PROVIDER": "local"}, provider: VoiceLocal},
		{name: "elevenlabs without a key", vars: map[string]string{"VOICE_PROVIDER": "elevenlabs"}, err: "needs ELEVENLABS_API_KEY"},
		{name: "unknown provider", vars: map[string]string{"VOICE_PROVIDER": "espeak"}, err: "none of elevenlabs, local and none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(env(tt.vars))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.VoiceProvider != tt.provider {
				t.Errorf("VoiceProvider = %q, want %q", c.VoiceProvider, tt.provider)
			}
			if err := c.RequireTokenKey(); tt.noTokenKey != errors.Is(err, ErrNoTokenKey) {
				t.Errorf("RequireTokenKey() = %v, want ErrNoTokenKey: %v", err, tt.noTokenKey)
			}
		})
	}
}

func TestLimitSettings(t *testing.T) {
	t.Parallel()
	c, err := Parse(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != limit.Defaults() {
		t.Fatalf("defaults = %+v, want %+v", c.Limits, limit.Defaults())
	}
	tests := []struct {
		name  string
		vars  map[string]string
		check func(l limit.Settings) bool
		err   bool
	}{
		{"introspection off", map[string]string{"INTROSPECTION": "false"}, func(l limit.Settings) bool { return !l.Introspection }, false},
		{"introspection not a boolean", map[string]string{"INTROSPECTION": "nope"}, nil, true},
		{"anonymous complexity", map[string]string{"QUERY_MAX_COMPLEXITY_ANONYMOUS": "100"}, func(l limit.Settings) bool { return l.MaxAnonymousComplexity == 100 }, false},
		{"aliases may be 0", map[string]string{"QUERY_MAX_ALIASES": "0"}, func(l limit.Settings) bool { return l.MaxAliases == 0 }, false},
		{"depth 0 refused", map[string]string{"QUERY_MAX_DEPTH": "0"}, nil, true},
		{"body under 1 KiB refused", map[string]string{"MAX_BODY_BYTES": "1023"}, nil, true},
		{"body of 1 KiB", map[string]string{"MAX_BODY_BYTES": "1024"}, func(l limit.Settings) bool { return l.MaxBodyBytes == 1024 }, false},
		{"caps off", map[string]string{"HTTP_REQUESTS_PER_ADDRESS": "0", "SSE_STREAMS_PER_USER": "0"}, func(l limit.Settings) bool {
			return l.RequestsPerAddress == 0 && l.StreamsPerUser == 0
		}, false},
		{"uploads per user 0 refused", map[string]string{"UPLOADS_PER_USER": "0"}, nil, true},
		{"timeouts", map[string]string{"HTTP_BODY_TIMEOUT": "5s", "HTTP_READ_HEADER_TIMEOUT": "2s", "HTTP_IDLE_TIMEOUT": "1m"}, func(l limit.Settings) bool {
			return l.BodyTimeout == 5*time.Second && l.ReadHeaderTimeout == 2*time.Second && l.IdleTimeout == time.Minute
		}, false},
		{"timeout under 1s refused", map[string]string{"HTTP_BODY_TIMEOUT": "500ms"}, nil, true},
		{"rate", map[string]string{"RATE_START_GENERATION": "3/1m"}, func(l limit.Settings) bool {
			return l.StartGenerationRate == limit.Rate{Burst: 3, Per: time.Minute}
		}, false},
		{"rate off", map[string]string{"RATE_VERIFY_VOICE_SAMPLE": "off"}, func(l limit.Settings) bool { return l.VerifyVoiceSampleRate.Unlimited() }, false},
		{"bad rate", map[string]string{"RATE_CREATE_VOICE_SAMPLE": "3 per hour"}, nil, true},
		{"quotas", map[string]string{"MAX_ACTIVE_GENERATIONS": "1", "DAILY_CHARACTER_BUDGET": "5000"}, func(l limit.Settings) bool {
			return l.MaxActiveGenerations == 1 && l.DailyCharacters == 5000
		}, false},
		{"active cap 0 refused", map[string]string{"MAX_ACTIVE_GENERATIONS": "0"}, nil, true},
		{"upload dir", map[string]string{"UPLOAD_DIR": "/var/spool/narrate"}, func(l limit.Settings) bool { return l.UploadDir == "/var/spool/narrate" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(env(tt.vars))
			if tt.err {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", c.Limits)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c.Limits) {
				t.Errorf("limits = %+v", c.Limits)
			}
		})
	}
}

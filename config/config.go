// Package config reads the server's configuration from the environment, as
// the contract lists it.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/narrate/narrate/limit"
)

// Config is the server's configuration.
type Config struct {
	// DatabaseURL is empty when the server should run its own local
	// PostgreSQL cluster under DataDir.
	DatabaseURL string
	DataDir     string
	Port        int
	// JWTSecret is the HS256 secret; empty means a dev secret in DataDir
	// when JWKSURL is empty too.
	JWTSecret         string
	JWKSURL           string
	JWTAudience       string
	ElevenLabsAPIKey  string
	ElevenLabsBaseURL string
	// ElevenLabsModelID is the text-to-speech model; empty uses the
	// client's default (eleven_multilingual_v2).
	ElevenLabsModelID string
	// ElevenLabsSTTModelID is the speech-to-text model that checks
	// verification recordings; empty uses the client's default.
	ElevenLabsSTTModelID string
	// ElevenLabsMaxConcurrent caps concurrent synthesis requests per
	// process, to stay within the plan's concurrency limit.
	ElevenLabsMaxConcurrent int
	MigrateOnStart          bool
	WorkerConcurrency       int
	// WorkerPollInterval is how often an idle worker looks for queued
	// generations; the embedded worker is also woken by notifications.
	WorkerPollInterval time.Duration
	// WorkerLease is how long a claimed generation stays with its worker
	// without renewal: a crashed worker's generation is taken over this
	// long after its last renewal.
	WorkerLease time.Duration
	// AudioURLTTL is how long a signed audio link stays valid.
	AudioURLTTL time.Duration
	// AudioSigningSecret signs audio links; empty derives one from the JWT
	// secret, or keeps a random one in DataDir when there is none.
	AudioSigningSecret string
	PublicURL          string
	// CORSOrigins lists the allowed browser origins; empty allows any.
	CORSOrigins []string
	// PersistedOperationsMax bounds the automatic persisted queries kept
	// in the database (the least recently used go first).
	PersistedOperationsMax int
	// TrustedDocuments is a manifest of the only operations to run; empty
	// runs any operation.
	TrustedDocuments string
	// CORSHeaders lists the request headers browsers may send cross-origin;
	// empty allows whatever a preflight asks for.
	CORSHeaders []string
	// ListenURL is a direct (session) connection for LISTEN, needed when
	// DatabaseURL goes through a transaction pooler; empty uses DatabaseURL.
	ListenURL string
	// StorageS3 locates S3-compatible audio storage. Audio is kept there
	// when its Bucket is set, and under DataDir otherwise.
	StorageS3 S3Storage
	// VoiceProvider is "elevenlabs", "local" or "none": ElevenLabs when
	// ELEVENLABS_API_KEY is set; otherwise the local development provider
	// in local development, and none (every voice operation refused with
	// a clear error) on a production server (one given a DATABASE_URL)
	// unless VOICE_PROVIDER=local asks for the local one.
	VoiceProvider string
	// Limits bound what every caller may use; see the README's "Limits
	// and security".
	Limits limit.Settings
	// Sockets caps what websocket clients may hold open.
	Sockets SocketLimits
	// EventReaders is how many re-reads of subscription events run at
	// once (0: the default); the pool gets that many connections on top
	// of its default.
	EventReaders int
}

// SocketLimits are the WS_MAX_* settings. In the environment 0 lifts a
// cap; here a negative value does, and 0 (a Config made in code) means the
// default.
type SocketLimits struct {
	SubscriptionsPerSocket int
	SocketsPerUser         int
	// SocketsPerAddress counts sockets by client address (from a proxy on
	// the same host, by its X-Forwarded-For).
	SocketsPerAddress int
}

// The voice providers.
const (
	VoiceElevenLabs = "elevenlabs"
	VoiceLocal      = "local"
	// VoiceNone refuses every voice operation: what a production server
	// without ELEVENLABS_API_KEY gets, rather than the local provider,
	// which accepts any verification recording.
	VoiceNone = "none"
)

// S3Storage is the STORAGE_S3_* settings.
type S3Storage struct {
	// Endpoint is the service's base URL, such as
	// "https://<project-ref>.storage.supabase.co/storage/v1/s3".
	Endpoint string
	// Bucket enables S3 storage when set.
	Bucket string
	Region string
	// Prefix is prepended to every object key; empty stores keys as they
	// are.
	Prefix          string
	AccessKeyID     string
	SecretAccessKey string
	// PathStyle puts the bucket in the URL's path rather than its host
	// name, as Supabase and MinIO require.
	PathStyle bool
}

// Enabled reports whether audio is stored in S3 rather than under DataDir.
func (s S3Storage) Enabled() bool { return s.Bucket != "" }

// ListenDatabaseURL is the URL the notification listener connects to.
func (c Config) ListenDatabaseURL(databaseURL string) string {
	if c.ListenURL != "" {
		return c.ListenURL
	}
	return databaseURL
}

// Defaults.
const (
	DefaultPort                    = 8080
	DefaultDataDir                 = ".data"
	DefaultAudience                = "authenticated"
	DefaultElevenLabsBaseURL       = "https://api.elevenlabs.io"
	DefaultWorkerConcurrency       = 2
	DefaultElevenLabsMaxConcurrent = 2
	DefaultWorkerPollInterval      = 2 * time.Second
	DefaultWorkerLease             = 30 * time.Second
	DefaultAudioURLTTL             = time.Hour
	DefaultPersistedOperationsMax  = 10000
	DefaultS3Region                = "us-east-1"
	// Websocket caps: a browser multiplexes its subscriptions over one
	// socket, a user rarely has more than a few tabs and devices, and an
	// address may be a NAT in front of many users.
	DefaultSubscriptionsPerSocket = 100
	DefaultSocketsPerUser         = 100
	DefaultSocketsPerAddress      = 1000
	DefaultEventReaders           = 2
)

// FromEnv reads the configuration from the process environment.
func FromEnv() (Config, error) { return Parse(os.Getenv) }

// Parse reads the configuration through getenv.
func Parse(getenv func(string) string) (Config, error) {
	c := Config{
		DatabaseURL:          getenv("DATABASE_URL"),
		DataDir:              cmp.Or(getenv("DATA_DIR"), DefaultDataDir),
		JWTSecret:            getenv("JWT_SECRET"),
		JWKSURL:              getenv("JWKS_URL"),
		ListenURL:            getenv("LISTEN_DATABASE_URL"),
		JWTAudience:          cmp.Or(getenv("JWT_AUDIENCE"), DefaultAudience),
		ElevenLabsAPIKey:     getenv("ELEVENLABS_API_KEY"),
		ElevenLabsBaseURL:    strings.TrimRight(cmp.Or(getenv("ELEVENLABS_BASE_URL"), DefaultElevenLabsBaseURL), "/"),
		ElevenLabsModelID:    getenv("ELEVENLABS_MODEL_ID"),
		ElevenLabsSTTModelID: getenv("ELEVENLABS_STT_MODEL_ID"),
		AudioSigningSecret:   getenv("AUDIO_SIGNING_SECRET"),
	}
	var err error
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return c, fmt.Errorf("DATA_DIR: %w", err)
	}
	if c.Port, err = intVar(getenv, "PORT", DefaultPort, 0, 65535); err != nil {
		return c, err
	}
	if c.WorkerConcurrency, err = intVar(getenv, "WORKER_CONCURRENCY", DefaultWorkerConcurrency, 0, 256); err != nil {
		return c, err
	}
	if c.PersistedOperationsMax, err = intVar(getenv, "PERSISTED_OPERATIONS_MAX", DefaultPersistedOperationsMax, 1, 1_000_000); err != nil {
		return c, err
	}
	c.TrustedDocuments = getenv("TRUSTED_DOCUMENTS")
	if c.ElevenLabsMaxConcurrent, err = intVar(getenv, "ELEVENLABS_MAX_CONCURRENT", DefaultElevenLabsMaxConcurrent, 1, 1000); err != nil {
		return c, err
	}
	if c.WorkerPollInterval, err = durationVar(getenv, "WORKER_POLL_INTERVAL", DefaultWorkerPollInterval, 10*time.Millisecond, time.Hour); err != nil {
		return c, err
	}
	// A lease shorter than a few seconds would expire during an ordinary
	// slow synthesis call between two renewals.
	if c.WorkerLease, err = durationVar(getenv, "WORKER_LEASE", DefaultWorkerLease, 3*time.Second, time.Hour); err != nil {
		return c, err
	}
	if c.AudioURLTTL, err = durationVar(getenv, "AUDIO_URL_TTL", DefaultAudioURLTTL, time.Minute, 7*24*time.Hour); err != nil {
		return c, err
	}
	if c.Sockets.SubscriptionsPerSocket, err = intVar(getenv, "WS_MAX_SUBSCRIPTIONS_PER_SOCKET", DefaultSubscriptionsPerSocket, 0, 1_000_000); err != nil {
		return c, err
	}
	if c.Sockets.SocketsPerUser, err = intVar(getenv, "WS_MAX_SOCKETS_PER_USER", DefaultSocketsPerUser, 0, 1_000_000); err != nil {
		return c, err
	}
	if c.Sockets.SocketsPerAddress, err = intVar(getenv, "WS_MAX_SOCKETS_PER_ADDRESS", DefaultSocketsPerAddress, 0, 1_000_000); err != nil {
		return c, err
	}
	for _, v := range []*int{&c.Sockets.SubscriptionsPerSocket, &c.Sockets.SocketsPerUser, &c.Sockets.SocketsPerAddress} {
		if *v == 0 {
			*v = -1
		}
	}
	if c.EventReaders, err = intVar(getenv, "REALTIME_EVENT_READERS", DefaultEventReaders, 1, 64); err != nil {
		return c, err
	}
	c.MigrateOnStart = true
	if v := getenv("MIGRATE_ON_START"); v != "" {
		if c.MigrateOnStart, err = strconv.ParseBool(v); err != nil {
			return c, fmt.Errorf("MIGRATE_ON_START: %q is not a boolean", v)
		}
	}
	c.PublicURL = strings.TrimRight(cmp.Or(getenv("PUBLIC_URL"), fmt.Sprintf("http://localhost:%d", c.Port)), "/")
	if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return c, fmt.Errorf("PUBLIC_URL: %q is not an absolute http(s) URL", c.PublicURL)
	}
	for _, o := range strings.Split(getenv("CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" && o != "*" {
			c.CORSOrigins = append(c.CORSOrigins, strings.TrimRight(o, "/"))
		}
	}
	for _, h := range strings.Split(getenv("CORS_HEADERS"), ",") {
		if h = strings.TrimSpace(h); h != "" && h != "*" {
			c.CORSHeaders = append(c.CORSHeaders, h)
		}
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || u.Host == "" {
			return c, fmt.Errorf("JWKS_URL: %q is not an absolute URL", c.JWKSURL)
		}
	}
	if c.StorageS3, err = parseS3Storage(getenv); err != nil {
		return c, err
	}
	if c.Limits, err = parseLimits(getenv); err != nil {
		return c, err
	}
	if c.VoiceProvider, err = voiceProvider(getenv("VOICE_PROVIDER"), c.ElevenLabsAPIKey, c.DatabaseURL != ""); err != nil {
		return c, err
	}
	return c, nil
}

// voiceProvider picks the provider from VOICE_PROVIDER and the API key.
// Without either, local development gets the local provider and a
// production server (given a DATABASE_URL) none: the local provider
// accepts any verification recording, so it is used there only when asked
// for by name.
func voiceProvider(v, apiKey string, production bool) (string, error) {
	switch v {
	case "":
		if apiKey != "" {
			return VoiceElevenLabs, nil
		}
		if production {
			return VoiceNone, nil
		}
		return VoiceLocal, nil
	case VoiceElevenLabs:
		if apiKey == "" {
			return "", errors.New("VOICE_PROVIDER=elevenlabs needs ELEVENLABS_API_KEY")
		}
		return v, nil
	case VoiceLocal, VoiceNone:
		return v, nil
	}
	return "", fmt.Errorf("VOICE_PROVIDER: %q is none of elevenlabs, local and none", v)
}

// ErrNoTokenKey is returned by RequireTokenKey.
var ErrNoTokenKey = errors.New("DATABASE_URL is set but neither JWT_SECRET nor JWKS_URL is: " +
	"set the project's JWT secret or its JWKS URL (the development secret is only for the local database)")

// RequireTokenKey refuses a production configuration (one with a
// DATABASE_URL) that has no way to verify tokens: the random development
// secret would fail every real token. The commands that verify or sign
// tokens call it; migrate, which needs only the database, does not.
func (c Config) RequireTokenKey() error {
	if c.DatabaseURL != "" && c.JWTSecret == "" && c.JWKSURL == "" {
		return ErrNoTokenKey
	}
	return nil
}

// parseLimits reads the limit settings; each unset one keeps its default.
func parseLimits(getenv func(string) string) (limit.Settings, error) {
	l := limit.Defaults()
	var err error
	ints := []struct {
		name   string
		dst    *int
		lo, hi int
	}{
		{"QUERY_MAX_DEPTH", &l.MaxDepth, 1, 100},
		{"QUERY_MAX_COMPLEXITY", &l.MaxComplexity, 1, 10_000_000},
		{"QUERY_MAX_COMPLEXITY_ANONYMOUS", &l.MaxAnonymousComplexity, 1, 10_000_000},
		{"QUERY_MAX_ALIASES", &l.MaxAliases, 0, 10_000},
		{"QUERY_MAX_ROOT_FIELDS", &l.MaxRootFields, 1, 10_000},
		{"UPLOADS_PER_USER", &l.UploadsPerUser, 1, 1000},
		{"HTTP_REQUESTS_PER_USER", &l.RequestsPerUser, 0, 1_000_000},
		{"HTTP_REQUESTS_PER_ADDRESS", &l.RequestsPerAddress, 0, 1_000_000},
		{"SSE_STREAMS_PER_USER", &l.StreamsPerUser, 0, 1_000_000},
		{"SSE_STREAMS_PER_ADDRESS", &l.StreamsPerAddress, 0, 1_000_000},
		{"MAX_ACTIVE_GENERATIONS", &l.MaxActiveGenerations, 1, 1_000_000},
	}
	for _, v := range ints {
		if *v.dst, err = intVar(getenv, v.name, *v.dst, v.lo, v.hi); err != nil {
			return l, err
		}
	}
	int64s := []struct {
		name   string
		dst    *int64
		lo, hi int
	}{
		{"MAX_BODY_BYTES", &l.MaxBodyBytes, 1 << 10, 1 << 30},
		{"UPLOAD_MEMORY_BYTES", &l.UploadMemoryBytes, 0, 64 << 20},
		{"UPLOAD_MIN_BYTES_PER_SECOND", &l.UploadMinBytesPerSecond, 1, 1 << 30},
		{"DAILY_CHARACTER_BUDGET", &l.DailyCharacters, 1, 1 << 40},
	}
	for _, v := range int64s {
		n, err := intVar(getenv, v.name, int(*v.dst), v.lo, v.hi)
		if err != nil {
			return l, err
		}
		*v.dst = int64(n)
	}
	durations := []struct {
		name   string
		dst    *time.Duration
		lo, hi time.Duration
	}{
		{"HTTP_READ_HEADER_TIMEOUT", &l.ReadHeaderTimeout, time.Second, 10 * time.Minute},
		{"HTTP_BODY_TIMEOUT", &l.BodyTimeout, time.Second, time.Hour},
		{"HTTP_IDLE_TIMEOUT", &l.IdleTimeout, time.Second, time.Hour},
	}
	for _, v := range durations {
		if *v.dst, err = durationVar(getenv, v.name, *v.dst, v.lo, v.hi); err != nil {
			return l, err
		}
	}
	rates := []struct {
		name string
		dst  *limit.Rate
	}{
		{"RATE_START_GENERATION", &l.StartGenerationRate},
		{"RATE_CREATE_VOICE_SAMPLE", &l.CreateVoiceSampleRate},
		{"RATE_VERIFY_VOICE_SAMPLE", &l.VerifyVoiceSampleRate},
	}
	for _, v := range rates {
		if s := getenv(v.name); s != "" {
			if *v.dst, err = limit.ParseRate(s); err != nil {
				return l, fmt.Errorf("%s: %w", v.name, err)
			}
		}
	}
	if v := getenv("INTROSPECTION"); v != "" {
		if l.Introspection, err = strconv.ParseBool(v); err != nil {
			return l, fmt.Errorf("INTROSPECTION: %q is not a boolean", v)
		}
	}
	l.UploadDir = getenv("UPLOAD_DIR")
	return l, nil
}

// parseS3Storage reads the STORAGE_S3_* settings. Settings without a
// bucket are an error rather than ignored, so that a forgotten bucket does
// not silently keep audio on the local disk.
func parseS3Storage(getenv func(string) string) (S3Storage, error) {
	s := S3Storage{
		Endpoint:        strings.TrimRight(getenv("STORAGE_S3_ENDPOINT"), "/"),
		Bucket:          getenv("STORAGE_S3_BUCKET"),
		Region:          cmp.Or(getenv("STORAGE_S3_REGION"), DefaultS3Region),
		Prefix:          getenv("STORAGE_S3_PREFIX"),
		AccessKeyID:     getenv("STORAGE_S3_ACCESS_KEY_ID"),
		SecretAccessKey: getenv("STORAGE_S3_SECRET_ACCESS_KEY"),
		PathStyle:       true,
	}
	if v := getenv("STORAGE_S3_PATH_STYLE"); v != "" {
		var err error
		if s.PathStyle, err = strconv.ParseBool(v); err != nil {
			return s, fmt.Errorf("STORAGE_S3_PATH_STYLE: %q is not a boolean", v)
		}
	}
	if !s.Enabled() {
		for _, name := range []string{"STORAGE_S3_ENDPOINT", "STORAGE_S3_PREFIX", "STORAGE_S3_ACCESS_KEY_ID", "STORAGE_S3_SECRET_ACCESS_KEY"} {
			if getenv(name) != "" {
				return s, fmt.Errorf("%s is set but STORAGE_S3_BUCKET is not: set the bucket to store audio in S3, or unset %s", name, name)
			}
		}
		return s, nil
	}
	if s.Endpoint == "" {
		return s, errors.New("STORAGE_S3_ENDPOINT: required when STORAGE_S3_BUCKET is set")
	}
	if u, err := url.Parse(s.Endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return s, fmt.Errorf("STORAGE_S3_ENDPOINT: %q is not an absolute http(s) URL", s.Endpoint)
	}
	if s.AccessKeyID == "" || s.SecretAccessKey == "" {
		return s, errors.New("STORAGE_S3_ACCESS_KEY_ID and STORAGE_S3_SECRET_ACCESS_KEY: both required when STORAGE_S3_BUCKET is set")
	}
	return s, nil
}

func intVar(getenv func(string) string, name string, def, lo, hi int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: %q is not a number between %d and %d", name, v, lo, hi)
	}
	return n, nil
}

func durationVar(getenv func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s: %q is not a duration between %v and %v (e.g. \"30s\")", name, v, lo, hi)
	}
	return d, nil
}

// Package limit holds the bounds every caller is held to: the settings
// (sizes, timeouts, caps, rates and quotas, with their defaults) and the
// in-process counter that caps concurrent work per key. Rate limits and
// quotas that must hold across server instances are enforced in
// PostgreSQL (package db); the caps here are on this process's own
// resources (connections, memory, disk), so they are per process.
package limit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Settings are every limit of the server. The zero value of a field means
// its default; see Defaults.
type Settings struct {
	// MaxBodyBytes caps a JSON (or GET) request body.
	MaxBodyBytes int64
	// MaxDepth, MaxComplexity, MaxAnonymousComplexity, MaxAliases and
	// MaxRootFields bound one GraphQL operation.
	MaxDepth               int
	MaxComplexity          int
	MaxAnonymousComplexity int
	MaxAliases             int
	MaxRootFields          int
	// Introspection allows __schema and __type.
	Introspection bool

	// UploadMemoryBytes is how much of one uploaded file is kept in memory
	// before the rest is spooled to a file in UploadDir.
	UploadMemoryBytes int64
	// UploadDir holds spooled uploads; empty is the system's temporary
	// directory.
	UploadDir string
	// UploadsPerUser caps one user's concurrent multipart requests.
	UploadsPerUser int
	// UploadMinBytesPerSecond is the slowest an upload may arrive, after
	// a grace of BodyTimeout.
	UploadMinBytesPerSecond int64

	// ReadHeaderTimeout, BodyTimeout and IdleTimeout bound how long a
	// connection may take to send its headers, a (non-upload) body, and
	// its next request.
	ReadHeaderTimeout time.Duration
	BodyTimeout       time.Duration
	IdleTimeout       time.Duration
	// RequestsPerUser and RequestsPerAddress cap concurrent HTTP requests
	// of one user and of one client address; StreamsPerUser and
	// StreamsPerAddress cap concurrent server-sent event streams. 0 turns
	// a cap off. A browser sends a handful of requests at once; the
	// per-user default leaves room for a server-side client or a load
	// test signed in as one user (the shared peer comparison runs 64 at
	// once), which the per-address cap and the query budget still bound.
	RequestsPerUser    int
	RequestsPerAddress int
	StreamsPerUser     int
	StreamsPerAddress  int

	// Rates are the per-user token buckets of the paid mutations.
	StartGenerationRate   Rate
	CreateVoiceSampleRate Rate
	VerifyVoiceSampleRate Rate
	// MaxActiveGenerations caps a user's PENDING plus IN_PROGRESS
	// generations; DailyCharacters caps the story characters a user may
	// queue per UTC day. Both are enforced by the database.
	MaxActiveGenerations int
	DailyCharacters      int64
}

// Defaults returns the default settings. The deepest useful query (a
// story's generations' logs through edges and nodes) nests 9 fields; a
// page of 50 generations with their story and 20 log events costs about
// 5,000; GraphiQL's schema query about 2,000.
func Defaults() Settings {
	return Settings{
		MaxBodyBytes:           1 << 20,
		MaxDepth:               12,    // graph.DefaultMaxDepth
		MaxComplexity:          20000, // graph.DefaultMaxComplexity
		MaxAnonymousComplexity: 5000,
		MaxAliases:             30,
		MaxRootFields:          20,
		Introspection:          true,

		UploadMemoryBytes:       256 << 10,
		UploadsPerUser:          2,
		UploadMinBytesPerSecond: 16 << 10,

		ReadHeaderTimeout:  10 * time.Second,
		BodyTimeout:        30 * time.Second,
		IdleTimeout:        2 * time.Minute,
		RequestsPerUser:    128,
		RequestsPerAddress: 256,
		StreamsPerUser:     8,
		StreamsPerAddress:  64,

		StartGenerationRate:   Rate{Burst: 20, Per: time.Hour},
		CreateVoiceSampleRate: Rate{Burst: 5, Per: time.Hour},
		VerifyVoiceSampleRate: Rate{Burst: 10, Per: time.Hour},
		MaxActiveGenerations:  5,
		DailyCharacters:       200_000,
	}
}

// Rate is a token bucket: Burst calls at once, refilled at Burst per Per.
// The zero Rate is no limit.
type Rate struct {
	Burst int
	Per   time.Duration
}

// Unlimited reports whether the rate imposes no limit.
func (r Rate) Unlimited() bool { return r.Burst <= 0 || r.Per <= 0 }

// PerSecond is the refill rate in tokens per second.
func (r Rate) PerSecond() float64 { return float64(r.Burst) / r.Per.Seconds() }

// String formats the rate as ParseRate reads it.
func (r Rate) String() string {
	if r.Unlimited() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.Burst, r.Per)
}

// ParseRate reads "N/duration" (N calls at once, refilled over duration,
// such as "20/1h") or "off".
func ParseRate(s string) (Rate, error) {
	if s == "off" {
		return Rate{}, nil
	}
	n, d, ok := strings.Cut(s, "/")
	burst, err := strconv.Atoi(n)
	if !ok || err != nil || burst < 1 {
		return Rate{}, fmt.Errorf("%q is not N/duration (such as 20/1h) or off", s)
	}
	per, err := time.ParseDuration(d)
	if err != nil || per < time.Second {
		return Rate{}, fmt.Errorf("%q is not N/duration (such as 20/1h) with a duration of at least 1s", s)
	}
	return Rate{Burst: burst, Per: per}, nil
}

// Counter caps concurrent work per key (a user, a client address). The
// zero value is ready to use.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// Acquire takes one of max slots of key and returns its release, or
// false when all are taken. max <= 0 never refuses.
func (c *Counter) Acquire(key string, max int) (release func(), ok bool) {
	if max <= 0 {
		return func() {}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[key] >= max {
		return nil, false
	}
	c.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			// Deleting at zero keeps the map from growing with every
			// address ever seen.
			if c.n[key]--; c.n[key] <= 0 {
				delete(c.n, key)
			}
		})
	}, true
}

// InUse is how many slots of key are taken.
func (c *Counter) InUse(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

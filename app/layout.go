package app

import (
	"path/filepath"

	"github.com/narrate/narrate/auth"
	"github.com/narrate/narrate/localdb"
)

// Layout is where a server keeps its local state under DATA_DIR. It is
// the one description of that directory: the server writes it, and tools
// such as cmd/loadtest find the cluster and the development secret through
// it.
type Layout struct {
	// DataDir is DATA_DIR, absolute.
	DataDir string
}

// ClusterDirs are the directories the local PostgreSQL cluster may be in:
// DATA_DIR/postgres, or, when the postgres user cannot reach DATA_DIR
// (running as root with DATA_DIR under /root), a fallback of its own.
func (l Layout) ClusterDirs() []string {
	return []string{l.ClusterDir(), l.FallbackClusterDir()}
}

// ClusterDir is the local cluster's usual directory.
func (l Layout) ClusterDir() string { return filepath.Join(l.DataDir, "postgres") }

// FallbackClusterDir is the local cluster's directory when the postgres
// user cannot reach DATA_DIR.
func (l Layout) FallbackClusterDir() string { return localdb.FallbackDir(l.DataDir) }

// AudioDir holds stored audio when there is no S3 bucket.
func (l Layout) AudioDir() string { return filepath.Join(l.DataDir, "audio") }

// JWTSecretFile holds the development JWT secret.
func (l Layout) JWTSecretFile() string { return filepath.Join(l.DataDir, auth.DevSecretFile) }

// AudioSecretFile holds the random audio-link secret when there is no JWT
// secret to derive it from.
func (l Layout) AudioSecretFile() string { return filepath.Join(l.DataDir, "audio-link-secret") }

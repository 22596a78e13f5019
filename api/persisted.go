package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph"
)

// DefaultPersistedLimit bounds the automatic persisted queries kept in the
// database.
const DefaultPersistedLimit = 10000

// persistedStore keeps persisted operations in PostgreSQL, where every
// server process finds what any of them was sent, behind a small
// in-process cache: an operation never changes under its hash, so a cached
// one is always right.
type persistedStore struct {
	db     *db.DB // nil keeps operations in this process only
	local  *lru.LRU[persisted]
	limit  int
	logger *slog.Logger
}

// persisted is one operation: its text and whether an operator
// registered it as a trusted document.
type persisted struct {
	query   string
	trusted bool
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func newPersistedStore(d *db.DB, limit int, logger *slog.Logger) *persistedStore {
	if limit <= 0 {
		limit = DefaultPersistedLimit
	}
	return &persistedStore{db: d, local: lru.New[persisted](1000), limit: limit, logger: logger}
}

// get finds the operation registered under hash. A database error is
// logged and reads as a miss: an automatic persisted query's client then
// sends the text again.
func (s *persistedStore) get(ctx context.Context, hash string) (persisted, bool) {
	if p, ok := s.local.Get(ctx, hash); ok {
		return p, true
	}
	if s.db == nil || !sha256Hex.MatchString(hash) {
		return persisted{}, false
	}
	query, trusted, ok, err := s.db.PersistedOperation(ctx, hash)
	if err != nil {
		s.logger.WarnContext(ctx, "persisted operations unavailable", "err", err)
		return persisted{}, false
	}
	if !ok {
		return persisted{}, false
	}
	p := persisted{query: query, trusted: trusted}
	s.local.Add(ctx, hash, p)
	return p, true
}

// Get and Add make the store gqlgen's automatic persisted query cache.
func (s *persistedStore) Get(ctx context.Context, hash string) (string, bool) {
	p, ok := s.get(ctx, hash)
	return p.query, ok
}

func (s *persistedStore) Add(ctx context.Context, hash, query string) {
	s.local.Add(ctx, hash, persisted{query: query})
	if s.db == nil {
		return
	}
	if err := s.db.PersistOperation(ctx, hash, query, s.limit); err != nil {
		s.logger.WarnContext(ctx, "persist operation", "err", err)
	}
}

var _ graphql.Cache[string] = (*persistedStore)(nil)

// trustedDocuments runs only the operations an operator registered
// (TRUSTED_DOCUMENTS): by hash, as automatic persisted queries send them,
// or by full text whose hash is registered. Anything else is refused
// before it is parsed, so a production API offers attackers no more than
// its own app's operations.
type trustedDocuments struct{ store *persistedStore }

var _ interface {
	graphql.OperationParameterMutator
	graphql.HandlerExtension
} = trustedDocuments{}

func (trustedDocuments) ExtensionName() string                   { return "TrustedDocuments" }
func (trustedDocuments) Validate(graphql.ExecutableSchema) error { return nil }

func (t trustedDocuments) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	var hash string
	if ext, ok := raw.Extensions["persistedQuery"].(map[string]any); ok {
		hash, _ = ext["sha256Hash"].(string)
	}
	if raw.Query == "" {
		p, ok := t.store.get(ctx, hash)
		if !ok || !p.trusted {
			err := gqlerror.Errorf("PersistedQueryNotFound")
			errcode.Set(err, "PERSISTED_QUERY_NOT_FOUND")
			return err
		}
		raw.Query = p.query
		return nil
	}
	sum := sha256.Sum256([]byte(raw.Query))
	sent := hex.EncodeToString(sum[:])
	if hash != "" && hash != sent {
		return &gqlerror.Error{Message: "provided APQ hash does not match query", Extensions: map[string]any{"code": graph.CodeBadUserInput}}
	}
	if p, ok := t.store.get(ctx, sent); !ok || !p.trusted {
		return &gqlerror.Error{
			Message:    "this server runs only its registered operations (trusted documents)",
			Extensions: map[string]any{"code": graph.CodeForbidden},
		}
	}
	return nil
}

// persistedExtension is the persisted-operation extension for o: trusted
// documents only, or automatic persisted queries shared through the
// database.
func persistedExtension(o Options) graphql.HandlerExtension {
	store := newPersistedStore(o.DB, o.PersistedLimit, o.Logger)
	if o.TrustedDocuments {
		return trustedDocuments{store: store}
	}
	return extension.AutomaticPersistedQuery{Cache: store}
}

// ReadTrustedDocuments reads a manifest of trusted documents, keyed by the
// hex SHA-256 of each document's text, in either of the common formats:
// Apollo's persisted query manifest
// ({"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}),
// or a plain object of hash to document (GraphQL Code Generator's
// persisted-documents.json). Every hash is checked against its text.
func ReadTrustedDocuments(r io.Reader) (map[string]string, error) {
	var raw json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("trusted documents: %w", err)
	}
	docs := map[string]string{}
	var apollo struct {
		Format     string `json:"format"`
		Operations []struct {
			ID   string `json:"id"`
			Body string `json:"body"`
		} `json:"operations"`
	}
	if json.Unmarshal(raw, &apollo) == nil && apollo.Format == "apollo-persisted-query-manifest" {
		for _, op := range apollo.Operations {
			docs[op.ID] = op.Body
		}
	} else if err := json.Unmarshal(raw, &docs); err != nil {
		return nil, fmt.Errorf("trusted documents: neither an Apollo manifest nor an object of hash to document: %w", err)
	}
	for hash, doc := range docs {
		sum := sha256.Sum256([]byte(doc))
		if hex.EncodeToString(sum[:]) != hash {
			return nil, fmt.Errorf("trusted documents: %q is not the SHA-256 of its document", hash)
		}
	}
	return docs, nil
}

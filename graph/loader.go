package graph

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/graph-gophers/dataloader/v7"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/generation"
)

// loaderWait is how long a loader collects keys before it queries. gqlgen
// resolves sibling fields concurrently, so they all arrive within
// microseconds; a long wait would only add latency to every response and
// every subscription event.
const loaderWait = 500 * time.Microsecond

// pageKey asks for one page of a nested connection: the parent's id, the
// page size plus one (to learn whether there is a next page) and the raw,
// already validated cursor.
type pageKey[K comparable] struct {
	Parent K
	Limit  int
	After  string
	Status generation.Status
}

// Loaders batch the nested reads of one response. They are made per
// response, never per connection, so their caches hold one viewer's rows for
// one response only: a websocket's later events never see stale rows and
// one viewer's rows are never served to another.
type Loaders struct {
	db      *db.DB
	session db.Session
	// cols are the columns the operation's reads fetch.
	cols columns

	story       lazyLoader[uuid.UUID, *db.Story]
	generation  lazyLoader[uuid.UUID, *db.Generation]
	profile     lazyLoader[uuid.UUID, *db.Profile]
	voiceSample lazyLoader[uuid.UUID, *db.VoiceSample]
	email       lazyLoader[uuid.UUID, *string]
	logs        lazyLoader[pageKey[uuid.UUID], []db.Log]
	parts       lazyLoader[uuid.UUID, []db.GenerationPart]
	generations lazyLoader[pageKey[db.OwnerKey], []db.Generation]

	// primed holds the generation connections (their field contexts)
	// whose nodes' nested reads primeGenerations has cached: their lists
	// need no goroutine per element (marshalList).
	primedMu sync.Mutex
	primed   []*graphql.FieldContext
}

// markPrimed records that the nested reads under the connection resolved
// in fc are cached.
func (l *Loaders) markPrimed(fc *graphql.FieldContext) {
	l.primedMu.Lock()
	l.primed = append(l.primed, fc)
	l.primedMu.Unlock()
}

// isPrimed reports whether markPrimed recorded fc.
func (l *Loaders) isPrimed(fc *graphql.FieldContext) bool {
	l.primedMu.Lock()
	defer l.primedMu.Unlock()
	return slices.Contains(l.primed, fc)
}

// lazyLoader makes its dataloader on first use: most responses use one or
// two of the loaders, and a subscription keeps its response's loaders for
// as long as it waits for the next event. Values read ahead of their
// fields (nested.prime) are kept beside the dataloader and served without
// it: its thunk, cache entry and tracer cost a few allocations for each
// field, and a page of generations asks for two such fields per node.
type lazyLoader[K comparable, V any] struct {
	batch  dataloader.BatchFunc[K, V]
	once   sync.Once
	loader *dataloader.Loader[K, V]

	primedMu sync.RWMutex
	primed   map[K]V
}

func (z *lazyLoader[K, V]) get() *dataloader.Loader[K, V] {
	z.once.Do(func() { z.loader = newLoader(z.batch) })
	return z.loader
}

// Get returns the value primed for key, or loads it, batched with the
// other keys asked for meanwhile.
func (z *lazyLoader[K, V]) Get(ctx context.Context, key K) (V, error) {
	z.primedMu.RLock()
	v, ok := z.primed[key]
	z.primedMu.RUnlock()
	if ok {
		return v, nil
	}
	return z.get().Load(ctx, key)()
}

// Prime records v for key, so that Get finds it without loading; n is how
// many keys are about to be primed (the map's first size). A key primed
// already keeps its value, as with the dataloader's Prime.
func (z *lazyLoader[K, V]) Prime(key K, v V, n int) {
	z.primedMu.Lock()
	defer z.primedMu.Unlock()
	if z.primed == nil {
		z.primed = make(map[K]V, n)
	}
	if _, ok := z.primed[key]; !ok {
		z.primed[key] = v
	}
}

// NewLoaders makes the loaders of one response, reading the columns cols
// as s.
func NewLoaders(d *db.DB, s db.Session, cols columns) *Loaders {
	l := &Loaders{db: d, session: s, cols: cols}
	l.story.batch = byID(func(ctx context.Context, ids []uuid.UUID) ([]db.Story, error) {
		return d.StoriesByID(ctx, s, ids, cols.story)
	}, storyID)
	l.email.batch = func(ctx context.Context, ids []uuid.UUID) []*dataloader.Result[*string] {
		rows, err := d.UserEmails(ctx, s, ids)
		found := emailsByID(rows)
		return results(ids, err, func(id uuid.UUID) *string { return found[id] })
	}
	l.logs.batch = pages(func(ctx context.Context, parents []uuid.UUID, limit int, after string, _ generation.Status) ([]db.Keyed[db.Log], error) {
		key, err := decodeCursor[db.LogKey](cursorLog, nonEmpty(after))
		if err != nil {
			return nil, err
		}
		return d.LogsByGeneration(ctx, s, parents, db.PageParams[db.LogKey]{Limit: limit, After: key, Columns: cols.log})
	})
	l.parts.batch = func(ctx context.Context, ids []uuid.UUID) []*dataloader.Result[[]db.GenerationPart] {
		rows, err := d.PartsByGeneration(ctx, s, ids)
		byGeneration := make(map[uuid.UUID][]db.GenerationPart, len(ids))
		for _, p := range rows {
			byGeneration[p.GenerationID] = append(byGeneration[p.GenerationID], p)
		}
		return results(ids, err, func(id uuid.UUID) []db.GenerationPart { return byGeneration[id] })
	}
	l.generation.batch = byID(func(ctx context.Context, ids []uuid.UUID) ([]db.Generation, error) {
		return d.GenerationsByID(ctx, s, ids, cols.generation)
	}, func(v db.Generation) uuid.UUID { return v.ID })
	l.profile.batch = byID(func(ctx context.Context, ids []uuid.UUID) ([]db.Profile, error) {
		return d.ProfilesByUser(ctx, s, ids, cols.profile)
	}, func(v db.Profile) uuid.UUID { return v.UserID })
	l.voiceSample.batch = byID(func(ctx context.Context, ids []uuid.UUID) ([]db.VoiceSample, error) {
		return d.VoiceSamplesByUser(ctx, s, ids)
	}, func(v db.VoiceSample) uuid.UUID { return v.UserID })
	l.generations.batch = pages(l.generationPages)
	return l
}

// generationPages reads a page of generations for each owner.
func (l *Loaders) generationPages(ctx context.Context, owners []db.OwnerKey, limit int, after string, status generation.Status) ([]db.Keyed[db.Generation], error) {
	p, err := l.page(pageKey[db.OwnerKey]{Limit: limit, After: after, Status: status})
	if err != nil {
		return nil, err
	}
	return l.db.GenerationsByOwner(ctx, l.session, owners, p.Filter, p.Page)
}

// page is the page k asks for, as the database reads it (k.Parent is its
// owner).
func (l *Loaders) page(k pageKey[db.OwnerKey]) (db.GenerationPage, error) {
	after, err := decodeCursor[db.GenerationKey](cursorGeneration, nonEmpty(k.After))
	if err != nil {
		return db.GenerationPage{}, err
	}
	p := db.GenerationPage{Owner: k.Parent, Page: db.PageParams[db.GenerationKey]{Limit: k.Limit, After: after, Columns: l.cols.generation}}
	if k.Status != "" {
		p.Filter.Status = &k.Status
	}
	return p, nil
}

// generationPage reads one page at once, without the loader's wait: for a
// connection that is not one of many.
func (l *Loaders) generationPage(ctx context.Context, p db.GenerationPage) ([]db.Generation, error) {
	var rows []db.Generation
	err := l.db.Read(ctx, l.session, func(q *db.Reads) { q.GenerationPage(p, &rows) })
	return rows, err
}

func storyID(s db.Story) uuid.UUID { return s.ID }

func emailsByID(rows []db.UserEmail) map[uuid.UUID]*string {
	found := make(map[uuid.UUID]*string, len(rows))
	for _, r := range rows {
		found[r.ID] = r.Email
	}
	return found
}

func newLoader[K comparable, V any](fn dataloader.BatchFunc[K, V]) *dataloader.Loader[K, V] {
	return dataloader.NewBatchedLoader(fn,
		dataloader.WithWait[K, V](loaderWait),
		dataloader.WithBatchCapacity[K, V](500),
	)
}

// byID makes a batch function that loads rows by id; an id without a
// visible row loads as nil.
func byID[V any](fetch func(context.Context, []uuid.UUID) ([]V, error), idOf func(V) uuid.UUID) dataloader.BatchFunc[uuid.UUID, *V] {
	return func(ctx context.Context, ids []uuid.UUID) []*dataloader.Result[*V] {
		rows, err := fetch(ctx, ids)
		found := index(rows, idOf)
		return results(ids, err, func(id uuid.UUID) *V { return found[id] })
	}
}

// index maps the rows by id.
func index[V any](rows []V, idOf func(V) uuid.UUID) map[uuid.UUID]*V {
	found := make(map[uuid.UUID]*V, len(rows))
	for i := range rows {
		found[idOf(rows[i])] = &rows[i]
	}
	return found
}

// pages makes a batch function for nested connections: keys asking for the
// same page shape share one statement whatever the number of parents.
func pages[P comparable, V any](fetch func(ctx context.Context, parents []P, limit int, after string, status generation.Status) ([]db.Keyed[V], error)) dataloader.BatchFunc[pageKey[P], []V] {
	return func(ctx context.Context, keys []pageKey[P]) []*dataloader.Result[[]V] {
		type shape struct {
			limit  int
			after  string
			status generation.Status
		}
		groups := map[shape][]int{}
		for i, k := range keys {
			s := shape{k.Limit, k.After, k.Status}
			groups[s] = append(groups[s], i)
		}
		out := make([]*dataloader.Result[[]V], len(keys))
		for s, idx := range groups {
			parents := make([]P, len(idx))
			for j, i := range idx {
				parents[j] = keys[i].Parent
			}
			rows, err := fetch(ctx, parents, s.limit, s.after, s.status)
			byKey := byKeyIndex(rows, len(idx))
			for j, i := range idx {
				out[i] = &dataloader.Result[[]V]{Data: byKey[j], Error: err}
			}
		}
		return out
	}
}

// byKeyIndex groups the rows of a batched query by the key they answer.
func byKeyIndex[V any](rows []db.Keyed[V], keys int) [][]V {
	byKey := make([][]V, keys)
	for _, r := range rows {
		byKey[r.KeyIndex] = append(byKey[r.KeyIndex], r.Row)
	}
	return byKey
}

func results[K comparable, V any](keys []K, err error, get func(K) V) []*dataloader.Result[V] {
	out := make([]*dataloader.Result[V], len(keys))
	for i, k := range keys {
		if err != nil {
			out[i] = &dataloader.Result[V]{Error: err}
			continue
		}
		out[i] = &dataloader.Result[V]{Data: get(k)}
	}
	return out
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type loadersKey struct{}

// WithLoaders returns ctx carrying l.
func WithLoaders(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, loadersKey{}, l)
}

// loaders returns the response's loaders. Every response gets them from
// LoaderMiddleware; the fallback keeps a resolver called outside a response
// (a test, say) correct, if unbatched.
func (r *Resolver) loaders(ctx context.Context) *Loaders {
	if l, ok := ctx.Value(loadersKey{}).(*Loaders); ok {
		return l
	}
	return NewLoaders(r.DB, ViewerFrom(ctx).Session, columnsOf(ctx))
}

// LoaderMiddleware gives every response, including every event of a
// subscription, fresh loaders reading as the response's viewer.
func (r *Resolver) LoaderMiddleware(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	cols := allColumns
	if graphql.HasOperationContext(ctx) {
		cols = operationColumns(graphql.GetOperationContext(ctx).Operation)
	}
	return next(WithLoaders(ctx, NewLoaders(r.DB, ViewerFrom(ctx).Session, cols)))
}

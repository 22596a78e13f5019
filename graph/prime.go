package graph

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/graph-gophers/dataloader/v7"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/narrate/narrate/db"
)

// primeGenerations loads, before a page of generations is returned, what
// the operation asks of its nodes through loaders (story, logs and
// user.email), in one statement per field, and caches the rows in the
// response's loaders, where the nodes' resolvers then find them.
//
// Left to the loaders alone, every node asks on a goroutine of its own, and
// under load the keys that arrive after the loader's short wait go in a
// batch of their own: the statements of a page would grow with its size.
// A connection nested in a list (the myGenerations of each story of a page)
// is not primed: priming each one would cost a statement per parent, while
// the loaders usually batch them all.
func (r *Resolver) primeGenerations(ctx context.Context, rows []db.Generation) {
	if len(rows) == 0 || !graphql.HasOperationContext(ctx) {
		return
	}
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil || inList(fc) {
		return
	}
	opCtx := graphql.GetOperationContext(ctx)
	l := r.loaders(ctx)
	var wg sync.WaitGroup
	seen := map[any]bool{}
	once := func(key any, load func()) {
		if !seen[key] {
			seen[key] = true
			wg.Go(load)
		}
	}
	for _, f := range nodeFields(opCtx, fc.Field.Selections) {
		switch f.Name {
		case "story":
			once("story", func() {
				prime(ctx, l.story.get(), l.story.batch, distinct(rows, func(g db.Generation) uuid.UUID { return g.StoryID }))
			})
		case "logs":
			size, after, ok := logPageArgs(f, opCtx.Variables)
			if !ok {
				// The resolver reports the bad arguments.
				continue
			}
			keys := make([]pageKey[uuid.UUID], len(rows))
			for i, g := range rows {
				keys[i] = pageKey[uuid.UUID]{Parent: g.ID, Limit: size + 1, After: after}
			}
			once(pageKey[uuid.UUID]{Limit: size, After: after}, func() { prime(ctx, l.logs.get(), l.logs.batch, keys) })
		case "user":
			for _, uf := range graphql.CollectFields(opCtx, f.Selections, []string{"User"}) {
				if uf.Name == "email" {
					once("email", func() {
						prime(ctx, l.email.get(), l.email.batch, distinct(rows, func(g db.Generation) uuid.UUID { return g.UserID }))
					})
				}
			}
		}
	}
	wg.Wait()
}

// inList reports whether the field is resolved once per element of a list.
func inList(fc *graphql.FieldContext) bool {
	for p := fc.Parent; p != nil; p = p.Parent {
		if p.Index != nil {
			return true
		}
	}
	return false
}

// nodeFields collects the fields asked of a generation connection's nodes,
// through nodes and through edges.node.
func nodeFields(opCtx *graphql.OperationContext, conn ast.SelectionSet) []graphql.CollectedField {
	var out []graphql.CollectedField
	for _, f := range graphql.CollectFields(opCtx, conn, []string{"StoryGenerationConnection"}) {
		switch f.Name {
		case "nodes":
			out = append(out, graphql.CollectFields(opCtx, f.Selections, []string{"StoryGeneration"})...)
		case "edges":
			for _, ef := range graphql.CollectFields(opCtx, f.Selections, []string{"StoryGenerationEdge"}) {
				if ef.Name == "node" {
					out = append(out, graphql.CollectFields(opCtx, ef.Selections, []string{"StoryGeneration"})...)
				}
			}
		}
	}
	return out
}

// logPageArgs reads a logs field's page size and cursor the way the Logs
// resolver does, so the primed keys are the ones it asks for; ok is false
// when the arguments are not valid.
func logPageArgs(f graphql.CollectedField, vars map[string]any) (size int, after string, ok bool) {
	args := f.ArgumentMap(vars)
	var first *int
	if v := args["first"]; v != nil {
		n, err := graphql.UnmarshalInt(v)
		if err != nil {
			return 0, "", false
		}
		first = &n
	}
	var cursor *string
	if v := args["after"]; v != nil {
		s, isString := v.(string)
		if !isString {
			return 0, "", false
		}
		cursor, after = &s, s
	}
	size, err := checkPage[db.LogKey](cursorLog, first, cursor, defaultLogPageSize)
	if err != nil {
		return 0, "", false
	}
	return size, after, true
}

// prime runs fn for keys at once and caches the results in l. Failed keys
// are left out, so their resolvers load them again and report the error.
func prime[K comparable, V any](ctx context.Context, l *dataloader.Loader[K, V], fn dataloader.BatchFunc[K, V], keys []K) {
	res := fn(ctx, keys)
	for i, k := range keys {
		if i < len(res) && res[i] != nil && res[i].Error == nil {
			l.Prime(ctx, k, res[i].Data)
		}
	}
}

// distinct returns the distinct values of key over rows, in order.
func distinct[T any, K comparable](rows []T, key func(T) K) []K {
	seen := make(map[K]bool, len(rows))
	var out []K
	for _, r := range rows {
		if k := key(r); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

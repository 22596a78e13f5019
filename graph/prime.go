package graph

import (
	"context"
	"slices"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/narrate/narrate/db"
)

// primeGenerations loads, before a page of generations is returned, what
// the operation asks of its nodes through loaders (story, logs and
// user.email), all in one transaction and one round trip, and caches the
// rows in the response's loaders, where the nodes' resolvers then find
// them. A page of generations with its nested fields thus costs two round
// trips: the page, then everything under it.
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

	// What to read: each nested field once, each shape of logs page once.
	type logPage struct {
		size  int
		after string
		key   *db.LogKey
		rows  []db.Keyed[db.Log]
	}
	var (
		storyIDs, userIDs []uuid.UUID
		logPages          []*logPage
		stories           []db.Story
		emails            []db.UserEmail
	)
	for _, f := range nodeFields(opCtx, fc.Field.Selections) {
		switch f.Name {
		case "story":
			if storyIDs == nil {
				storyIDs = distinct(rows, func(g db.Generation) uuid.UUID { return g.StoryID })
			}
		case "logs":
			size, after, ok := logPageArgs(f, opCtx.Variables)
			if !ok || slices.ContainsFunc(logPages, func(p *logPage) bool { return p.size == size && p.after == after }) {
				// Bad arguments are the resolver's to report.
				continue
			}
			key, err := decodeCursor[db.LogKey](cursorLog, nonEmpty(after))
			if err != nil {
				continue
			}
			logPages = append(logPages, &logPage{size: size, after: after, key: key})
		case "user":
			for _, uf := range graphql.CollectFields(opCtx, f.Selections, []string{"User"}) {
				if uf.Name == "email" && userIDs == nil {
					userIDs = distinct(rows, func(g db.Generation) uuid.UUID { return g.UserID })
				}
			}
		}
	}
	if storyIDs == nil && logPages == nil && userIDs == nil {
		// Nothing under the nodes waits on a loader.
		l.markPrimed(fc)
		return
	}
	genIDs := make([]uuid.UUID, len(rows))
	for i, g := range rows {
		genIDs[i] = g.ID
	}
	err := l.db.Read(ctx, l.session, func(q *db.Reads) {
		if storyIDs != nil {
			q.StoriesByID(storyIDs, l.cols.story, &stories)
		}
		for _, p := range logPages {
			q.LogsByGeneration(genIDs, db.PageParams[db.LogKey]{Limit: p.size + 1, After: p.key, Columns: l.cols.log}, &p.rows)
		}
		if userIDs != nil {
			q.UserEmails(userIDs, &emails)
		}
	})
	if err != nil {
		// The resolvers load what they need themselves, and report the
		// error if it persists.
		return
	}
	if storyIDs != nil {
		found := index(stories, storyID)
		for _, id := range storyIDs {
			l.story.get().Prime(ctx, id, found[id])
		}
	}
	for _, p := range logPages {
		for i, page := range byKeyIndex(p.rows, len(genIDs)) {
			l.logs.get().Prime(ctx, pageKey[uuid.UUID]{Parent: genIDs[i], Limit: p.size + 1, After: p.after}, page)
		}
	}
	if userIDs != nil {
		found := emailsByID(emails)
		for _, id := range userIDs {
			l.email.get().Prime(ctx, id, found[id])
		}
	}
	l.markPrimed(fc)
}

// primedFields are the fields of a primed page's nodes that find their
// rows cached (see primeGenerations), or never wait: user is made from the
// generation's own user id.
var primedFields = map[string]map[string]bool{
	"StoryGeneration": {"story": true, "logs": true, "user": true},
	"User":            {"email": true},
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

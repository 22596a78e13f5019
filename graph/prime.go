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
// trips: the page, then everything under it; and one when the page is read
// with them (generationPageNested).
//
// Left to the loaders alone, every node asks on a goroutine of its own, and
// under load the keys that arrive after the loader's short wait go in a
// batch of their own: the statements of a page would grow with its size.
// A connection nested in a list (the myGenerations of each story of a page)
// is not primed: priming each one would cost a statement per parent, while
// the loaders usually batch them all.
func (r *Resolver) primeGenerations(ctx context.Context, rows []db.Generation) {
	if len(rows) == 0 {
		return
	}
	n, ok := r.planNested(ctx)
	if !ok {
		return
	}
	l := r.loaders(ctx)
	if n.empty() {
		l.markPrimed(n.fc)
		return
	}
	genIDs := make([]uuid.UUID, len(rows))
	for i, g := range rows {
		genIDs[i] = g.ID
	}
	err := l.db.Read(ctx, l.session, func(q *db.Reads) {
		if n.stories {
			q.StoriesByID(distinct(rows, func(g db.Generation) uuid.UUID { return g.StoryID }), l.cols.story, &n.storyRows)
		}
		for _, p := range n.logPages {
			q.LogsByGeneration(genIDs, db.PageParams[db.LogKey]{Limit: p.size + 1, After: p.key, Columns: l.cols.log}, &p.rows)
		}
		if n.emails {
			q.UserEmails(distinct(rows, func(g db.Generation) uuid.UUID { return g.UserID }), &n.emailRows)
		}
	})
	if err != nil {
		// The resolvers load what they need themselves, and report the
		// error if it persists.
		return
	}
	n.prime(l, rows)
}

// generationPageNested reads one owner's page of generations (the first
// page.Page.Limit-1 of which are the connection's nodes) and, in the same
// round trip and snapshot, what primeGenerations would read under its
// nodes, which it caches as primeGenerations does.
func (r *Resolver) generationPageNested(ctx context.Context, page db.GenerationPage) ([]db.Generation, error) {
	l := r.loaders(ctx)
	n, ok := r.planNested(ctx)
	if !ok || n.empty() {
		rows, err := l.generationPage(ctx, page)
		if err == nil && ok {
			l.markPrimed(n.fc)
		}
		return rows, err
	}
	var rows []db.Generation
	nodes := page.Page.Limit - 1
	err := l.db.ReadSnapshot(ctx, l.session, func(q *db.Reads) {
		if n.stories {
			q.GenerationPageStories(page, &rows, l.cols.story, &n.storyRows)
		} else {
			q.GenerationPage(page, &rows)
		}
		for _, p := range n.logPages {
			q.LogsOfPage(page, nodes, db.PageParams[db.LogKey]{Limit: p.size + 1, After: p.key, Columns: l.cols.log}, &p.rows)
		}
		if n.emails {
			q.UserEmails([]uuid.UUID{page.Owner.UserID}, &n.emailRows)
		}
	})
	if err != nil {
		return nil, err
	}
	n.prime(l, rows[:min(len(rows), nodes)])
	return rows, nil
}

// nested is what the nodes of a page of generations ask for through
// loaders, and, once read, the rows.
type nested struct {
	// fc is the connection's field context.
	fc       *graphql.FieldContext
	stories  bool
	logPages []*logPage
	emails   bool

	storyRows []db.Story
	emailRows []db.UserEmail
}

// logPage is one shape of logs page asked of the nodes.
type logPage struct {
	size  int
	after string
	key   *db.LogKey
	rows  []db.Keyed[db.Log]
}

func (n *nested) empty() bool { return !n.stories && n.logPages == nil && !n.emails }

// planNested reads from the operation what the nodes of the generation
// connection resolved in ctx ask for: each nested field once, each shape of
// logs page once. ok is false when the connection is not to be primed: it
// is nested in a list, or there is no operation.
func (r *Resolver) planNested(ctx context.Context) (n nested, ok bool) {
	if !graphql.HasOperationContext(ctx) {
		return n, false
	}
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil || inList(fc) {
		return n, false
	}
	n.fc = fc
	opCtx := graphql.GetOperationContext(ctx)
	for _, f := range nodeFields(opCtx, fc.Field.Selections) {
		switch f.Name {
		case "story":
			n.stories = true
		case "logs":
			size, after, ok := logPageArgs(f, opCtx.Variables)
			if !ok || slices.ContainsFunc(n.logPages, func(p *logPage) bool { return p.size == size && p.after == after }) {
				// Bad arguments are the resolver's to report.
				continue
			}
			key, err := decodeCursor[db.LogKey](cursorLog, nonEmpty(after))
			if err != nil {
				continue
			}
			n.logPages = append(n.logPages, &logPage{size: size, after: after, key: key})
		case "user":
			for _, uf := range graphql.CollectFields(opCtx, f.Selections, []string{"User"}) {
				if uf.Name == "email" {
					n.emails = true
				}
			}
		}
	}
	return n, true
}

// prime caches the rows read for the nodes rows in the response's loaders,
// and marks the connection primed. The logs pages are keyed by the nodes'
// positions.
func (n *nested) prime(l *Loaders, rows []db.Generation) {
	if n.stories {
		found := index(n.storyRows, storyID)
		ids := distinct(rows, func(g db.Generation) uuid.UUID { return g.StoryID })
		for _, id := range ids {
			l.story.Prime(id, found[id], len(ids))
		}
	}
	for _, p := range n.logPages {
		for i, page := range byKeyIndex(p.rows, len(rows)) {
			l.logs.Prime(pageKey[uuid.UUID]{Parent: rows[i].ID, Limit: p.size + 1, After: p.after}, page, len(rows)*len(n.logPages))
		}
	}
	if n.emails {
		found := emailsByID(n.emailRows)
		ids := distinct(rows, func(g db.Generation) uuid.UUID { return g.UserID })
		for _, id := range ids {
			l.email.Prime(id, found[id], len(ids))
		}
	}
	l.markPrimed(n.fc)
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

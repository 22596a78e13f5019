package graph

import (
	"bytes"
	"context"
	"io"
	"math"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/graph/model"
)

// TestPlainObject: an object whose selection asks for plain fields only is
// written whole by plainObject, with aliases, __typename, a field asked
// twice through fragments, escaping and nullable values exactly as
// gqlgen writes them; a selection with any other field goes through
// gqlgen's field set.
func TestPlainObject(t *testing.T) {
	t.Parallel()
	story := &db.Story{
		ID:        uuid.MustParse("00000000-0000-4000-8000-000000000001"),
		Title:     `The "Brave" Fox`,
		Slug:      "the-brave-fox",
		Content:   "Once upon a time\n",
		Version:   3,
		UpdatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.FixedZone("CET", 3600)),
	}
	tests := []struct {
		name, query string
		want        string // "" when gqlgen's field set must marshal it
	}{
		{"plain fields", `{ story(slug: "s") { id title slug version } }`,
			`{"id":"00000000-0000-4000-8000-000000000001","title":"The \"Brave\" Fox","slug":"the-brave-fox","version":3}`},
		{"aliases and __typename", `{ story(slug: "s") { t: __typename name: title v: version } }`,
			`{"t":"Story","name":"The \"Brave\" Fox","v":3}`},
		{"a field asked twice", `{ story(slug: "s") { title ...F ... on Story { title content } } } fragment F on Story { slug title }`,
			`{"title":"The \"Brave\" Fox","slug":"the-brave-fox","content":"Once upon a time\n"}`},
		{"timestamps in UTC", `{ story(slug: "s") { updatedAt } }`,
			`{"updatedAt":"2025-01-02T02:04:05.000006Z"}`},
		{"a field with a resolver", `{ story(slug: "s") { title myGenerations { nodes { id } } } }`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, ec, sel := storySelection(t, tt.query)
			if tt.want == "" {
				if m := ec.plain_Story(ctx, graphql.CollectFields(ec.OperationContext, sel, storyImplementors), story); m != nil {
					t.Fatalf("plain_Story took a selection with a resolver field")
				}
				return
			}
			wantPlain[*db.Story](t, ec._Story(ctx, sel, story), tt.want)
		})
	}
}

// TestPlainNullableFields: a nullable plain field writes null for a nil
// value, through plainObject and through gqlgen's field set alike.
func TestPlainNullableFields(t *testing.T) {
	t.Parallel()
	cursor := "abc"
	for _, tt := range []struct {
		info *model.PageInfo
		want string
	}{
		{&model.PageInfo{HasNextPage: true, EndCursor: &cursor}, `{"hasNextPage":true,"endCursor":"abc"}`},
		{&model.PageInfo{}, `{"hasNextPage":false,"endCursor":null}`},
	} {
		ctx, ec, sel := selection(t, `{ stories { pageInfo { hasNextPage endCursor } } }`, "stories", "pageInfo")
		var buf bytes.Buffer
		ec._PageInfo(ctx, sel, tt.info).MarshalGQL(&buf)
		if buf.String() != tt.want {
			t.Errorf("got %s, want %s", buf.String(), tt.want)
		}
	}
}

// wantPlain checks that m is a plainObject of T and writes want.
func wantPlain[T any](t *testing.T, m graphql.Marshaler, want string) {
	t.Helper()
	if _, ok := m.(*plainObject[T]); !ok {
		t.Fatalf("marshaled by %T, want *plainObject", m)
	}
	var buf bytes.Buffer
	m.MarshalGQL(&buf)
	if buf.String() != want {
		t.Errorf("got  %s\nwant %s", buf.String(), want)
	}
}

// storySelection is selection for the story field of query.
func storySelection(t *testing.T, query string) (context.Context, *executionContext, ast.SelectionSet) {
	t.Helper()
	return selection(t, query, "story")
}

// selection parses query against the real schema and returns an
// execution context for it and the selection set at path.
func selection(t *testing.T, query string, path ...string) (context.Context, *executionContext, ast.SelectionSet) {
	t.Helper()
	es := realSchema()
	doc, errs := gqlparser.LoadQuery(es.Schema(), query)
	if errs != nil {
		t.Fatalf("query does not validate: %v", errs)
	}
	oc := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0], RecoverFunc: graphql.DefaultRecover}
	ctx := graphql.WithOperationContext(graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, graphql.DefaultRecover), oc)
	sel := doc.Operations[0].SelectionSet
	for _, name := range path {
		sel = fieldNamed(t, sel, name).SelectionSet
	}
	return ctx, newExecutionContext(oc, es.(*executableSchema), nil), sel
}

// TestPlainWriters: the writers plain fields use write exactly what
// gqlgen's marshalers write for the same values.
func TestPlainWriters(t *testing.T) {
	t.Parallel()
	marshaled := func(m graphql.Marshaler) string {
		var b bytes.Buffer
		m.MarshalGQL(&b)
		return b.String()
	}
	written := func(write func(w io.Writer)) string {
		var b bytes.Buffer
		write(&b)
		return b.String()
	}
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rreturn", "\x00\x01\x1f\x7f", "é → 🦊", "bad \xff utf-8", "</script>&"} {
		if got, want := written(func(w io.Writer) { writeString(w, s) }), marshaled(graphql.MarshalString(s)); got != want {
			t.Errorf("writeString(%q) = %s, want %s", s, got, want)
		}
	}
	for _, n := range []int{0, -1, 42, math.MaxInt, math.MinInt} {
		if got, want := written(func(w io.Writer) { writeInt(w, n) }), marshaled(graphql.MarshalInt(n)); got != want {
			t.Errorf("writeInt(%d) = %s, want %s", n, got, want)
		}
	}
	for _, b := range []bool{true, false} {
		if got, want := written(func(w io.Writer) { writeBool(w, b) }), marshaled(graphql.MarshalBoolean(b)); got != want {
			t.Errorf("writeBool(%v) = %s, want %s", b, got, want)
		}
	}
}

// TestPlainConnection: a connection whose nodes' selection is plain is
// written whole, its nodes' fields collected once; an empty list is [].
func TestPlainConnection(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	conn := &model.GenerationLogConnection{Nodes: []db.Log{
		{ID: uuid.MustParse("00000000-0000-4000-8000-000000000001"), Event: "queued", OccurredAt: at},
		{ID: uuid.MustParse("00000000-0000-4000-8000-000000000002"), Event: `chunk "1"`, OccurredAt: at.Add(time.Second)},
	}}
	const query = `{ viewer { generations { nodes { logs { __typename nodes { event at: occurredAt ...L } } } } } } fragment L on GenerationLog { id event }`
	for _, tt := range []struct {
		conn *model.GenerationLogConnection
		want string
	}{
		{conn, `{"__typename":"GenerationLogConnection","nodes":[` +
			`{"event":"queued","at":"2025-01-02T03:04:05.000000Z","id":"00000000-0000-4000-8000-000000000001"},` +
			`{"event":"chunk \"1\"","at":"2025-01-02T03:04:06.000000Z","id":"00000000-0000-4000-8000-000000000002"}]}`},
		{&model.GenerationLogConnection{}, `{"__typename":"GenerationLogConnection","nodes":[]}`},
	} {
		ctx, ec, sel := selection(t, query, "viewer", "generations", "nodes", "logs")
		wantPlain[*model.GenerationLogConnection](t, ec._GenerationLogConnection(ctx, sel, tt.conn), tt.want)
	}
}

// TestPlainSelection: a selection is plain only when every field it asks
// for, at every depth and through fragments, is plain.
func TestPlainSelection(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		query string
		want  bool
	}{
		{`{ stories { nodes { id title } } }`, true},
		{`{ stories { __typename nodes { ...S } } } fragment S on Story { slug version }`, true},
		{`{ stories { nodes { title myGenerations { nodes { id } } } } }`, false},
		{`{ stories { nodes { ... on Story { myGenerations { nodes { id } } } } } }`, false},
		{`{ stories { pageInfo { hasNextPage } } }`, false}, // a non-null pointer: not plain
	} {
		_, _, sel := selection(t, tt.query, "stories")
		if got := plainSelection(sel); got != tt.want {
			t.Errorf("plainSelection(%s) = %v, want %v", tt.query, got, tt.want)
		}
	}
}

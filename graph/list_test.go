package graph

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// TestMayWait: a list's elements are marshaled one after another only
// when nothing selected under them, at any depth and through fragments,
// has a resolver that may wait.
func TestMayWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		// path leads from the operation to the list field whose element
		// selection is judged.
		path []string
		// primed: the list belongs to a page primeGenerations primed.
		primed bool
		want   bool
	}{
		{"plain story fields", `{ stories(first: 50) { nodes { id title slug version } } }`,
			[]string{"stories", "nodes"}, false, false},
		{"a generation's story and logs", `{ viewer { generations(first: 20) { nodes { status story { title } logs(first: 5) { nodes { event } } } } } }`,
			[]string{"viewer", "generations", "nodes"}, false, true},
		{"log events under them", `{ viewer { generations(first: 20) { nodes { logs(first: 5) { nodes { event occurredAt } } } } } }`,
			[]string{"viewer", "generations", "nodes", "logs", "nodes"}, false, false},
		{"a resolver below a plain field", `{ viewer { generations { edges { cursor node { story { title } } } } } }`,
			[]string{"viewer", "generations", "edges"}, false, true},
		{"plain edges", `{ viewer { generations { edges { cursor node { status progress } } } } }`,
			[]string{"viewer", "generations", "edges"}, false, false},
		{"a resolver in a fragment", `{ viewer { generations { nodes { ...G } } } } fragment G on StoryGeneration { user { email } }`,
			[]string{"viewer", "generations", "nodes"}, false, true},
		{"a resolver in an inline fragment", `{ viewer { generations { nodes { ... on StoryGeneration { parts { url } } } } } }`,
			[]string{"viewer", "generations", "nodes"}, false, true},
		{"plain fields in fragments", `{ stories { nodes { ...S ... on Story { slug } } } } fragment S on Story { id title }`,
			[]string{"stories", "nodes"}, false, false},
		{"a primed page's story and logs", `{ viewer { generations(first: 20) { nodes { status story { title } logs(first: 5) { nodes { event } } user { email } } } } }`,
			[]string{"viewer", "generations", "nodes"}, true, false},
		{"a primed page's edges", `{ viewer { generations(first: 20) { edges { node { story { slug } } } } } }`,
			[]string{"viewer", "generations", "edges"}, true, false},
		{"what priming does not read", `{ viewer { generations { nodes { story { myGenerations { nodes { id } } } } } } }`,
			[]string{"viewer", "generations", "nodes"}, true, true},
		{"a primed page's parts", `{ viewer { generations { nodes { parts { url } } } } }`,
			[]string{"viewer", "generations", "nodes"}, true, true},
		{"a primed page's user profile", `{ viewer { generations { nodes { user { profile { displayName } } } } } }`,
			[]string{"viewer", "generations", "nodes"}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, errs := gqlparser.LoadQuery(realSchema().Schema(), tt.query)
			if errs != nil {
				t.Fatalf("query does not validate: %v", errs)
			}
			sel := doc.Operations[0].SelectionSet
			for _, name := range tt.path {
				sel = fieldNamed(t, sel, name).SelectionSet
			}
			var cached map[string]map[string]bool
			if tt.primed {
				cached = primedFields
			}
			if got := mayWait(sel, cached); got != tt.want {
				t.Errorf("mayWait = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConcurrentFieldsTable: the generated table knows the resolvers
// that wait, so a stale table (a new resolver field, generation not run)
// shows here as well as in `make check`.
func TestConcurrentFieldsTable(t *testing.T) {
	t.Parallel()
	for _, f := range []struct{ object, field string }{
		{"StoryGeneration", "story"}, {"StoryGeneration", "logs"}, {"User", "profile"}, {"Story", "myGenerations"},
	} {
		if !concurrentFields[f.object][f.field] {
			t.Errorf("concurrentFields lacks %s.%s", f.object, f.field)
		}
	}
	if concurrentFields["Story"]["title"] || concurrentFields["GenerationLog"] != nil {
		t.Error("concurrentFields holds fields without resolvers")
	}
}

func fieldNamed(t *testing.T, sel ast.SelectionSet, name string) *ast.Field {
	t.Helper()
	for _, s := range sel {
		if f, ok := s.(*ast.Field); ok && f.Name == name {
			return f
		}
	}
	t.Fatalf("no field %q in the selection", name)
	return nil
}

// TestResolveObjectFieldInPlace: under a list marshaled in order, a
// concurrent field is resolved at once, with gqlgen's bookkeeping: a null
// non-null field marks the object invalid, and a panic becomes the
// field's error and null. Elsewhere the field waits for the field set's
// Dispatch, as gqlgen schedules it.
func TestResolveObjectFieldInPlace(t *testing.T) {
	t.Parallel()
	oc := &graphql.OperationContext{RecoverFunc: func(ctx context.Context, v any) error { return fmt.Errorf("panic: %v", v) }}
	fields := []graphql.CollectedField{{Field: &ast.Field{Name: "a"}}, {Field: &ast.Field{Name: "b"}}, {Field: &ast.Field{Name: "c"}}}
	base := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, oc.RecoverFunc)
	inPlace := context.WithValue(base, inPlaceKey{}, true)

	out := graphql.NewFieldSet(fields)
	deferred := graphql.NewDeferredGroup(inPlace)
	resolveObjectField(inPlace, out, fields[0], oc, &deferred, 0, true, true, func(context.Context) graphql.Marshaler { return graphql.MarshalString("x") })
	resolveObjectField(inPlace, out, fields[1], oc, &deferred, 1, true, true, func(context.Context) graphql.Marshaler { return graphql.Null })
	resolveObjectField(inPlace, out, fields[2], oc, &deferred, 2, true, false, func(context.Context) graphql.Marshaler { panic("boom") })
	if out.Values[0] == nil || out.Values[1] != graphql.Null || out.Values[2] != graphql.Null {
		t.Fatalf("values %v, want x, null, null resolved in place", out.Values)
	}
	if out.Invalids != 1 {
		t.Errorf("Invalids = %d, want 1 (the null non-null field)", out.Invalids)
	}
	if errs := graphql.GetErrors(inPlace); len(errs) != 1 || !strings.Contains(errs[0].Message, "boom") {
		t.Errorf("errors %v, want the panic's", errs)
	}

	later := graphql.NewFieldSet(fields[:1])
	resolveObjectField(base, later, fields[0], oc, &deferred, 0, true, true, func(context.Context) graphql.Marshaler { return graphql.MarshalString("x") })
	if later.Values[0] != nil {
		t.Fatal("outside an in-order list the field was resolved before Dispatch")
	}
	later.Dispatch(base)
	if later.Values[0] == nil {
		t.Fatal("Dispatch did not resolve the field")
	}
}

// TestMarshalListInPlaceOnlyWhenNothingWaits: elements run in order when
// the list has one element, but only a selection that cannot wait lets
// their objects' fields run in place; a single element whose story and
// logs wait must still overlap the two.
func TestMarshalListInPlaceOnlyWhenNothingWaits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		query  string
		n      int
		want   bool
		inline bool
	}{
		{"one element that waits", `{ viewer { generations { nodes { story { title } logs { nodes { event } } } } } }`, 1, false, true},
		{"one plain element", `{ viewer { generations { nodes { status } } } }`, 1, true, true},
		{"many plain elements", `{ viewer { generations { nodes { status } } } }`, 3, true, true},
		{"many that wait", `{ viewer { generations { nodes { story { title } } } } }`, 3, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, errs := gqlparser.LoadQuery(realSchema().Schema(), tt.query)
			if errs != nil {
				t.Fatal(errs)
			}
			sel := fieldNamed(t, fieldNamed(t, fieldNamed(t, doc.Operations[0].SelectionSet, "viewer").SelectionSet, "generations").SelectionSet, "nodes").SelectionSet
			ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, graphql.DefaultRecover)
			var mu sync.Mutex
			inPlace := map[bool]int{}
			goroutines := map[int]bool{}
			caller := goid()
			marshalList(ctx, sel, tt.n, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
				v, _ := ctx.Value(inPlaceKey{}).(bool)
				mu.Lock()
				defer mu.Unlock()
				inPlace[v]++
				goroutines[goid()] = true
				return graphql.Null
			})
			if inPlace[tt.want] != tt.n {
				t.Errorf("in place %v, want %v for all %d elements", inPlace, tt.want, tt.n)
			}
			if inline := len(goroutines) == 1 && goroutines[caller]; inline != tt.inline {
				t.Errorf("elements marshaled on the caller's goroutine: %v, want %v", inline, tt.inline)
			}
		})
	}
}

// goid is the current goroutine's id, from its stack header.
func goid() int {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	id, _ := strconv.Atoi(strings.Fields(strings.TrimPrefix(string(buf[:n]), "goroutine "))[0])
	return id
}

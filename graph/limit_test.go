package graph

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"
)

// realSchema is the real schema with the real complexity functions.
// The resolvers are never called: limits are checked before execution.
var realSchema = sync.OnceValue(func() graphql.ExecutableSchema {
	return NewExecutableSchema(Config{Resolvers: &Resolver{}, Complexity: Complexity()})
})

// checkLimits parses and validates query against the real schema, coerces
// its variables as gqlgen's executor does, and runs the limits on it.
func checkLimits(t *testing.T, l Limits, query, operation string, vars map[string]any) *gqlerror.Error {
	t.Helper()
	es := realSchema()
	doc, errs := gqlparser.LoadQuery(es.Schema(), query)
	if errs != nil {
		t.Fatalf("query does not validate: %v\n%s", errs, query)
	}
	op := doc.Operations.ForName(operation)
	if op == nil {
		t.Fatalf("no operation %q in\n%s", operation, query)
	}
	coerced, err := validator.VariableValues(es.Schema(), op, vars)
	if err != nil {
		t.Fatalf("variables: %v", err)
	}
	if err := l.Validate(es); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return l.MutateOperationContext(context.Background(), &graphql.OperationContext{
		Doc:           doc,
		OperationName: operation,
		Variables:     coerced,
	})
}

// wantTooComplex fails unless err refuses the operation with
// QUERY_TOO_COMPLEX and a message containing want.
func wantTooComplex(t *testing.T, err *gqlerror.Error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("operation passed, want QUERY_TOO_COMPLEX (%s)", want)
	}
	if err.Extensions["code"] != CodeQueryTooComplex {
		t.Errorf("extensions.code = %v, want %s", err.Extensions["code"], CodeQueryTooComplex)
	}
	if !strings.Contains(err.Message, want) {
		t.Errorf("message %q lacks %q", err.Message, want)
	}
}

// chain is a query nesting exactly n fields: story, then its generations'
// nodes' story, and so on. It ends in __typename, which the depth does not
// count, so any n is possible.
func chain(n int) string {
	steps := []string{"myGenerations(first: 1)", "nodes", "story"}
	var b strings.Builder
	b.WriteString(`{ story(slug: "a") {`)
	for i := range n - 1 {
		b.WriteString(" " + steps[i%len(steps)] + " {")
	}
	b.WriteString(" __typename")
	b.WriteString(strings.Repeat(" }", n))
	b.WriteString(" }")
	return b.String()
}

func TestLimitsDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		query     string
		operation string
		depth     int // the operation's depth
	}{
		{"one field", `{ viewer { id } }`, "", 2},
		{"chain at the default", chain(DefaultMaxDepth), "", DefaultMaxDepth},
		{"chain of 40", chain(40), "", 40},
		{"the deepest branch counts, not the sum", `{ a: viewer { id } b: stories { nodes { id } } c: viewer { email } }`, "", 3},
		{"inline fragments add no level", `{ viewer { ... on User { generations { nodes { id } } } } }`, "", 4},
		{"fragment spreads add no level", `
			fragment G on StoryGeneration { story { myGenerations { nodes { id } } } }
			fragment U on User { generations { nodes { ...G } } }
			{ viewer { ...U } }`, "", 7},
		{"introspection is not counted", `{ viewer { id } __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }`, "", 2},
		{"the named operation is measured", "query Shallow { viewer { id } }\nquery Deep " + chain(20), "Shallow", 2},
		{"the named deep operation is measured", "query Shallow { viewer { id } }\nquery Deep " + chain(20), "Deep", 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := checkLimits(t, Limits{MaxDepth: tt.depth}, tt.query, tt.operation, nil); err != nil {
				t.Errorf("at the limit of %d: %v", tt.depth, err)
			}
			err := checkLimits(t, Limits{MaxDepth: tt.depth - 1}, tt.query, tt.operation, nil)
			wantTooComplex(t, err, fmt.Sprintf("nested %d levels deep, more than the limit of %d", tt.depth, tt.depth-1))
			if err := checkLimits(t, Limits{}, tt.query, tt.operation, nil); err != nil {
				t.Errorf("with no limits: %v", err)
			}
		})
	}
}

func TestLimitsComplexity(t *testing.T) {
	t.Parallel()
	// stories(first: 100) { nodes { id } } costs 1 + 100 × (nodes 1 + id 1).
	const hundredStories = `stories(first: 100) { nodes { id } }`
	var atDefault strings.Builder
	atDefault.WriteString("{")
	for i := range 99 {
		fmt.Fprintf(&atDefault, " s%d: %s", i, hundredStories)
	}
	atDefault.WriteString(` last: stories(first: 50) { nodes { id } } }`)

	tests := []struct {
		name  string
		query string
		vars  map[string]any
		cost  int
	}{
		{"plain fields", `{ viewer { id email } }`, nil, 3},
		{"a page is priced by its size", `{ stories(first: 10) { nodes { id } } }`, nil, 21},
		{"an omitted first costs the schema's default", `{ stories { nodes { id } } }`, nil, 1 + defaultPageSize*2},
		{"an explicit null first costs the default", `{ stories(first: null) { nodes { id } } }`, nil, 1 + defaultPageSize*2},
		{"an empty page costs one row", `{ stories(first: 0) { nodes { id } } }`, nil, 3},
		{"a negative first costs the default", `{ stories(first: -5) { nodes { id } } }`, nil, 1 + defaultPageSize*2},
		{"log pages default to their own size", `{ generation(id: "00000000-0000-0000-0000-000000000001") { logs { nodes { id } } } }`,
			nil, 1 + 1 + defaultLogPageSize*2},
		{"an explicit null first costs the log default", `{ generation(id: "00000000-0000-0000-0000-000000000001") { logs(first: null) { nodes { id } } } }`,
			nil, 1 + 1 + defaultLogPageSize*2},
		{"variables set the page size", `query($n: Int) { stories(first: $n) { nodes { id } } }`, map[string]any{"n": 50}, 101},
		{"nested pages multiply", `{ stories(first: 100) { nodes { myGenerations(first: 100) { nodes { logs(first: 100) { nodes { id } } } } } } }`,
			nil, 1 + 100*(1+(1+100*(1+(1+100*2)))),
		},
		{"user generations", `{ viewer { generations(first: 50, status: COMPLETED) { nodes { id story { title } } } } }`,
			nil, 1 + (1 + 50*(1+1+2))},
		{"fragments count", `fragment S on Story { id title } { stories(first: 5) { nodes { ...S ... on Story { slug } } } }`,
			nil, 1 + 5*(1+3)},
		{"aliases add up", `{ a: stories(first: 100) { nodes { id } } b: stories(first: 100) { nodes { id } } }`, nil, 402},
		{"exactly the default budget", atDefault.String(), nil, DefaultMaxComplexity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := checkLimits(t, Limits{MaxComplexity: tt.cost}, tt.query, "", tt.vars); err != nil {
				t.Errorf("at the limit of %d: %v", tt.cost, err)
			}
			err := checkLimits(t, Limits{MaxComplexity: tt.cost - 1}, tt.query, "", tt.vars)
			wantTooComplex(t, err, fmt.Sprintf("complexity %d, more than the limit of %d", tt.cost, tt.cost-1))
		})
	}
}

// TestLimitsDefaults checks the shipped limits let real clients' queries
// through and stop the first operation past them.
func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	defaults := Limits{MaxDepth: DefaultMaxDepth, MaxComplexity: DefaultMaxComplexity}
	var overBudget strings.Builder
	overBudget.WriteString("{ __typename")
	for i := range 99 {
		fmt.Fprintf(&overBudget, " s%d: stories(first: 100) { nodes { id } }", i)
	}
	overBudget.WriteString(` last: stories(first: 50) { nodes { id } } }`)

	tests := []struct {
		name  string
		query string
		want  string // empty: passes
	}{
		{"a story's generations' logs through edges", `{ stories(first: 10) { edges { cursor node { title myGenerations(first: 5) { edges { node { status logs(first: 20) { edges { node { event occurredAt } } } } } } } } } }`, ""},
		{"a page of 50 generations with their story and 20 logs", `{ viewer { generations(first: 50) { nodes { id status progress story { title } logs(first: 20) { nodes { event occurredAt } } } } } }`, ""},
		{"GraphiQL's schema query", `{ __schema { types { name fields { name type { name ofType { name ofType { name ofType { name ofType { name ofType { name ofType { name } } } } } } } } } } }`, ""},
		{"one level too deep", chain(DefaultMaxDepth + 1), "nested 13 levels deep"},
		{"one over the budget", overBudget.String(), fmt.Sprintf("complexity %d,", DefaultMaxComplexity+1)},
		{"pages of pages of pages", `{ stories(first: 100) { nodes { myGenerations(first: 100) { nodes { logs(first: 100) { nodes { id } } } } } } }`, "complexity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkLimits(t, defaults, tt.query, "", nil)
			if tt.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			wantTooComplex(t, err, tt.want)
		})
	}
}

// TestLimitsErrorReachesClient checks the refusal keeps its code through
// the error presenter.
func TestLimitsErrorReachesClient(t *testing.T) {
	t.Parallel()
	err := checkLimits(t, Limits{MaxDepth: 3}, chain(4), "", nil)
	wantTooComplex(t, err, "nested 4 levels deep")
	logger, _ := newLogBuffer()
	got, body := present(t, context.Background(), logger, err)
	if got.Extensions["code"] != CodeQueryTooComplex || !strings.Contains(got.Message, "more than the limit of 3") {
		t.Errorf("client receives %s", body)
	}
}

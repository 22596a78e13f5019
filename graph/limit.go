package graph

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/generation"
)

// The default depth and budget, as limit.Defaults() sets them. The
// deepest useful query (a story's generations' logs through edges and
// nodes) nests 9 fields; a page of 50 generations with their story and 20
// log events costs about 5,000.
const (
	DefaultMaxDepth      = 12
	DefaultMaxComplexity = 20000
)

// PaidFields are the mutations that cost money at the voice provider or
// queue paid work: at most one of them may run per operation.
var PaidFields = []string{"createVoiceSample", "verifyVoiceSample", "startGeneration"}

// Limits refuses, after validation and before any resolver runs, an
// operation that:
//   - carries a string with a NUL byte or invalid UTF-8 (BAD_USER_INPUT:
//     PostgreSQL could not store it, and no client means it);
//   - asks for introspection while it is off (GRAPHQL_VALIDATION_FAILED);
//   - nests deeper than MaxDepth, costs more than its budget (MaxComplexity,
//     or MaxAnonymousComplexity without a viewer), uses more than
//     MaxAliases aliases or MaxRootFields root fields, or asks for more than
//     one introspection root (QUERY_TOO_COMPLEX);
//   - runs more than one paid mutation (BAD_USER_INPUT).
//
// Every field is priced, introspection included: a list of the schema's
// own types or fields costs what the schema makes it return, so aliasing
// or nesting introspection is bounded like any other query. Zero values
// turn a limit off (except the introspection root rule).
type Limits struct {
	MaxDepth               int
	MaxComplexity          int
	MaxAnonymousComplexity int
	MaxAliases             int
	MaxRootFields          int
	// DisableIntrospection refuses __schema and __type (not __typename).
	DisableIntrospection bool

	es graphql.ExecutableSchema
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = &Limits{}

// ExtensionName names the extension.
func (*Limits) ExtensionName() string { return "Limits" }

// Validate keeps the schema to compute complexity with.
func (l *Limits) Validate(es graphql.ExecutableSchema) error {
	l.es = es
	return nil
}

// MutateOperationContext checks the operation about to run.
func (l *Limits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Doc.Operations.ForName(opCtx.OperationName)
	if op == nil {
		return nil
	}
	if err := checkStrings(opCtx); err != nil {
		return err
	}
	s := l.shape(op)
	switch {
	case s.introspection > 0 && l.DisableIntrospection:
		err := gqlerror.Errorf("introspection is disabled on this server")
		err.Extensions = map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}
		return err
	case s.introspection > 1:
		return tooComplex(fmt.Sprintf("operation asks for introspection %d times; at most once per operation", s.introspection))
	case l.MaxRootFields > 0 && s.rootFields > l.MaxRootFields:
		return tooComplex(fmt.Sprintf("operation selects %d root fields, more than the limit of %d", s.rootFields, l.MaxRootFields))
	case l.MaxAliases > 0 && s.aliases > l.MaxAliases:
		return tooComplex(fmt.Sprintf("operation uses %d aliases, more than the limit of %d", s.aliases, l.MaxAliases))
	case op.Operation == ast.Mutation && s.paid > 1:
		return inputError(fmt.Sprintf("operation runs %d paid mutations (%s); send one per request", s.paid, strings.Join(PaidFields, ", ")))
	}
	if d := depth(op.SelectionSet, 0); l.MaxDepth > 0 && d > l.MaxDepth {
		return tooComplex(fmt.Sprintf("operation is nested %d levels deep, more than the limit of %d", d, l.MaxDepth))
	}
	budget, who := l.MaxComplexity, ""
	if ViewerFrom(ctx).Anonymous() && l.MaxAnonymousComplexity > 0 {
		budget, who = l.MaxAnonymousComplexity, " for anonymous requests (sign in for more)"
	}
	if budget <= 0 {
		return nil
	}
	if c := l.cost(ctx, op.SelectionSet, opCtx.Variables, budget); c > budget {
		return tooComplex(fmt.Sprintf("operation has complexity %d, more than the limit of %d%s", c, budget, who))
	}
	return nil
}

func tooComplex(msg string) *gqlerror.Error {
	err := gqlerror.Errorf("%s", msg)
	err.Extensions = map[string]any{"code": CodeQueryTooComplex}
	return err
}

func inputError(msg string) *gqlerror.Error {
	err := gqlerror.Errorf("%s", msg)
	err.Extensions = map[string]any{"code": CodeBadUserInput}
	return err
}

// shape counts what the structural limits look at, with fragments
// expanded where they are spread (validation has refused cycles).
type shape struct {
	rootFields, aliases, introspection, paid int
}

func (l *Limits) shape(op *ast.OperationDefinition) shape {
	var s shape
	var walk func(set ast.SelectionSet, root bool)
	walk = func(set ast.SelectionSet, root bool) {
		for _, sel := range set {
			switch f := sel.(type) {
			case *ast.Field:
				if f.Alias != "" && f.Alias != f.Name {
					s.aliases++
				}
				if root {
					switch {
					case f.Name == "__schema" || f.Name == "__type":
						s.introspection++
						s.rootFields++
					case f.Name == "__typename":
					default:
						s.rootFields++
					}
					for _, p := range PaidFields {
						if f.Name == p {
							s.paid++
						}
					}
				}
				walk(f.SelectionSet, false)
			case *ast.InlineFragment:
				walk(f.SelectionSet, root)
			case *ast.FragmentSpread:
				if f.Definition != nil {
					walk(f.Definition.SelectionSet, root)
				}
			}
		}
	}
	walk(op.SelectionSet, true)
	return s
}

// depth is the deepest field nesting under set. Introspection fields are
// not counted: GraphiQL's own schema query nests type references deeply;
// the cost below bounds what nested introspection can make the server do.
func depth(set ast.SelectionSet, level int) int {
	deepest := level
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			d = depth(s.SelectionSet, level+1)
		case *ast.InlineFragment:
			d = depth(s.SelectionSet, level)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				d = depth(s.Definition.SelectionSet, level)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// cost prices every field of set: 1 plus its children, connections by
// their page size (Complexity). Introspection is priced at the number of
// values its answer holds, counted against the schema (introspectionCost).
// The sums saturate rather than overflow.
func (l *Limits) cost(ctx context.Context, set ast.SelectionSet, vars map[string]any, budget int) int {
	total := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				total = saturatingAdd(total, l.introspectionCost(s, vars, budget))
				continue
			}
			child := l.cost(ctx, s.SelectionSet, vars, budget)
			total = saturatingAdd(total, l.fieldCost(ctx, s, child, vars))
		case *ast.InlineFragment:
			total = saturatingAdd(total, l.cost(ctx, s.SelectionSet, vars, budget))
		case *ast.FragmentSpread:
			if s.Definition != nil {
				total = saturatingAdd(total, l.cost(ctx, s.Definition.SelectionSet, vars, budget))
			}
		}
	}
	return total
}

func (l *Limits) fieldCost(ctx context.Context, f *ast.Field, child int, vars map[string]any) int {
	if f.ObjectDefinition != nil && !strings.HasPrefix(f.Name, "__") {
		if c, ok := l.es.Complexity(ctx, f.ObjectDefinition.Name, f.Name, child, f.ArgumentMap(vars)); ok && c >= 1 {
			return c
		}
	}
	return saturatingAdd(1, child)
}

func saturatingAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

func saturatingMul(a, b int) int {
	if a != 0 && b > math.MaxInt/a {
		return math.MaxInt
	}
	return a * b
}

// checkStrings refuses a NUL byte or invalid UTF-8 in any string the
// operation carries, in its variables or written in the document, before
// it can reach PostgreSQL (which stores neither) as an internal error.
func checkStrings(opCtx *graphql.OperationContext) *gqlerror.Error {
	if !utf8.ValidString(opCtx.RawQuery) {
		return inputError("the query is not valid UTF-8")
	}
	bad := func(s string) bool { return strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) }
	var inValue func(v any) bool
	inValue = func(v any) bool {
		switch v := v.(type) {
		case string:
			return bad(v)
		case map[string]any:
			for k, x := range v {
				if bad(k) || inValue(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if inValue(x) {
					return true
				}
			}
		}
		return false
	}
	for name, v := range opCtx.Variables {
		if inValue(v) {
			return inputError(fmt.Sprintf("variable $%s holds a NUL character or invalid UTF-8", name))
		}
	}
	var inLiteral func(v *ast.Value) bool
	inLiteral = func(v *ast.Value) bool {
		if v == nil {
			return false
		}
		if (v.Kind == ast.StringValue || v.Kind == ast.BlockValue) && bad(v.Raw) {
			return true
		}
		for _, c := range v.Children {
			if inLiteral(c.Value) {
				return true
			}
		}
		return false
	}
	var inSet func(set ast.SelectionSet) bool
	inSet = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			var args ast.ArgumentList
			var children ast.SelectionSet
			switch s := sel.(type) {
			case *ast.Field:
				args, children = s.Arguments, s.SelectionSet
			case *ast.InlineFragment:
				children = s.SelectionSet
			case *ast.FragmentSpread:
				continue // fragments are checked once each, below
			}
			for _, a := range args {
				if inLiteral(a.Value) {
					return true
				}
			}
			if inSet(children) {
				return true
			}
		}
		return false
	}
	for _, op := range opCtx.Doc.Operations {
		for _, v := range op.VariableDefinitions {
			if inLiteral(v.DefaultValue) {
				return inputError("a variable's default value holds a NUL character or invalid UTF-8")
			}
		}
		if inSet(op.SelectionSet) {
			return inputError("an argument holds a NUL character or invalid UTF-8")
		}
	}
	for _, f := range opCtx.Doc.Fragments {
		if inSet(f.SelectionSet) {
			return inputError("an argument holds a NUL character or invalid UTF-8")
		}
	}
	return nil
}

// Complexity prices connections by their page size, so a client cannot
// multiply the work by nesting large pages.
func Complexity() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Stories = func(child int, first *int, _, _ *string) int {
		return pageCost(child, first, defaultPageSize)
	}
	c.Story.MyGenerations = func(child int, first *int, _ *string) int {
		return pageCost(child, first, defaultPageSize)
	}
	c.StoryGeneration.Logs = func(child int, first *int, _ *string) int {
		return pageCost(child, first, defaultLogPageSize)
	}
	c.User.Generations = func(child int, first *int, _ *string, _ *generation.Status, _ *uuid.UUID) int {
		return pageCost(child, first, defaultPageSize)
	}
	return c
}

// pageCost is a page's price. Sizes over the maximum are refused by the
// resolver anyway; they are capped here so the product cannot overflow.
func pageCost(child int, first *int, def int) int {
	n := def
	if first != nil && *first >= 0 {
		n = min(*first, maxPageSize+1)
	}
	return saturatingAdd(1, saturatingMul(max(n, 1), child))
}

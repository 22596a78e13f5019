package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/narrate/narrate/generation"
)

// Default limits. The deepest useful query (a story's generations' logs
// through edges and nodes) nests 9 fields; a page of 50 generations with
// their story and 20 log events costs about 5,000.
const (
	DefaultMaxDepth      = 12
	DefaultMaxComplexity = 20000
)

// Limits refuses operations nested deeper than MaxDepth or costing more
// than MaxComplexity, with QUERY_TOO_COMPLEX, after validation and before
// any resolver runs. gqlgen has a complexity limit but no depth limit, and
// its complexity error has its own code.
type Limits struct {
	MaxDepth      int
	MaxComplexity int
	es            graphql.ExecutableSchema
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
	if d := depth(op.SelectionSet, opCtx.Doc.Fragments, 0); l.MaxDepth > 0 && d > l.MaxDepth {
		return tooComplex(fmt.Sprintf("operation is nested %d levels deep, more than the limit of %d", d, l.MaxDepth))
	}
	if c := complexity.Calculate(ctx, l.es, op, opCtx.Variables); l.MaxComplexity > 0 && c > l.MaxComplexity {
		return tooComplex(fmt.Sprintf("operation has complexity %d, more than the limit of %d", c, l.MaxComplexity))
	}
	return nil
}

func tooComplex(msg string) *gqlerror.Error {
	err := gqlerror.Errorf("%s", msg)
	err.Extensions = map[string]any{"code": CodeQueryTooComplex}
	return err
}

// depth is the deepest field nesting under set. Introspection fields are
// not counted: GraphiQL's own schema query nests type references deeply
// and costs nothing at runtime. Fragment cycles are rejected by validation
// before this runs.
func depth(set ast.SelectionSet, fragments ast.FragmentDefinitionList, level int) int {
	deepest := level
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.Name) > 1 && s.Name[:2] == "__" {
				continue
			}
			d = depth(s.SelectionSet, fragments, level+1)
		case *ast.InlineFragment:
			d = depth(s.SelectionSet, fragments, level)
		case *ast.FragmentSpread:
			if f := fragments.ForName(s.Name); f != nil {
				d = depth(f.SelectionSet, fragments, level)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
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

func pageCost(child int, first *int, def int) int {
	n := def
	if first != nil && *first >= 0 {
		n = *first
	}
	return 1 + max(n, 1)*child
}

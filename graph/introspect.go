package graph

import (
	"github.com/99designs/gqlgen/graphql/introspection"
	"github.com/vektah/gqlparser/v2/ast"
)

// introspectionCost prices a __schema or __type root field at 1 plus the
// number of values its answer would hold, found by walking the selection
// over the schema the way the executor would, without building the answer.
// Introspection answers come from memory, but their size is what an
// attacker amplifies (aliases, nesting), so they are priced by it. The
// walk stops as soon as the count passes budget, so pricing a hostile
// query costs no more than answering an affordable one.
func (l *Limits) introspectionCost(f *ast.Field, vars map[string]any, budget int) int {
	schema := l.es.Schema()
	c := introspectionCounter{budget: budget}
	switch f.Name {
	case "__schema":
		c.set(f.SelectionSet, introspection.WrapSchema(schema))
	case "__type":
		name, _ := f.ArgumentMap(vars)["name"].(string)
		if def := schema.Types[name]; def != nil {
			c.set(f.SelectionSet, introspection.WrapTypeFromDef(schema, def))
		}
	}
	return saturatingAdd(1, c.n)
}

type introspectionCounter struct {
	n, budget int
}

func (c *introspectionCounter) set(set ast.SelectionSet, v any) {
	for _, sel := range set {
		if c.n > c.budget {
			return
		}
		switch s := sel.(type) {
		case *ast.Field:
			c.n++
			if len(s.SelectionSet) > 0 {
				c.field(s.Name, s.SelectionSet, v)
			}
		case *ast.InlineFragment:
			c.set(s.SelectionSet, v)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				c.set(s.Definition.SelectionSet, v)
			}
		}
	}
}

// field counts the values under one object-valued introspection field of
// v. Deprecated items are counted as if asked for.
func (c *introspectionCounter) field(name string, sub ast.SelectionSet, v any) {
	switch v := v.(type) {
	case *introspection.Schema:
		switch name {
		case "types":
			each(c, sub, v.Types())
		case "directives":
			each(c, sub, v.Directives())
		case "queryType":
			c.one(sub, v.QueryType())
		case "mutationType":
			c.one(sub, v.MutationType())
		case "subscriptionType":
			c.one(sub, v.SubscriptionType())
		}
	case *introspection.Type:
		switch name {
		case "fields":
			each(c, sub, v.Fields(true))
		case "inputFields":
			each(c, sub, v.InputFields())
		case "interfaces":
			each(c, sub, v.Interfaces())
		case "possibleTypes":
			each(c, sub, v.PossibleTypes())
		case "enumValues":
			each(c, sub, v.EnumValues(true))
		case "ofType":
			c.one(sub, v.OfType())
		}
	case *introspection.Field:
		switch name {
		case "type":
			c.one(sub, v.Type)
		case "args":
			each(c, sub, v.Args)
		}
	case *introspection.InputValue:
		if name == "type" {
			c.one(sub, v.Type)
		}
	case *introspection.Directive:
		if name == "args" {
			each(c, sub, v.Args)
		}
	}
}

func (c *introspectionCounter) one(sub ast.SelectionSet, t *introspection.Type) {
	if t != nil {
		c.set(sub, t)
	}
}

func each[T any](c *introspectionCounter, sub ast.SelectionSet, items []T) {
	for i := range items {
		if c.n > c.budget {
			return
		}
		c.set(sub, &items[i])
	}
}

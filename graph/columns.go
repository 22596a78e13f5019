package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/narrate/narrate/db"
)

// columns are the optional columns an operation's reads fetch, per table:
// those of every field it selects on the table's type anywhere in the
// operation. One set per type, not per field, because the loaders share
// rows between fields: a story loaded for one field may be served from the
// cache to another.
type columns struct {
	story, generation, log, profile db.Columns
}

// allColumns reads everything, for work outside an operation.
var allColumns = columns{db.AllColumns, db.AllColumns, db.AllColumns, db.AllColumns}

// fieldColumns maps a type's GraphQL fields to the optional columns they
// need; fields that need only key columns are absent.
var fieldColumns = map[string]map[string]db.Columns{
	"Story": {
		"slug":      db.StorySlug,
		"content":   db.StoryContent,
		"version":   db.StoryVersion,
		"updatedAt": db.StoryUpdatedAt,
	},
	"StoryGeneration": {
		"progress":  db.GenerationProgress,
		"resultUrl": db.GenerationResult,
		"metadata":  db.GenerationMetadata,
	},
	"GenerationLog": {
		"event": db.LogEvent,
	},
	"Profile": {
		"displayName": db.ProfileDisplayName,
		"avatarUrl":   db.ProfileAvatarURL,
		"createdAt":   db.ProfileCreatedAt,
	},
}

// operationColumns collects the columns of every field op selects, through
// fragments and whatever @skip and @include say (reading a column too many
// is harmless).
func operationColumns(op *ast.OperationDefinition) columns {
	var c columns
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if s.ObjectDefinition != nil {
					col := fieldColumns[s.ObjectDefinition.Name][s.Name]
					switch s.ObjectDefinition.Name {
					case "Story":
						c.story |= col
					case "StoryGeneration":
						c.generation |= col
					case "GenerationLog":
						c.log |= col
					case "Profile":
						c.profile |= col
					}
				}
				walk(s.SelectionSet)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if s.Definition != nil {
					walk(s.Definition.SelectionSet)
				}
			}
		}
	}
	if op != nil {
		walk(op.SelectionSet)
	}
	return c
}

// columnsOf returns the columns of ctx's operation: those its loaders read
// with, else all of them.
func columnsOf(ctx context.Context) columns {
	if l, ok := ctx.Value(loadersKey{}).(*Loaders); ok {
		return l.cols
	}
	if graphql.HasOperationContext(ctx) {
		return operationColumns(graphql.GetOperationContext(ctx).Operation)
	}
	return allColumns
}

// selects reports whether the field of ctx selects a subfield called name
// (directly or through fragments): whether a connection must build its
// edges, say.
func selects(ctx context.Context, name string) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil {
		return true
	}
	var in func(ast.SelectionSet) bool
	in = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if s.Name == name {
					return true
				}
			case *ast.InlineFragment:
				if in(s.SelectionSet) {
					return true
				}
			case *ast.FragmentSpread:
				if s.Definition != nil && in(s.Definition.SelectionSet) {
					return true
				}
			}
		}
		return false
	}
	return in(fc.Field.Selections)
}

package graph

import (
	"context"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// marshalList marshals the n elements of a list of objects, as the
// generated code's list marshalers do (graph/generate rewrites them to call
// it). gqlgen runs each element on a goroutine of its own so that fields
// that wait (on a loader's batch, on the database) overlap and batch. When
// the selection asks for no such field, every element is plain values and
// the goroutines are pure cost: the elements are then marshaled one after
// another, with the same per-element field context and panic recovery.
func marshalList(ctx context.Context, sel ast.SelectionSet, n int, workerLimit int64, omitPanicHandler bool,
	marshal func(ctx context.Context, i int) graphql.Marshaler,
) graphql.Array {
	wait := mayWait(sel, cachedFields(ctx))
	if wait && n > 1 {
		return graphql.MarshalSliceConcurrently(ctx, n, workerLimit, omitPanicHandler, marshal)
	}
	if !wait {
		// A single element that waits runs here too, as gqlgen runs it,
		// but its fields must still overlap their waits.
		ctx = context.WithValue(ctx, inPlaceKey{}, true)
	}
	ret := make(graphql.Array, n)
	if !wait && plainSelection(sel) {
		// Nothing under the elements can fail, so no error will need an
		// element's path: they share one field context, its index moved
		// along, instead of a context each.
		fc := &graphql.FieldContext{Index: new(int)}
		ctx = graphql.WithFieldContext(ctx, fc)
		for i := range n {
			*fc.Index = i
			ret[i] = marshalRecovering(ctx, i, omitPanicHandler, marshal)
		}
		return ret
	}
	for i := range n {
		ret[i] = marshalElement(ctx, i, omitPanicHandler, marshal)
	}
	return ret
}

// inPlaceKey marks the context of a list marshalList runs in order: nothing
// below it waits, so its objects' concurrent fields run in place too.
type inPlaceKey struct{}

// resolveObjectField schedules field i of an object's field set as gqlgen
// does (graph/generate rewrites the generated calls to come here), except
// under a list marshaled in order, where nothing waits: there the field is
// resolved in place, with the same panic recovery and invalid-result
// count, instead of on a goroutine of its own when the object has more
// than one such field. Deferred fields always go to gqlgen.
//
// The object's deferred group starts empty, holding only the object's
// context (graph/generate rewrites its creation): gqlgen's
// NewDeferredGroup computes the object's path, a slice built anew for
// every object of a response, which only a deferred field uses. The first
// deferred field of the object makes the group as gqlgen would have.
func resolveObjectField(ctx context.Context, out *graphql.FieldSet, field graphql.CollectedField, oc *graphql.OperationContext,
	deferred *graphql.DeferredGroup, i int, recoverFromPanic, nonNull bool, resolve func(context.Context) graphql.Marshaler,
) {
	if field.IsDeferred() && deferred.FieldSet == nil {
		*deferred = graphql.NewDeferredGroup(deferred.Context)
	}
	if inPlace, _ := ctx.Value(inPlaceKey{}).(bool); !inPlace || field.IsDeferred() {
		out.ResolveConcurrently(oc, deferred, i, recoverFromPanic, nonNull, resolve)
		return
	}
	v := resolveRecovering(ctx, oc, recoverFromPanic, resolve)
	out.Values[i] = v
	if nonNull && v == graphql.Null || !nonNull && v == graphql.RequiredNull {
		atomic.AddUint32(&out.Invalids, 1)
	}
}

// resolveRecovering runs resolve; with recoverFromPanic, a panic is
// reported as the field's error and the field resolves to null.
func resolveRecovering(ctx context.Context, oc *graphql.OperationContext, recoverFromPanic bool,
	resolve func(context.Context) graphql.Marshaler,
) (v graphql.Marshaler) {
	if recoverFromPanic {
		defer func() {
			if r := recover(); r != nil {
				oc.Error(ctx, oc.Recover(ctx, r))
				v = graphql.Null
			}
		}()
	}
	return resolve(ctx)
}

// marshalElement marshals element i under its own field context, turning
// a panic into a field error and null as gqlgen does.
func marshalElement(ctx context.Context, i int, omitPanicHandler bool, marshal func(ctx context.Context, i int) graphql.Marshaler) graphql.Marshaler {
	return marshalRecovering(graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &i}), i, omitPanicHandler, marshal)
}

// marshalRecovering marshals element i in ctx, turning a panic into a field
// error and null as gqlgen does.
func marshalRecovering(ctx context.Context, i int, omitPanicHandler bool, marshal func(ctx context.Context, i int) graphql.Marshaler) (m graphql.Marshaler) {
	if !omitPanicHandler {
		defer func() {
			if r := recover(); r != nil {
				graphql.AddError(ctx, graphql.Recover(ctx, r))
				m = graphql.Null
			}
		}()
	}
	return marshal(ctx, i)
}

// cachedFields are the fields that find their rows cached under the list
// being marshaled in ctx: primedFields when the list is the nodes or the
// edges of a page of generations that primeGenerations primed.
func cachedFields(ctx context.Context) map[string]map[string]bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Parent == nil {
		return nil
	}
	if l, ok := ctx.Value(loadersKey{}).(*Loaders); ok && l.isPrimed(fc.Parent) {
		return primedFields
	}
	return nil
}

// mayWait reports whether a selection on a list's elements asks, at any
// depth, for a field gqlgen resolves concurrently (concurrentFields) whose
// rows are not cached (cached):
// such a field below a plain one (an edge's node, say) runs on the
// element's goroutine, and the elements must not wait for it one after
// another. Fields of other kinds of parent than objects count as waiting:
// the table does not know them.
func mayWait(sel ast.SelectionSet, cached map[string]map[string]bool) bool {
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			def := s.ObjectDefinition
			if def == nil || def.Kind != ast.Object {
				return true
			}
			if concurrentFields[def.Name][s.Name] && !cached[def.Name][s.Name] || mayWait(s.SelectionSet, cached) {
				return true
			}
		case *ast.InlineFragment:
			if mayWait(s.SelectionSet, cached) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || mayWait(s.Definition.SelectionSet, cached) {
				return true
			}
		}
	}
	return false
}

package graph

import (
	"context"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/narrate/narrate/graph/scalar"
)

// plainObject marshals an object whose selection asks for plain fields only
// (see graph/generate): values of its own that cannot wait, fail or panic.
// It writes them straight from the object, one allocation per object,
// where gqlgen's generated code builds a field set, a deferred group and,
// for each field, a field context and a resolver call, and then writes the
// field set through a map of the aliases written so far.
//
// Field middleware does not see plain fields, on this path or on gqlgen's
// (whose plain fields call plain_<Object>_<field>): the server installs
// none (api.New). One that must see every field would need
// graph/generate's plain rewrite removed.
type plainObject[T any] struct {
	ec     *executionContext
	ctx    context.Context
	fields []graphql.CollectedField
	obj    T
	write  func(ec *executionContext, ctx context.Context, w io.Writer, field *graphql.CollectedField, obj T)
}

// MarshalGQL writes the object.
func (p *plainObject[T]) MarshalGQL(w io.Writer) {
	writeObject(w, p.fields, func(i int) { p.write(p.ec, p.ctx, w, &p.fields[i], p.obj) })
}

// fieldValues writes an object gqlgen's generated code has resolved into a
// field set: graph/generate makes the object functions return it instead
// of the field set, whose MarshalGQL allocates a map of the aliases it has
// written, for every object of a response.
type fieldValues struct {
	fields []graphql.CollectedField
	values []graphql.Marshaler
}

// MarshalGQL writes the object.
func (f fieldValues) MarshalGQL(w io.Writer) {
	writeObject(w, f.fields, func(i int) { f.values[i].MarshalGQL(w) })
}

// writeObject writes the fields of an object as JSON, each under its alias
// followed by what value(i) writes. A field asked twice under one alias (through fragments) is
// collected once by gqlgen; the check for a repeated alias is the one
// gqlgen's field set makes.
func writeObject(w io.Writer, fields []graphql.CollectedField, value func(i int)) {
	_, _ = io.WriteString(w, "{")
	first := true
	for i := range fields {
		f := &fields[i]
		if aliasWritten(fields[:i], f.Alias) {
			continue
		}
		if !first {
			_, _ = io.WriteString(w, ",")
		}
		first = false
		// An alias is a GraphQL name ([_A-Za-z][_0-9A-Za-z]*): nothing
		// in it needs escaping.
		_, _ = io.WriteString(w, `"`)
		_, _ = io.WriteString(w, f.Alias)
		_, _ = io.WriteString(w, `":`)
		value(i)
	}
	_, _ = io.WriteString(w, "}")
}

// aliasWritten reports whether alias is among fields.
func aliasWritten(fields []graphql.CollectedField, alias string) bool {
	for i := range fields {
		if fields[i].Alias == alias {
			return true
		}
	}
	return false
}

// plainSelection reports whether a selection asks, at every depth and
// through fragments, for plain fields only (plainFieldTypes): then nothing
// under it can wait, fail or panic, and no error can need its path.
// Directives are not looked at: @skip and @include only drop fields.
func plainSelection(sel ast.SelectionSet) bool {
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			if s.Name == "__typename" {
				continue
			}
			def := s.ObjectDefinition
			if def == nil || def.Kind != ast.Object {
				return false
			}
			child, ok := plainFieldTypes[def.Name][s.Name]
			if !ok || child != "" && !plainSelection(s.SelectionSet) {
				return false
			}
		case *ast.InlineFragment:
			if !plainSelection(s.SelectionSet) {
				return false
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || !plainSelection(s.Definition.SelectionSet) {
				return false
			}
		}
	}
	return true
}

// writeString writes s as a JSON string, escaped as gqlgen's
// graphql.MarshalString escapes it, without the closure that allocates.
func writeString(w io.Writer, s string) {
	const hex = "0123456789ABCDEF"
	_, _ = io.WriteString(w, `"`)
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '\\' && c != '"' {
			continue
		}
		_, _ = io.WriteString(w, s[start:i])
		switch c {
		case '\t':
			_, _ = io.WriteString(w, `\t`)
		case '\r':
			_, _ = io.WriteString(w, `\r`)
		case '\n':
			_, _ = io.WriteString(w, `\n`)
		case '\\':
			_, _ = io.WriteString(w, `\\`)
		case '"':
			_, _ = io.WriteString(w, `\"`)
		default:
			_, _ = w.Write([]byte{'\\', 'u', '0', '0', hex[c>>4], hex[c&0xf]})
		}
		start = i + 1
	}
	_, _ = io.WriteString(w, s[start:])
	_, _ = io.WriteString(w, `"`)
}

// writeInt writes n as graphql.MarshalInt does.
func writeInt(w io.Writer, n int) {
	b := scalar.Scratch(w, 20)
	if b == nil {
		b = make([]byte, 0, 20)
	}
	_, _ = w.Write(strconv.AppendInt(b, int64(n), 10))
}

// writeBool writes b as graphql.MarshalBoolean does.
func writeBool(w io.Writer, b bool) {
	if b {
		_, _ = io.WriteString(w, "true")
	} else {
		_, _ = io.WriteString(w, "false")
	}
}

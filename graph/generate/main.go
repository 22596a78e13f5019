// Command generate runs gqlgen over gqlgen.yml, as `go tool gqlgen
// generate` does, and then trims the generated executor's cost per list
// element, per object and per field where nothing can wait or fail.
// `make generate` runs it.
//
// gqlgen v0.17 marshals every list of objects with
// graphql.MarshalSliceConcurrently: one goroutine per element, whatever the
// elements' fields, and no setting turns it off. The goroutines pay off
// when elements resolve fields that wait (a loader's batch, the
// database), since the waits then overlap and batch; for elements whose
// selected fields are all plain values, they are pure cost (in a listing
// of 50 stories, the goroutines and their stacks were a fifth of the
// server's CPU). So this command
//
//   - writes graph/concurrent_gen.go, the table of fields that have
//     resolvers (gqlgen's own notion of a field it runs concurrently), and
//   - rewrites the generated list marshalers to call graph.marshalList,
//     which marshals the elements one after another when the selection
//     asks for none of those fields, and otherwise hands over to
//     graph.MarshalSliceConcurrently as gqlgen would; and the objects'
//     concurrent fields to go through graph.resolveObjectField, which
//     resolves them in place under such a list (an object with two of
//     them, a generation's story and logs, took a goroutine each);
//   - writes graph/plain_gen.go (see plainFields) and makes plain fields,
//     and objects whose selection asks for plain fields only, skip
//     gqlgen's per-field machinery;
//   - makes every object return its values as graph.fieldValues, whose
//     MarshalGQL writes them without the map of aliases gqlgen's field set
//     allocates per object, and create its deferred group empty, leaving
//     graph.resolveObjectField to make it whole for a deferred field
//     (gqlgen's computes the object's path, a new slice per object, which
//     only a deferred field uses).
//
// Each rewrite is a fixed text substitution checked to apply, so a gqlgen
// upgrade that changes the generated code fails the generation loudly
// instead of silently dropping it.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		return fmt.Errorf("load gqlgen.yml: %w", err)
	}
	table := &concurrentFields{filename: filepath.Join(cfg.Exec.Dir(), "concurrent_gen.go"), pkg: cfg.Exec.Package}
	plain := newPlainFields(cfg)
	if err := api.Generate(cfg, api.AddPlugin(table), api.AddPlugin(plain)); err != nil {
		return err
	}
	return rewriteGenerated(cfg.Exec.Filename, plain.rewrites())
}

// The generated calls, what replaces them, and the prefix every generated
// call of the kind starts with (all of them must be replaced).
var rewrites = []struct{ generated, ours, kind string }{
	{"graphql.MarshalSliceConcurrently(ctx, len(v), ", "marshalList(ctx, sel, len(v), ", "graphql.MarshalSliceConcurrently("},
	{"out.ResolveConcurrently(ec.OperationContext, &deferred, i,", "resolveObjectField(ctx, out, field, ec.OperationContext, &deferred, i,", ".ResolveConcurrently("},
	{"\treturn out\n}", "\treturn fieldValues{fields: fields, values: out.Values}\n}", "graphql.NewDeferredGroup("},
	{"deferred := graphql.NewDeferredGroup(ctx)", "deferred := graphql.DeferredGroup{Context: ctx}", "graphql.NewDeferredGroup("},
}

// rewriteGenerated makes the generated list marshalers call marshalList,
// the objects' concurrent fields go through resolveObjectField, and the
// plain fields through their plain marshalers.
func rewriteGenerated(filename string, plain []rewrite) error {
	src, err := os.ReadFile(filename)
	if err != nil {
		return err
	}
	for _, r := range rewrites {
		n := bytes.Count(src, []byte(r.generated))
		if n == 0 || n != bytes.Count(src, []byte(r.kind)) {
			return fmt.Errorf("%s: the code is not generated as expected (%d calls of %q): "+
				"gqlgen changed; update graph/generate", filename, n, r.generated)
		}
		src = bytes.ReplaceAll(src, []byte(r.generated), []byte(r.ours))
	}
	src, err = apply(src, plain)
	if err != nil {
		return fmt.Errorf("%s: %w", filename, err)
	}
	out, err := format.Source(src)
	if err != nil {
		return err
	}
	return os.WriteFile(filename, out, 0o644)
}

// concurrentFields is a gqlgen plugin that writes the table of every
// object field gqlgen is about to generate as concurrent. It runs before
// gqlgen generates (and compiles) the package, which uses the table.
type concurrentFields struct {
	filename, pkg string
	fields        map[string][]string
}

// Name names the plugin in gqlgen's errors.
func (*concurrentFields) Name() string { return "concurrentfields" }

// GenerateCode collects the fields; gqlgen calls it before generating.
func (c *concurrentFields) GenerateCode(data *codegen.Data) error {
	c.fields = map[string][]string{}
	for _, o := range data.Objects {
		for _, f := range o.Fields {
			if f.IsConcurrent() {
				c.fields[o.Name] = append(c.fields[o.Name], f.Name)
			}
		}
	}
	return c.write()
}

// write writes the table as Go source.
func (c *concurrentFields) write() error {
	var b strings.Builder
	fmt.Fprintf(&b, "// Code generated by graph/generate; DO NOT EDIT.\n\npackage %s\n\n", c.pkg)
	b.WriteString("// concurrentFields are the fields of each object that gqlgen resolves\n")
	b.WriteString("// concurrently: those with resolvers, which may wait. See marshalList.\n")
	b.WriteString("var concurrentFields = map[string]map[string]bool{\n")
	objects := make([]string, 0, len(c.fields))
	for o := range c.fields {
		objects = append(objects, o)
	}
	slices.Sort(objects)
	for _, o := range objects {
		fields := slices.Sorted(slices.Values(c.fields[o]))
		fmt.Fprintf(&b, "\t%q: {", o)
		for i, f := range fields {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q: true", f)
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	out, err := format.Source([]byte(b.String()))
	if err != nil {
		return err
	}
	return os.WriteFile(c.filename, out, 0o644)
}

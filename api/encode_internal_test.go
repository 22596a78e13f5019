package api

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestEncodeResponse: the hand-made envelope means what json.Marshal makes
// of the same response (json.Marshal also escapes <, > and & as \u003c
// and so on, which JSON clients read the same).
func TestEncodeResponse(t *testing.T) {
	t.Parallel()
	yes := true
	tests := []struct {
		name string
		r    *graphql.Response
	}{
		{"data", &graphql.Response{Data: json.RawMessage(`{"stories":{"nodes":[{"id":"1","title":"A \"quoted\" <title>"}]}}`)}},
		{"errors and null data", &graphql.Response{Data: json.RawMessage(`null`), Errors: gqlerror.List{{Message: "no", Path: ast.Path{ast.PathName("story")}, Extensions: map[string]any{"code": "NOT_FOUND"}}}}},
		{"no data", &graphql.Response{Errors: gqlerror.List{{Message: "bad"}}}},
		{"extensions", &graphql.Response{Data: json.RawMessage(`{}`), Extensions: map[string]any{"cost": 3}}},
		{"incremental part", &graphql.Response{Data: json.RawMessage(`{"a":1}`), Label: "l", Path: ast.Path{ast.PathName("x")}, HasNext: &yes}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := encodeResponse(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("encodeResponse = %s: %v", got, err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("encodeResponse = %s\nwant %s", got, want)
			}
		})
	}
}

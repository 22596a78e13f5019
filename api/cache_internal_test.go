package api

import (
	"context"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler/lru"
)

func TestQueryCacheKeepsOnlyShortQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := smallOnly[int]{Cache: lru.New[int](10), max: 8}
	tests := []struct {
		key  string
		kept bool
	}{
		{strings.Repeat("q", 7), true},
		{strings.Repeat("q", 8), true},
		{strings.Repeat("q", 9), false},
		{strings.Repeat("q", 1<<20), false},
	}
	for _, tt := range tests {
		c.Add(ctx, tt.key, 1)
		if _, ok := c.Get(ctx, tt.key); ok != tt.kept {
			t.Errorf("query of %d bytes kept = %v, want %v", len(tt.key), ok, tt.kept)
		}
	}
}

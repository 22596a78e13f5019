package graph

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph/model"
)

// slugPattern matches the stories.slug CHECK constraint, so a bad slug gets
// a helpful message instead of a constraint name.
var slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Story field limits, the same as the table's CHECK constraints.
const (
	maxTitle   = 300
	maxSlug    = 200
	maxContent = 1_000_000
	// maxDisplayName matches the profiles.display_name CHECK constraint.
	maxDisplayName = 100
)

// checkStory validates the story fields that are present (non-nil).
func checkStory(title, slug, content *string) error {
	if title != nil {
		if err := checkText("title", title, maxTitle); err != nil {
			return err
		}
	}
	if slug != nil && (!slugPattern.MatchString(*slug) || len(*slug) > maxSlug) {
		return badInput(fmt.Sprintf("slug must be lowercase letters and digits in words joined by single hyphens, at most %d characters", maxSlug))
	}
	if content != nil {
		if err := checkText("content", content, maxContent); err != nil {
			return err
		}
	}
	return nil
}

// checkText accepts a nil (clearing) value or non-blank text of at most max
// characters.
func checkText(field string, value *string, max int) error {
	if value == nil {
		return nil
	}
	if strings.TrimSpace(*value) == "" {
		return badInput(field + " must not be blank")
	}
	if utf8.RuneCountInString(*value) > max {
		return badInput(fmt.Sprintf("%s must be at most %d characters", field, max))
	}
	return nil
}

// checkURL accepts a nil (clearing) value or an absolute http(s) URL.
func checkURL(field string, value *string) error {
	if value == nil {
		return nil
	}
	u, err := url.Parse(*value)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(*value) > 2048 {
		return badInput(field + " must be an absolute http or https URL of at most 2048 characters")
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// generations resolves a nested connection of one user's generations
// (optionally of one story) through the response's loader, so a page of
// parents costs one statement.
func (r *Resolver) generations(ctx context.Context, owner db.OwnerKey, first *int, after *string, status *generation.Status) (*model.StoryGenerationConnection, error) {
	size, err := checkPage[db.GenerationKey](cursorGeneration, first, after, defaultPageSize)
	if err != nil {
		return nil, err
	}
	sh := shapeOf(ctx)
	if owner.UserID == uuid.Nil {
		// Anonymous viewers have no generations.
		return generationConnection(nil, size, sh), nil
	}
	key := pageKey[db.OwnerKey]{Parent: owner, Limit: size + 1, After: deref(after)}
	if status != nil {
		key.Status = *status
	}
	if fc := graphql.GetFieldContext(ctx); fc != nil && !inList(fc) {
		// Only one such connection per field: batching would only wait.
		// The page and its nodes' nested reads go in one round trip.
		page, err := r.loaders(ctx).page(key)
		if err != nil {
			return nil, err
		}
		rows, err := r.generationPageNested(ctx, page)
		if err != nil {
			return nil, err
		}
		return generationConnection(rows, size, sh), nil
	}
	rows, err := r.loaders(ctx).generations.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	conn := generationConnection(rows, size, sh)
	r.primeGenerations(ctx, conn.Nodes)
	return conn, nil
}

package graph

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/narrate/narrate/graph/model"
)

// wantInput checks err against the expected BAD_USER_INPUT message part,
// or that there is no error when want is empty.
func wantInput(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("refused: %v", err)
		}
		return
	}
	wantBadInput(t, err, want)
}

// valueCase is one value of a field and the refusal it gets, empty when
// it is accepted.
type valueCase struct {
	name  string
	value *string
	want  string
}

// runValueCases checks each case's value in a parallel subtest.
func runValueCases(t *testing.T, tests []valueCase, check func(*string) error) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantInput(t, check(tt.value), tt.want)
		})
	}
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	const blank, long = "name must not be blank", "name must be at most 5 characters"
	runValueCases(t, []valueCase{
		{"null clears", nil, ""},
		{"one character", pointerTo("a"), ""},
		{"exactly the limit", pointerTo("abcde"), ""},
		{"one over", pointerTo("abcdef"), long},
		{"characters, not bytes", pointerTo("éééé🦊"), ""},
		{"one multibyte character over", pointerTo("éééé🦊🦊"), long},
		{"surrounding spaces are kept and counted", pointerTo(" abc "), ""},
		{"spaces count toward the limit", pointerTo(" abcd "), long},
		{"empty", pointerTo(""), blank},
		{"spaces", pointerTo("     "), blank},
		{"tabs and newlines", pointerTo("\t\n\r"), blank},
		{"no-break and ideographic spaces", pointerTo("\u00a0\u3000"), blank},
		{"blank and too long", pointerTo(strings.Repeat(" ", 50)), blank},
	}, func(s *string) error { return checkText("name", s, 5) })
}

// TestFieldLimits checks each field's limit in characters, at and one past
// the limit, as the database's CHECK constraints count them.
func TestFieldLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		field string
		max   int
		check func(*string) error
	}{
		{"title", maxTitle, func(s *string) error { return checkStory(s, nil, nil) }},
		{"content", maxContent, func(s *string) error { return checkStory(nil, nil, s) }},
		{"displayName", maxDisplayName, func(s *string) error { return checkText("displayName", s, maxDisplayName) }},
		{"name", maxVoiceName, func(s *string) error { return checkText("name", s, maxVoiceName) }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			wantInput(t, tt.check(pointerTo(strings.Repeat("ä", tt.max))), "")
			wantInput(t, tt.check(pointerTo(strings.Repeat("ä", tt.max+1))), tt.field+" must be at most")
			wantInput(t, tt.check(pointerTo(" ")), tt.field+" must not be blank")
		})
	}
}

func TestCheckSlug(t *testing.T) {
	t.Parallel()
	const msg = "slug must be lowercase letters and digits in words joined by single hyphens"
	tests := []struct {
		slug string
		want string // empty: accepted
	}{
		{"a", ""},
		{"7", ""},
		{"the-fox", ""},
		{"chapter-1-part-22", ""},
		{strings.Repeat("a", maxSlug), ""},
		{strings.Repeat("ab-", maxSlug/3) + "a", ""},
		{strings.Repeat("a", maxSlug+1), msg},
		{"", msg},
		{"The-Fox", msg},
		{"the--fox", msg},
		{"-fox", msg},
		{"fox-", msg},
		{"-", msg},
		{"the fox", msg},
		{"the_fox", msg},
		{"the.fox", msg},
		{"café", msg},
		{"fox\n", msg},
		{"\nfox", msg},
		{"fox/../admin", msg},
		{"fox%20", msg},
		{strings.Repeat("a-", 100_000) + "!", msg},
	}
	for _, tt := range tests {
		name := tt.slug
		if len(name) > 40 {
			name = name[:20] + "..." + name[len(name)-5:]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wantInput(t, checkStory(nil, &tt.slug, nil), tt.want)
		})
	}
}

func TestCheckStory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		title, slug, content *string
		want                 string
	}{
		{"nothing to change", nil, nil, nil, ""},
		{"a whole story", pointerTo("The Fox"), pointerTo("the-fox"), pointerTo("Once upon a time."), ""},
		{"only a slug", nil, pointerTo("the-fox"), nil, ""},
		{"blank title", pointerTo(" "), pointerTo("the-fox"), pointerTo("x"), "title must not be blank"},
		{"bad slug", pointerTo("The Fox"), pointerTo("The Fox"), pointerTo("x"), "slug must be"},
		{"blank content", pointerTo("The Fox"), pointerTo("the-fox"), pointerTo("\n\n"), "content must not be blank"},
		{"the title is reported first", pointerTo(""), pointerTo("Bad"), pointerTo(""), "title must not be blank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantInput(t, checkStory(tt.title, tt.slug, tt.content), tt.want)
		})
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	const msg = "avatarUrl must be an absolute http or https URL of at most 2048 characters"
	longURL := func(n int) string {
		const prefix = "https://example.com/"
		return prefix + strings.Repeat("a", n-len(prefix))
	}
	runValueCases(t, []valueCase{
		{"null clears", nil, ""},
		{"https", pointerTo("https://cdn.example.com/u/1/avatar.png?size=64#x"), ""},
		{"http", pointerTo("http://example.com"), ""},
		{"with a port", pointerTo("https://example.com:8443/a.png"), ""},
		{"an IPv6 host", pointerTo("https://[::1]:8080/a.png"), ""},
		{"a scheme in capitals", pointerTo("HTTPS://EXAMPLE.COM/A.PNG"), ""},
		{"exactly 2048 characters", pointerTo(longURL(2048)), ""},
		{"2049 characters", pointerTo(longURL(2049)), msg},
		{"empty", pointerTo(""), msg},
		{"javascript", pointerTo("javascript:alert(document.cookie)"), msg},
		{"data", pointerTo("data:image/png;base64,iVBORw0KGgo="), msg},
		{"file", pointerTo("file:///etc/passwd"), msg},
		{"ftp", pointerTo("ftp://example.com/a.png"), msg},
		{"no scheme", pointerTo("example.com/a.png"), msg},
		{"scheme-relative", pointerTo("//example.com/a.png"), msg},
		{"a path", pointerTo("/avatar.png"), msg},
		{"no host", pointerTo("https://"), msg},
		{"an empty host", pointerTo("https:///a.png"), msg},
		{"an opaque https", pointerTo("https:example.com"), msg},
		{"a leading space", pointerTo(" https://example.com"), msg},
		{"a control character", pointerTo("https://example.com/\n"), msg},
		{"an unclosed IPv6 host", pointerTo("https://[::1/a.png"), msg},
		{"a bad escape", pointerTo("https://example.com/%zz"), msg},
	}, func(s *string) error { return checkURL("avatarUrl", s) })
}

// withoutDB calls a resolver whose arguments must be refused before it
// touches the database, which these tests do not have: reaching it panics on
// the nil pool, and the panic is reported as the resolver going too far.
func withoutDB(t *testing.T, call func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("reached the database instead of refusing the arguments")
		}
	}()
	return call()
}

// TestResolverArguments checks the argument rules the resolvers apply
// themselves, and that the viewer is checked before the arguments.
func TestResolverArguments(t *testing.T) {
	t.Parallel()
	r := &Resolver{}
	anonymous := context.Background()
	alice := WithViewer(anonymous, Viewer{UserID: uuid.New(), Email: "alice@example.com"})
	root := WithViewer(anonymous, Viewer{UserID: uuid.New(), Email: "root@example.com", Admin: true})
	id := uuid.New()
	null := graphql.OmittableOf[*string](nil)
	set := func(s string) graphql.Omittable[*string] { return graphql.OmittableOf(&s) }
	updateStory := func(ctx context.Context, version int, input model.UpdateStoryInput) func() error {
		return func() error { _, err := r.Mutation().UpdateStory(ctx, id, version, input); return err }
	}
	createStory := func(ctx context.Context, input model.CreateStoryInput) func() error {
		return func() error { _, err := r.Mutation().CreateStory(ctx, input); return err }
	}
	updateProfile := func(ctx context.Context, input model.UpdateProfileInput) func() error {
		return func() error { _, err := r.Mutation().UpdateProfile(ctx, input); return err }
	}
	story := func(id *uuid.UUID, slug *string) func() error {
		return func() error { _, err := r.Query().Story(anonymous, id, slug); return err }
	}
	fox := model.CreateStoryInput{Title: "The Fox", Slug: "the-fox", Content: "Once."}

	tests := []struct {
		name     string
		call     func() error
		wantCode string
		wantMsg  string
	}{
		{"expectedVersion 0", updateStory(root, 0, model.UpdateStoryInput{}), CodeBadUserInput, "expectedVersion must be at least 1"},
		{"expectedVersion -1", updateStory(root, -1, model.UpdateStoryInput{Title: set("x")}), CodeBadUserInput, "expectedVersion must be at least 1"},
		{"null title", updateStory(root, 1, model.UpdateStoryInput{Title: null}), CodeBadUserInput, "title cannot be null; omit it to keep it"},
		{"null slug", updateStory(root, 1, model.UpdateStoryInput{Slug: null}), CodeBadUserInput, "slug cannot be null"},
		{"null content", updateStory(root, 1, model.UpdateStoryInput{Content: null}), CodeBadUserInput, "content cannot be null"},
		{"bad slug in an update", updateStory(root, 1, model.UpdateStoryInput{Slug: set("The Fox")}), CodeBadUserInput, "slug must be"},
		{"blank content in an update", updateStory(root, 1, model.UpdateStoryInput{Content: set(" ")}), CodeBadUserInput, "content must not be blank"},
		{"update by a user", updateStory(alice, 0, model.UpdateStoryInput{Title: null}), CodeForbidden, "only admins may do this"},
		{"update by nobody", updateStory(anonymous, 0, model.UpdateStoryInput{Title: null}), CodeUnauthenticated, "sign in to do this"},
		{"create with a bad slug", createStory(root, model.CreateStoryInput{Title: "The Fox", Slug: "the fox", Content: "Once."}), CodeBadUserInput, "slug must be"},
		{"create with a blank title", createStory(root, model.CreateStoryInput{Title: "", Slug: "the-fox", Content: "Once."}), CodeBadUserInput, "title must not be blank"},
		{"create by a user", createStory(alice, fox), CodeForbidden, "only admins may do this"},
		{"create by nobody", createStory(anonymous, fox), CodeUnauthenticated, "sign in to do this"},
		{"blank display name", updateProfile(alice, model.UpdateProfileInput{DisplayName: set("  ")}), CodeBadUserInput, "displayName must not be blank"},
		{"long display name", updateProfile(alice, model.UpdateProfileInput{DisplayName: set(strings.Repeat("x", maxDisplayName+1))}), CodeBadUserInput, "displayName must be at most 100 characters"},
		{"javascript avatar", updateProfile(alice, model.UpdateProfileInput{AvatarURL: set("javascript:alert(1)")}), CodeBadUserInput, "avatarUrl must be an absolute http or https URL"},
		{"profile of nobody", updateProfile(anonymous, model.UpdateProfileInput{AvatarURL: set("javascript:alert(1)")}), CodeUnauthenticated, "sign in to do this"},
		{"story by neither id nor slug", story(nil, nil), CodeBadUserInput, "give exactly one of id and slug"},
		{"story by both id and slug", story(&id, pointerTo("the-fox")), CodeBadUserInput, "give exactly one of id and slug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := withoutDB(t, tt.call)
			var appErr *Error
			if !errors.As(err, &appErr) {
				t.Fatalf("error = %v, want %s", err, tt.wantCode)
			}
			if appErr.Code != tt.wantCode || !strings.Contains(appErr.Message, tt.wantMsg) {
				t.Errorf("error = %s %q, want %s %q", appErr.Code, appErr.Message, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

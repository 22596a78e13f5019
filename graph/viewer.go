package graph

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/db"
)

// Viewer is who a request or subscription acts for.
type Viewer struct {
	// Session is what the viewer's database work runs under.
	Session db.Session
	// UserID is uuid.Nil for an anonymous viewer.
	UserID    uuid.UUID
	Email     string
	Admin     bool
	ExpiresAt time.Time
}

// Anonymous reports whether no user is signed in.
func (v Viewer) Anonymous() bool { return v.UserID == uuid.Nil }

type viewerKey struct{}

// WithViewer returns ctx carrying v.
func WithViewer(ctx context.Context, v Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// ViewerFrom returns the viewer of ctx: anonymous when none was set.
func ViewerFrom(ctx context.Context) Viewer {
	if v, ok := ctx.Value(viewerKey{}).(Viewer); ok {
		return v
	}
	return Viewer{Session: db.Anonymous()}
}

// signedIn returns the viewer, or UNAUTHENTICATED for an anonymous one.
func signedIn(ctx context.Context) (Viewer, error) {
	v := ViewerFrom(ctx)
	if v.Anonymous() {
		return v, errUnauthenticated()
	}
	return v, nil
}

// admin returns the viewer if it is an admin: UNAUTHENTICATED when
// anonymous, FORBIDDEN otherwise. Policies enforce the same in PostgreSQL;
// this check only gives the client the right error.
func admin(ctx context.Context) (Viewer, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return v, err
	}
	if !v.Admin {
		return v, errForbidden()
	}
	return v, nil
}

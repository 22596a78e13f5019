// Package role names the PostgreSQL roles Narrate's database work runs as.
// They are Supabase's, so the same migrations and row-level security
// policies serve a Supabase project and a plain PostgreSQL server. The
// migrations create the API roles; localdb creates the login; db switches
// to the API roles per transaction.
package role

// The API roles, which every transaction switches to (SET LOCAL role) and
// the row-level security policies name.
const (
	// Anon is a caller without a token.
	Anon = "anon"
	// Authenticated is a signed-in user, whose token's claims the
	// policies read.
	Authenticated = "authenticated"
	// Service is the server's own privileged work: the worker, the
	// notification listener's resync, the catalogue seeding.
	Service = "service_role"
	// Admin is the role of admins' requests: authenticated's privileges
	// and policies, and the admin policies besides, so that
	// authenticated's own are owner-only and use the tables' indexes
	// (migrations/00020_admin_role.sql).
	Admin = "narrate_admin"
)

// Login is the non-superuser role the application logs in as. Like
// Supabase's authenticator it holds no privileges of its own (NOINHERIT)
// and only switches to the API roles.
const Login = "authenticator"

// API returns the roles Login may switch to.
func API() []string { return []string{Anon, Authenticated, Service, Admin} }

package auth

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

const (
	// DefaultAudience is the aud Supabase Auth puts in user access tokens.
	DefaultAudience = "authenticated"
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second

	// jwksRefreshInterval keeps cached keys well inside the ten minutes
	// Supabase asks clients not to exceed, so a revoked key stops working soon.
	jwksRefreshInterval = 5 * time.Minute
	// jwksHTTPTimeout bounds every JWKS fetch, including the first one that
	// NewVerifier waits for.
	jwksHTTPTimeout = 10 * time.Second
	// unknownKIDInterval rate-limits the refreshes that tokens with an unknown
	// kid trigger, so a flood of forged kids cannot hammer the JWKS endpoint.
	unknownKIDInterval = time.Minute
	// unknownKIDWaitMax bounds both the wait for the rate limiter and the
	// refresh it allows (keyfunc uses one context for both). A request that
	// would have to wait longer is rejected at once instead of queueing.
	unknownKIDWaitMax = jwksHTTPTimeout

	// maxTokenLen rejects absurdly large tokens before any parsing work.
	// Supabase access tokens are around one kilobyte.
	maxTokenLen = 16 << 10

	// verifiedTokens is how many verified tokens the Verifier remembers, so
	// that a client sending the same token with every request pays for its
	// signature and claims once: a few megabytes at most.
	verifiedTokens = 4096
	// verifiedTTL is how long a remembered token is trusted without being
	// checked again: no longer than a JWKS refresh, so a token whose key was
	// revoked stops working as soon as it would without the cache.
	verifiedTTL = jwksRefreshInterval
)

// Config configures a [Verifier]. At least one of Secret and JWKSURL must be
// set.
type Config struct {
	// Secret is the HS256 secret (Supabase's legacy JWT secret), used as raw
	// bytes. Nil disables HS256.
	Secret []byte
	// JWKSURL is the JWKS endpoint for ES256/RS256 keys, typically
	// https://<ref>.supabase.co/auth/v1/.well-known/jwks.json. Empty disables
	// asymmetric tokens.
	JWKSURL string
	// Audience is the required aud; empty means DefaultAudience.
	Audience string
	// Issuer, when set, is the required iss. Empty skips the check.
	Issuer string
	// Leeway is the clock skew allowed on exp, nbf and iat; zero means
	// DefaultLeeway.
	Leeway time.Duration
	// HTTPClient is used for JWKS fetches; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives JWKS refresh failures; nil means slog.Default().
	Logger *slog.Logger
}

// Identity is the verified identity carried by a token.
type Identity struct {
	// UserID is the sub claim, the id of the row in auth.users.
	UserID uuid.UUID
	// Email is the email claim; it may be empty.
	Email string
	// Role is the token's role claim, e.g. "authenticated". It is reported as
	// signed; callers choose the database role themselves rather than
	// switching to whatever a token names.
	Role string
	// Admin reports whether app_metadata.role is "admin".
	Admin bool
	// ExpiresAt is the exp claim.
	ExpiresAt time.Time
	// ValidUntil is ExpiresAt plus the verifier's clock-skew leeway: the
	// last instant Verify accepts the token. What outlives a request (a
	// websocket, an event stream) ends then, so that it is judged exactly
	// as a request would be.
	ValidUntil time.Time
	// Claims is the verified token payload exactly as signed, suitable for
	// PostgreSQL's request.jwt.claims setting.
	Claims json.RawMessage
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	leeway time.Duration
	secret []byte
	jwks   keyfunc.Keyfunc
	parser *jwt.Parser
	// now is the clock of the claims checks; tests move it.
	now func() time.Time
	// verified remembers tokens that passed, keyed by the whole token: the
	// same bytes verify the same way, until they expire.
	verified *lru.Cache[string, verified]
}

// verified is a remembered token's identity and when it was checked.
type verified struct {
	id *Identity
	at time.Time
}

// NewVerifier builds a Verifier from cfg.
//
// With a JWKSURL it fetches the key set once before returning (a failed first
// fetch is logged, not fatal, so a JWKS outage at boot does not stop the
// process; the keys are fetched again later), then refreshes it in the
// background every few minutes until ctx is cancelled. A token whose kid is
// not in the cached set triggers an extra, rate-limited refresh.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if len(cfg.Secret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("new verifier: neither a secret nor a JWKS URL is configured")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("new verifier: negative leeway %s", cfg.Leeway)
	}
	audience := cmp.Or(cfg.Audience, DefaultAudience)
	leeway := cmp.Or(cfg.Leeway, DefaultLeeway)
	logger := cmp.Or(cfg.Logger, slog.Default())

	v := &Verifier{leeway: leeway, now: time.Now}
	var err error
	if v.verified, err = lru.New[string, verified](verifiedTokens); err != nil {
		return nil, fmt.Errorf("new verifier: %w", err)
	}
	var methods []string
	if len(cfg.Secret) > 0 {
		// Copy so that a caller reusing its slice cannot change the key.
		v.secret = append([]byte(nil), cfg.Secret...)
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("new verifier: JWKS URL %q is not an absolute http(s) URL", cfg.JWKSURL)
		}
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:            cfg.HTTPClient,
			HTTPTimeout:       jwksHTTPTimeout,
			RefreshInterval:   jwksRefreshInterval,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKIDInterval), 1),
			RateLimitWaitMax:  unknownKIDWaitMax,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					logger.WarnContext(ctx, "refresh JWKS", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("new verifier: JWKS: %w", err)
		}
		v.jwks = kf
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithAudience(audience),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// claims is the part of a Supabase access token the Verifier interprets.
type claims struct {
	jwt.RegisteredClaims
	Email       string `json:"email"`
	Role        string `json:"role"`
	AppMetadata struct {
		Role string `json:"role"`
	} `json:"app_metadata"`
}

// Sentinels returned by the key lookup; mapped to client-safe reasons.
var (
	errAlgNotAccepted = errors.New("signing algorithm is not accepted")
	errKeyUnknown     = errors.New("signing key is unknown")
)

// Verify checks token's signature and claims and returns the identity it
// carries. Every failure wraps [ErrInvalidToken] with a client-safe message,
// except that a cancelled ctx is reported as the context's error. The
// identity is shared with other callers of the same token: read it only.
//
// A token that passed is remembered for a few minutes and, until it
// expires, passes again without its signature being checked: a verified
// token can only become invalid by expiring (nbf and iat only ever become
// more true) or by its signing key being revoked, which the JWKS refresh
// would not notice sooner.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	if len(token) > maxTokenLen {
		return nil, invalid("token is too large", nil)
	}
	now := v.now()
	if hit, ok := v.verified.Get(token); ok && now.Sub(hit.at) < verifiedTTL && !now.After(hit.id.ValidUntil) {
		return hit.id, nil
	}
	id, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.verified.Add(token, verified{id: id, at: now})
	return id, nil
}

// verify checks a token, signature and claims.
func (v *Verifier) verify(ctx context.Context, token string) (*Identity, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyfunc(ctx)); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("verify token: %w", ctxErr)
		}
		return nil, classify(err)
	}

	userID, err := uuid.Parse(c.Subject)
	if err != nil {
		return nil, invalid("subject is not a valid user id", err)
	}
	// The parser accepted the token, so it has exactly three segments and
	// the payload segment decodes.
	_, rest, _ := strings.Cut(token, ".")
	segment, _, _ := strings.Cut(rest, ".")
	payload, err := v.parser.DecodeSegment(segment)
	if err != nil {
		return nil, invalid("token is malformed", err)
	}
	// PostgreSQL rejects text that is not valid UTF-8, while encoding/json
	// quietly replaces it; refuse such payloads here so that the claims the
	// database sees are the ones that were checked.
	if !utf8.Valid(payload) {
		return nil, invalid("token is malformed", nil)
	}
	return &Identity{
		UserID:     userID,
		Email:      c.Email,
		Role:       c.Role,
		Admin:      c.AppMetadata.Role == "admin",
		ExpiresAt:  c.ExpiresAt.Time,
		ValidUntil: c.ExpiresAt.Time.Add(v.leeway),
		Claims:     json.RawMessage(payload),
	}, nil
}

// keyfunc pins every algorithm to its kind of key: HS256 only ever gets the
// secret, RS256 only RSA keys from the JWKS and ES256 only P-256 keys from
// it. The parser has already refused algorithms outside that list; the
// checks here keep the pinning true even if that list changes.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		switch alg {
		case jwt.SigningMethodHS256.Alg():
			if v.secret == nil {
				return nil, errAlgNotAccepted
			}
			return v.secret, nil
		case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
			if v.jwks == nil {
				return nil, errAlgNotAccepted
			}
		default:
			return nil, errAlgNotAccepted
		}

		// Every lookup failure (a kid absent even after a refresh, a refresh
		// refused by the rate limiter, a JWK whose alg differs from the
		// token's) means no trusted key signed this token. Failed fetches
		// are logged by the refresh handler, not once per token.
		key, err := v.jwks.KeyfuncCtx(ctx)(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errKeyUnknown, err)
		}
		if set, ok := key.(jwt.VerificationKeySet); ok {
			// A token without a kid is tried against every key of the
			// right type.
			var usable jwt.VerificationKeySet
			for _, k := range set.Keys {
				if keyFits(alg, k) {
					usable.Keys = append(usable.Keys, k)
				}
			}
			if len(usable.Keys) == 0 {
				return nil, errKeyUnknown
			}
			return usable, nil
		}
		if !keyFits(alg, key) {
			return nil, errKeyUnknown
		}
		return key, nil
	}
}

// keyFits reports whether key is the kind of public key alg verifies with.
func keyFits(alg string, key any) bool {
	switch alg {
	case jwt.SigningMethodRS256.Alg():
		_, ok := key.(*rsa.PublicKey)
		return ok
	case jwt.SigningMethodES256.Alg():
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	default:
		return false
	}
}

// classify turns a jwt error into a client-safe verification error. The
// reasons are fixed strings so that nothing from the token or the keys is
// echoed back.
func classify(err error) error {
	reason := "token is invalid"
	switch {
	case errors.Is(err, errAlgNotAccepted):
		reason = errAlgNotAccepted.Error()
	case errors.Is(err, errKeyUnknown):
		reason = errKeyUnknown.Error()
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason = "token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// The parser also reports algorithms outside the accepted list,
		// alg "none" included, this way.
		reason = "token signature is invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		reason = "token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		reason = "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		reason = "token used before issued"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason = "token has invalid audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = "token has invalid issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason = "token is missing a required claim"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "token is unverifiable"
	}
	return invalid(reason, err)
}

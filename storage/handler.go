package storage

import (
	"errors"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Handler serves GET/HEAD /audio/{key...}: 403 on a missing/tampered/expired signature, 404 when absent,
// otherwise the object with its content type via http.ServeContent (Range support for <audio>), Cache-Control private.
//
// Mount it at AudioPath ("/audio/"). Links carry their own authorization,
// so the handler needs no bearer token; responses are cacheable only by the
// browser that holds the link, and only until the link expires.
func Handler(store Store, signer *Signer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		key, ok := strings.CutPrefix(r.URL.Path, AudioPath)
		if !ok || ValidateKey(key) != nil {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		now := time.Now()
		if err := signer.Check(key, q.Get("exp"), q.Get("sig"), now); err != nil {
			msg := "invalid link"
			if errors.Is(err, ErrExpired) {
				msg = "link expired"
			}
			http.Error(w, msg, http.StatusForbidden)
			return
		}

		f, info, err := store.Open(r.Context(), key)
		if errors.Is(err, ErrNotFound) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			slog.ErrorContext(r.Context(), "open stored audio", "key", key, "err", err)
			http.Error(w, "internal server error", http.StatusInternalServerError)
			return
		}
		defer f.Close()

		exp, _ := strconv.ParseInt(q.Get("exp"), 10, 64) // valid: Check parsed it
		maxAge := max(exp-now.Unix(), 0)
		h := w.Header()
		h.Set("Content-Type", info.ContentType)
		// A stored object never changes under its key, so the browser
		// may keep it for the link's remaining life without asking again.
		h.Set("Cache-Control", "private, max-age="+strconv.FormatInt(maxAge, 10)+", immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, path.Base(key), info.ModTime, f)
	})
}

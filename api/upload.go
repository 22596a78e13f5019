package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/narrate/narrate/graph"
	"github.com/narrate/narrate/limit"
	"github.com/narrate/narrate/voice"
)

// Upload limits. A request carries at most maxUploadFiles files of at most
// voice.MaxUploadBytes each (the contract's 25 × 10 MB); its operations
// and map parts share l.MaxBodyBytes.
const (
	maxUploadFiles = voice.MaxSamples
	// partOverhead allows for each part's boundary and headers.
	partOverhead = 4 << 10
)

// uploads is the GraphQL multipart request transport
// (https://github.com/jaydenseric/graphql-multipart-request-spec), in
// place of gqlgen's, which reads the whole body, anonymous or not, before
// anything can refuse it, and keeps parts in memory whenever the declared
// Content-Length is small (and chunked bodies declare none). Here:
//   - only signed-in users may send one, at most l.UploadsPerUser at once,
//     refused before a byte of the body is read;
//   - the operations and map parts are read within l.MaxBodyBytes, and the
//     operation must be one that takes an Upload, before any file is read;
//   - every map path must lead to a null in the variables (BAD_USER_INPUT
//     otherwise, never a panic);
//   - the body may then be as large as its files allow (maxUploadFiles at
//     voice.MaxUploadBytes each), and no larger;
//   - each file is kept in memory up to l.UploadMemoryBytes and spooled to
//     a temporary file past that, whatever the request declares, and the
//     spooled files are removed when the request ends;
//   - the body must keep arriving at l.UploadMinBytesPerSecond, after a
//     grace of l.BodyTimeout, so a slow upload is allowed its time but a
//     stalled one is cut off.
type uploads struct {
	limits limit.Settings
	schema *ast.Schema
	active limit.Counter
}

var _ graphql.Transport = (*uploads)(nil)

// Supports takes multipart POSTs.
func (u *uploads) Supports(r *http.Request) bool {
	return r.Method == http.MethodPost && isMultipart(r) && !isWebsocket(r)
}

// uploadError is a refusal of the request, with its status and code.
type uploadError struct {
	status        int
	code, message string
}

func (e *uploadError) Error() string { return e.message }

func badUpload(format string, args ...any) *uploadError {
	return &uploadError{status: http.StatusBadRequest, code: graph.CodeBadUserInput, message: fmt.Sprintf(format, args...)}
}

// Do reads, checks and runs a multipart request.
func (u *uploads) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	viewer := graph.ViewerFrom(r.Context())
	if viewer.Anonymous() {
		w.Header().Set("WWW-Authenticate", "Bearer")
		WriteError(w, r, http.StatusUnauthorized, graph.CodeUnauthenticated, "sign in to upload files")
		return
	}
	release, ok := u.active.Acquire(viewer.UserID.String(), u.limits.UploadsPerUser)
	if !ok {
		writeRateLimited(w, r, fmt.Sprintf("at most %d uploads at once per account", u.limits.UploadsPerUser), 5)
		return
	}
	defer release()

	spool := &spool{memory: u.limits.UploadMemoryBytes, dir: u.limits.UploadDir}
	defer spool.remove()
	start := graphql.Now()
	params, err := u.read(w, r, spool)
	if err != nil {
		// What is left of the body is not read: the connection closes.
		w.Header().Set("Connection", "close")
		var ue *uploadError
		if !errors.As(err, &ue) {
			ue = bodyError(err, u.limits)
		}
		if ue != nil {
			WriteError(w, r, ue.status, ue.code, ue.message)
		}
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	rc, gerr := exec.CreateOperationContext(r.Context(), params)
	w.Header().Set("Content-Type", responseType(r))
	if gerr != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(r.Context(), rc), gerr)
		if errcode.GetErrorKind(gerr) == errcode.KindProtocol {
			// 400, not gqlgen's 422, which clients and proxies do not
			// expect from GraphQL.
			w.WriteHeader(http.StatusBadRequest)
		}
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	// The response is written by the one writer of JSON responses.
	respond(w, r, exec, rc)
}

// bodyError turns a failure to read the body into the answer, or nil when
// the client has gone and there is nobody to answer.
func bodyError(err error, l limit.Settings) *uploadError {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return &uploadError{status: http.StatusRequestEntityTooLarge, code: graph.CodeBadUserInput,
			message: fmt.Sprintf("the request body is larger than this operation allows (%d bytes)", tooLarge.Limit)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &uploadError{status: http.StatusRequestTimeout, code: graph.CodeBadUserInput,
			message: fmt.Sprintf("the upload arrived slower than %d bytes per second", l.UploadMinBytesPerSecond)}
	case errors.Is(err, multipart.ErrMessageTooLarge), strings.Contains(err.Error(), "multipart:"):
		return badUpload("malformed multipart body: %v", err)
	}
	return nil
}

// read parses the request into the operation's parameters, with each file
// in place in the variables.
func (u *uploads) read(w http.ResponseWriter, r *http.Request, spool *spool) (_ *graphql.RawParams, err error) {
	_, mediaParams, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if perr != nil || mediaParams["boundary"] == "" {
		return nil, badUpload("a multipart request needs a Content-Type with a boundary")
	}
	// The body may first be no larger than the operations and map parts
	// are allowed to be; the limit grows once the map says how many files
	// follow.
	body := &rateLimitedBody{r: r.Body, rc: http.NewResponseController(w), min: u.limits.UploadMinBytesPerSecond,
		grace: u.limits.BodyTimeout, start: time.Now()}
	defer func() {
		if err == nil {
			_ = body.rc.SetReadDeadline(time.Time{})
		}
	}()
	limited := &growingLimit{r: body, limit: u.limits.MaxBodyBytes}
	mr := multipart.NewReader(limited, mediaParams["boundary"])

	var params graphql.RawParams
	if err := u.jsonPart(mr, "operations", &params); err != nil {
		return nil, err
	}
	var fileMap map[string][]string
	if err := u.jsonPart(mr, "map", &fileMap); err != nil {
		return nil, err
	}
	if len(fileMap) > maxUploadFiles {
		return nil, badUpload("a request may carry 1 to %d files, not %d", maxUploadFiles, len(fileMap))
	}
	if err := u.checkOperation(&params, fileMap); err != nil {
		return nil, err
	}
	limited.limit = limited.n + int64(len(fileMap))*(voice.MaxUploadBytes+1+partOverhead) + partOverhead

	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		key := part.FormName()
		paths, ok := fileMap[key]
		if !ok || seen[key] {
			return nil, badUpload("part %q is not a file the map names, or comes twice", key)
		}
		seen[key] = true
		upload, err := spool.save(part, voice.MaxUploadBytes)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			_ = setPath(params.Variables, p, upload) // checked by checkOperation
		}
	}
	for key := range fileMap {
		if !seen[key] {
			return nil, badUpload("the map names file %q, which the request does not carry", key)
		}
	}
	return &params, nil
}

// jsonPart decodes the next part, which must be called name, within what
// is left of the body's current limit.
func (u *uploads) jsonPart(mr *multipart.Reader, name string, v any) error {
	part, err := mr.NextPart()
	if err != nil {
		if ue := bodyError(err, u.limits); ue != nil && ue.status != http.StatusBadRequest {
			return err
		}
		return badUpload("the request must begin with the %q part", name)
	}
	if part.FormName() != name {
		return badUpload("expected the %q part, got %q", name, part.FormName())
	}
	dec := json.NewDecoder(part)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		return badUpload("the %q part is not a JSON object of the multipart request spec: %v", name, err)
	}
	return nil
}

// checkOperation makes sure the request is worth reading files for: the
// operation to run takes an Upload in every variable the map names, and
// every map path leads to a null in the variables.
func (u *uploads) checkOperation(params *graphql.RawParams, fileMap map[string][]string) error {
	if params.Query == "" {
		return badUpload("a multipart request must carry its query (persisted queries cannot upload)")
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: params.Query})
	if err != nil {
		return &uploadError{status: http.StatusUnprocessableEntity, code: errcode.ParseFailed, message: err.Error()}
	}
	op := doc.Operations.ForName(params.OperationName)
	if op == nil {
		return badUpload("the request does not say which operation to run")
	}
	takesUpload := map[string]bool{}
	for _, v := range op.VariableDefinitions {
		takesUpload[v.Variable] = u.holdsUpload(v.Type, map[string]bool{})
	}
	if !anyTrue(takesUpload) {
		return badUpload("multipart requests are only for operations that upload files; send this one as JSON")
	}
	for key, paths := range fileMap {
		if len(paths) == 0 {
			return badUpload("file %q is mapped to no variable", key)
		}
		for _, p := range paths {
			name, _, _ := strings.Cut(strings.TrimPrefix(p, "variables."), ".")
			if !strings.HasPrefix(p, "variables.") || !takesUpload[name] {
				return badUpload("map path %q does not name a variable of type Upload", p)
			}
			if err := setPath(params.Variables, p, nil); err != nil {
				return badUpload("map path %q: %v", p, err)
			}
		}
	}
	return nil
}

func anyTrue(m map[string]bool) bool {
	for _, v := range m {
		if v {
			return true
		}
	}
	return false
}

// holdsUpload reports whether a value of type t can hold an Upload: it is
// one, a list of them, or an input object with such a field.
func (u *uploads) holdsUpload(t *ast.Type, seen map[string]bool) bool {
	for t.Elem != nil {
		t = t.Elem
	}
	if t.NamedType == "Upload" {
		return true
	}
	def := u.schema.Types[t.NamedType]
	if def == nil || def.Kind != ast.InputObject || seen[def.Name] {
		return false
	}
	seen[def.Name] = true
	for _, f := range def.Fields {
		if u.holdsUpload(f.Type, seen) {
			return true
		}
	}
	return false
}

// setPath walks a map path ("variables.input.samples.0") through the
// variables and sets what it leads to, which must be null: a file's
// placeholder. A path that leaves the variables, crosses a value that is
// neither an object nor a list, or ends at a non-null is an error.
func setPath(vars map[string]any, path string, value any) error {
	parts := strings.Split(path, ".")
	if len(parts) < 2 || parts[0] != "variables" {
		return errors.New("it must start with variables.")
	}
	var parent any = vars
	for i, key := range parts[1:] {
		last := i == len(parts)-2
		switch p := parent.(type) {
		case map[string]any:
			v, ok := p[key]
			if !ok {
				return fmt.Errorf("%q is not in the variables", key)
			}
			if last {
				if v != nil {
					return errors.New("it leads to a value, not to a null placeholder")
				}
				p[key] = value
				return nil
			}
			parent = v
		case []any:
			n, err := strconv.Atoi(key)
			if err != nil || n < 0 || n >= len(p) {
				return fmt.Errorf("index %q is outside the list of %d", key, len(p))
			}
			if last {
				if p[n] != nil {
					return errors.New("it leads to a value, not to a null placeholder")
				}
				p[n] = value
				return nil
			}
			parent = p[n]
		default:
			return fmt.Errorf("%q is inside a value that is neither an object nor a list", key)
		}
	}
	return nil
}

// spool keeps uploaded files: each in memory up to memory bytes, and in a
// temporary file in dir past that.
type spool struct {
	memory int64
	dir    string
	files  []*os.File
}

// save reads one file part, keeping at most max+1 bytes and discarding
// the rest (still read, within the body's limit): the file's Size says how
// large it was, for the resolver to refuse.
func (s *spool) save(part *multipart.Part, max int64) (graphql.Upload, error) {
	upload := graphql.Upload{Filename: part.FileName(), ContentType: part.Header.Get("Content-Type")}
	var head bytes.Buffer
	n, err := io.CopyN(&head, part, s.memory+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return upload, err
	}
	if n <= s.memory {
		upload.File, upload.Size = bytes.NewReader(head.Bytes()), n
		return upload, nil
	}
	f, err := os.CreateTemp(s.dir, "narrate-upload-*")
	if err != nil {
		return upload, fmt.Errorf("spool upload: %w", err)
	}
	s.files = append(s.files, f)
	kept, err := io.Copy(f, io.LimitReader(io.MultiReader(&head, part), max+1))
	if err != nil {
		return upload, err
	}
	rest, err := io.Copy(io.Discard, part)
	if err != nil {
		return upload, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return upload, fmt.Errorf("spool upload: %w", err)
	}
	upload.File, upload.Size = f, kept+rest
	return upload, nil
}

// remove deletes the spooled files.
func (s *spool) remove() {
	for _, f := range s.files {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
}

// growingLimit fails reads past limit with an *http.MaxBytesError; the
// limit may be raised between reads.
type growingLimit struct {
	r        io.Reader
	n, limit int64
}

func (g *growingLimit) Read(p []byte) (int, error) {
	if g.n >= g.limit {
		// One byte more tells a body at the limit from one past it.
		var one [1]byte
		if n, _ := g.r.Read(one[:]); n > 0 {
			return 0, &http.MaxBytesError{Limit: g.limit}
		}
		return 0, io.EOF
	}
	if rest := g.limit - g.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

// rateLimitedBody lets a body take its time, but not forever: before each
// read it sets the connection's read deadline to when the body will have
// fallen below min bytes per second after a grace period, so the deadline
// moves on as bytes arrive.
type rateLimitedBody struct {
	r     io.Reader
	rc    *http.ResponseController
	min   int64
	grace time.Duration
	start time.Time
	n     int64
}

func (b *rateLimitedBody) Read(p []byte) (int, error) {
	// By then, the bytes received so far would be min per second since
	// the grace ended.
	due := b.start.Add(b.grace + time.Duration(float64(b.n)/float64(b.min)*float64(time.Second)))
	_ = b.rc.SetReadDeadline(due)
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

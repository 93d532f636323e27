package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/usekarma/karma/shared/params"
)

// writeJSON sends v as JSON. The encoder writes the encoding in one piece, once it is complete,
// so a value that cannot be encoded is still an error the caller can answer.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b := buffers.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= maxPooled {
			b.Reset()
			buffers.Put(b)
		}
	}()
	if err := json.NewEncoder(b).Encode(v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(b.Bytes())
	return err
}

// buffers are reused between responses (an impact report of a foundation is a few MB); those
// that grew beyond maxPooled are left to the collector.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooled = 8 << 20

// decodeBody reads a JSON object body into v strictly: the content type must be JSON, the body
// at most max bytes, not compressed (a compressed one was refused as not UTF-8, blaming its
// content), UTF-8, one JSON object, with no field v does not know.
func decodeBody(r *http.Request, max int64, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return problem(http.StatusUnsupportedMediaType, TypeMediaType, "Content-Type %q: send the body as application/json", r.Header.Get("Content-Type"))
	}
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, max))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return problem(http.StatusRequestEntityTooLarge, TypeTooLarge, "the body is larger than %d bytes", max)
	}
	if err != nil {
		return badRequest("reading the body: %v", err)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") && !json.Valid(data) {
		// (a body a proxy decompressed, the header left, is read as it is)
		return problem(http.StatusUnsupportedMediaType, TypeMediaType, "Content-Encoding %q: the body is compressed, which this API does not read: send it uncompressed", ce)
	}
	if off := params.FirstInvalidUTF8(data); off >= 0 {
		return badRequest("the body is not UTF-8: invalid byte at offset %d", off)
	}
	if ptr, ok := FirstDuplicateName(data); ok {
		return invalid("the body names a member twice in one object: nothing was done",
			FieldError{Pointer: ptr, Detail: "repeated in its object: send each member once (readers disagree on which one counts)"})
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if dec.More() {
		return badRequest("the body holds more than one JSON value: send one object")
	}
	return exactNames(data, v)
}

// exactNames refuses members named other than exactly as documented: encoding/json matches
// names without regard to case, so {"Component": …} was read as component — a field another
// reader of the same body would not see. The check decodes again with encoding/json/v2's rules
// (go-json-experiment/json: names matched exactly, unknown members rejected) into a throwaway
// value of v's type, once the first decoding has explained everything else.
func exactNames(data []byte, v any) error {
	again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	err := jsonv2.Unmarshal(data, again, jsonv2.RejectUnknownMembers(true))
	var sem *jsonv2.SemanticError
	if err == nil || !errors.As(err, &sem) || !errors.Is(err, jsonv2.ErrUnknownName) {
		return nil // (anything but a name the first decoding matched by case was refused by it)
	}
	ptr := string(sem.JSONPointer)
	return invalid("the body names a member other than as documented: nothing was done",
		FieldError{Pointer: ptr, Detail: "unknown member: names are matched exactly, case included"})
}

// noBody checks the body of a route that takes none (approve, rollback): absent, empty, or an
// empty JSON object, so that a client sending fields it believes count ({"reason": …} to
// approve) learns they do not, instead of seeing them ignored.
func noBody(r *http.Request, max int64) error {
	var none struct{}
	return optionalBody(r, max, &none)
}

// optionalBody is decodeBody for a route whose body may be absent or empty (approve): v is left
// as it is then.
func optionalBody(r *http.Request, max int64, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return badRequest("reading the body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	return decodeBody(r, max, v)
}

// bodyError explains a decoding error, with a pointer when it concerns one field.
func bodyError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return badRequest("the body is not JSON: %v (at byte offset %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		ptr := "/" + strings.ReplaceAll(typ.Field, ".", "/")
		return invalid("the body does not match the request's schema (GET /openapi.json)",
			FieldError{Pointer: ptr, Detail: "want " + jsonKind(typ.Type.Kind().String()) + ", got " + typ.Value})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid("the body has a field the request does not take", FieldError{Pointer: "/" + name, Detail: "unknown field: remove it"})
	case errors.Is(err, io.EOF):
		return badRequest("the body is empty: send a JSON object")
	}
	return badRequest("the body is not a JSON object: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "a number"
}

// query reads the query parameters of a route, collecting every problem.
type query struct {
	r    *http.Request
	errs []FieldError
}

func (q *query) fail(name, detail string) {
	q.errs = append(q.errs, FieldError{Pointer: "/query/" + name, Detail: detail})
}

func (q *query) str(name string) string { return q.r.URL.Query().Get(name) }

// int reads an integer in [min, max], def when absent.
func (q *query) int(name string, def, min, max int) int {
	v := q.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		q.fail(name, "want an integer from "+strconv.Itoa(min)+" to "+strconv.Itoa(max)+", got "+strconv.Quote(v))
		return def
	}
	return n
}

// time reads an RFC 3339 time, zero when absent.
func (q *query) time(name string) time.Time {
	v := q.str(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.fail(name, "want an RFC 3339 time such as 2026-03-14T09:30:00Z, got "+strconv.Quote(v))
	}
	return t
}

// err is the 400 of the collected problems, or nil.
func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	p := badRequest("invalid query parameters: see errors")
	p.Errors = q.errs
	return p
}

// FirstDuplicateName returns the JSON pointer of the first member of data that repeats a name
// of its object, and true; false when no name repeats or data is not JSON (its decoding says
// why). RFC 8259 leaves a repeated name's meaning to the reader — encoding/json takes the last,
// others the first — so {"component": "dev/…", "component": "prod/…"} means what each reader
// makes of it; I-JSON (RFC 7493) forbids it, and so does Karma for what it is sent. The check is
// jsontext's (github.com/go-json-experiment/json, the package encoding/json/v2 comes from).
func FirstDuplicateName(data []byte) (string, bool) {
	err := jsontext.NewDecoder(bytes.NewReader(data)).SkipValue()
	var syn *jsontext.SyntacticError
	if errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syn) {
		return string(syn.JSONPointer), true
	}
	return "", false
}

package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	karmalambda "github.com/usekarma/karma/shared/lambda"
)

// LambdaHandler serves the API from a Lambda function behind an API Gateway HTTP API (payload
// format 2.0): each event becomes an *http.Request for h — the same handler `karma serve`
// serves — and the response an event response. The caller's ARN, which API Gateway's IAM
// authorization put in the request context, reaches the IAM authenticator through the
// request's context, never through a header a client could send. Behind a named stage the
// path starts with the stage's name, which is removed. Bodies that are not UTF-8 text
// (gzip-compressed ones) are sent base64-encoded.
//
// A Lambda function returns at most MaxLambdaResponse bytes; beyond, Lambda drops the response
// and API Gateway answers the client a bare 500 naming nothing. So bodies of at least
// gzipMinSize bytes are gzip-compressed for clients that accept it (API Gateway's HTTP APIs do
// not compress), and a response still too large is replaced by a 500 problem document of type
// response-too-large naming its size and how to ask for less (the route's own hint when h is
// this package's handler, responseTooLarge).
//
// The request's work stops before the function's deadline (karmalambda.AnswerBeforeDeadline: a
// tenth of the function's time, at most 30 s, is kept to answer), and a request it cuts off is
// answered the 504 problem of type timeout (cutOff) rather than left to Lambda, which would stop
// the function and leave API Gateway to answer a bare 5xx: a read names how to ask for less, a
// write says it may have been done and how to find out before sending it again.
func LambdaHandler(h http.Handler) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		r, err := lambdaRequest(ctx, ev)
		if err != nil {
			return problemResponse(err), nil
		}
		started := time.Now()
		gz := acceptsGzip(r)
		serve := func(work context.Context) events.APIGatewayV2HTTPResponse {
			r := r.WithContext(withWorkDeadline(work))
			w := &eventWriter{header: http.Header{}, gzip: gz}
			if p := serveRecovering(h, w, r, ev.RequestContext.RequestID); p != nil {
				w.reset()
				writeProblem(w, p)
			}
			if karmalambda.Expired(work) && w.statusCode() >= 500 {
				// The handler failed once its time was up: the cut is the failure, and a write
				// may have been done before it.
				said := problemDetail(w)
				w.reset()
				writeProblem(w, cutOff(h, r, ev, started, said))
			}
			if size, over := w.oversize(); over { // (New's handler replaced it already, naming its route's way out)
				status := w.statusCode()
				w.reset()
				writeProblem(w, responseTooLarge(r, status, size, w.gzip, ""))
			}
			return w.response()
		}
		return karmalambda.AnswerBeforeDeadline(r.Context(), serve, func() events.APIGatewayV2HTTPResponse {
			// The handler did not heed its context: it is left running, and answered for.
			slog.Error("api: the request outlasted the function's time and is answered cut off, its handler still running",
				"method", r.Method, "path", r.URL.Path, "request_id", ev.RequestContext.RequestID, "after", time.Since(started).Round(time.Millisecond))
			w := &eventWriter{header: http.Header{}, gzip: gz}
			writeProblem(w, cutOff(h, r, ev, started, ""))
			return w.response()
		}), nil
	}
}

// workDeadlineKey carries, in a request's context, when the Lambda function stops its work
// (karmalambda.BeforeDeadline): a write's detached context ends then too (detached).
type workDeadlineKey struct{}

func withWorkDeadline(work context.Context) context.Context {
	if d, ok := work.Deadline(); ok {
		return context.WithValue(work, workDeadlineKey{}, d)
	}
	return work
}

// cutOff is the 504 timeout problem of request r, which the Lambda function stopped before its
// deadline (started at started; said is the detail of the handler's own answer once cut off,
// if any). A read changed nothing: it names how to ask for less and may be sent again. A write
// may have been done, in whole or in part: it says how to find out before sending it again.
func cutOff(h http.Handler, r *http.Request, ev events.APIGatewayV2HTTPRequest, started time.Time, said string) *Problem {
	s, _ := h.(*server)
	rt, known := s.routeOf(r)
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if known {
		write = rt.scope == ScopeWrite || rt.scope == ScopeApprove || rt.raw != nil && r.Method != http.MethodGet
	}
	what := fmt.Sprintf("%s %s was cut off: it did not finish within the API function's time (the function stops a request's work a tenth of its time before its deadline, to answer)", r.Method, r.URL.RequestURI())
	if !write {
		p := problem(http.StatusGatewayTimeout, TypeTimeout, "%s: nothing was changed", what)
		if known {
			if hint := s.narrower(rt, r, http.StatusOK, ""); hint != "" {
				p.Detail += "; " + hint
			}
		}
		p.Detail += "; or try again: the stores may have been slow"
		p.RetryAfter = 1
		return p
	}
	p := problem(http.StatusGatewayTimeout, TypeTimeout, "%s: it may have been done, in whole or in part", what)
	if said != "" {
		p.Detail += " (it said, once cut off: " + said + ")"
	}
	how := "GET /log?since=" + url.QueryEscape(started.UTC().Add(-time.Second).Format(time.RFC3339))
	if a := ev.RequestContext.Authorizer; a != nil && a.IAM != nil && a.IAM.UserARN != "" {
		how += "&actor=" + url.QueryEscape(a.IAM.UserARN)
	}
	p.Detail += "; find out before sending it again: " + how + " lists what it recorded"
	if id, action, ok := changeAction(r.URL.Path); ok {
		p.Detail += ", and GET /changes/" + id + " the change's state"
		if action == "approve" || action == "reject" {
			p.Detail += "; " + action + " again is safe: it completes what the first left undone"
		}
	}
	if r.URL.Path == "/request-change" {
		p.Detail += " (an " + EntryRequested + ", or the change.detected of its change, names the change and its commit); send it again only if it recorded nothing: " +
			"a commit made without its change queued is deployed by its push, or by karma ingest commit <sha>"
	}
	p.Detail += fmt.Sprintf("; the function's log holds it under request id %q", ev.RequestContext.RequestID)
	return p
}

// changeAction is the change id and action of a path /changes/{id}/{action}.
func changeAction(path string) (id, action string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/changes/")
	if !ok {
		return "", "", false
	}
	id, action, ok = strings.Cut(rest, "/")
	return id, action, ok && id != "" && action != ""
}

// problemDetail is the detail of the problem document w holds ("" if it holds none).
func problemDetail(w *eventWriter) string {
	var p Problem
	if json.Unmarshal(w.body.Bytes(), &p) != nil {
		return ""
	}
	return p.Detail
}

// serveRecovering serves r with h, and turns a panic — which the Lambda runtime would report as
// the invocation's error, and API Gateway as a bare 500 naming nothing — into the 500 problem
// naming the request id under which the function's log holds the panic and its stack.
func serveRecovering(h http.Handler, w *eventWriter, r *http.Request, requestID string) (p *Problem) {
	defer func() {
		if v := recover(); v != nil {
			slog.Error("api: panic", "method", r.Method, "path", r.URL.Path, "request_id", requestID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			p = problem(http.StatusInternalServerError, TypeInternal,
				"%s %s failed inside the API (a defect): the function's log holds it under request id %q; a request that changes state may have been done in part: read its state before sending it again",
				r.Method, r.URL.RequestURI(), requestID)
		}
	}()
	h.ServeHTTP(w, r)
	return nil
}

// MaxLambdaResponse is the most a Lambda function invoked synchronously may return: 6 MB,
// counted on the response event as the runtime encodes it to JSON (a text body escaped, a
// binary one base64-encoded). Lambda's own error names 6,291,556 bytes; 6 MiB leaves a margin.
const MaxLambdaResponse = 6 << 20

// gzipMinSize is the smallest body compressed for a client that accepts gzip.
const gzipMinSize = 1024

// responseTooLarge is the 500 of a response of status that the Lambda function cannot return,
// size bytes as it would return them: it names the size, the limit and the way out — gzip,
// unless the body was compressed already, and hint (how to ask the route for less). A write
// that was done (2xx) says so, and that it is not to be sent again.
func responseTooLarge(r *http.Request, status, size int, gzipped bool, hint string) *Problem {
	done := status >= 200 && status < 300 && r.Method != http.MethodGet
	var ways []string
	if !gzipped {
		ways = append(ways, "send Accept-Encoding: gzip (the body is then sent compressed)")
	}
	if hint != "" {
		ways = append(ways, hint)
	}
	if len(ways) == 0 || done {
		ways = append(ways, "ask `karma serve`, or the karma CLI on the stores (without --server), which have no such limit")
	}
	what := fmt.Sprintf("the response to %s %s", r.Method, r.URL.RequestURI())
	if done {
		what = fmt.Sprintf("%s %s was done (%d %s): do not send it again; only its response", r.Method, r.URL.RequestURI(), status, http.StatusText(status))
		if !gzipped {
			ways = ways[1:] // (sending it again with gzip would do it again)
		}
	}
	return problem(http.StatusInternalServerError, TypeResponseTooLarge,
		"%s is %d bytes as the Lambda function returns it to API Gateway (status %d), more than the %d bytes a Lambda function may return: nothing is wrong with the request or the records, they are too much for one answer; %s",
		what, size, status, MaxLambdaResponse, strings.Join(ways, "; or "))
}

// narrower says how to ask route rt for less at once (for responseTooLarge), after a response
// of status naming location (a write's result).
func (s *server) narrower(rt route, r *http.Request, status int, location string) string {
	if status >= 200 && status < 300 && r.Method != http.MethodGet && location != "" {
		return "read the result with GET " + location + " (with Accept-Encoding: gzip)"
	}
	key := rt.method + " " + rt.pattern
	switch key {
	case "GET /graph":
		return "ask for less at once: ?env= (one environment's graph) or ?type= (the components of one type and the edges between them)"
	case "GET /log":
		limit := r.URL.Query().Get("limit")
		if limit == "" {
			limit = strconv.Itoa(LogDefaultLimit)
		}
		return "ask for a smaller page: ?limit= below " + limit + " (next_cursor continues after its last record), or for fewer records: ?component=, ?deployment=, ?correlation=, ?actor=, ?since=, ?until="
	}
	var params []string
	for _, name := range slices.Sorted(maps.Keys(s.query[key])) {
		params = append(params, "?"+name+"=")
	}
	if len(params) == 0 {
		return ""
	}
	return "ask for less at once with the query parameters " + key + " takes: " + strings.Join(params, ", ")
}

// lambdaRequest is the request of ev; its error is the problem (4xx) of an event that is none.
func lambdaRequest(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	if a := ev.RequestContext.Authorizer; a != nil && a.IAM != nil && a.IAM.UserARN != "" {
		ctx = withIAMCaller(ctx, a.IAM.UserARN)
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, badRequest("the request's body is marked base64-encoded (isBase64Encoded) but is not base64: %v: nothing was done", err)
		}
		body = b
	}
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	if st := ev.RequestContext.Stage; st != "" && st != "$default" {
		if rest, ok := strings.CutPrefix(path, "/"+st+"/"); ok {
			path = "/" + rest
		}
	}
	target := "https://" + ev.RequestContext.DomainName + path
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	r, err := http.NewRequestWithContext(ctx, ev.RequestContext.HTTP.Method, target, bytes.NewReader(body))
	if err != nil {
		return nil, badRequest("the API Gateway event is not a request: %v", err)
	}
	for k, v := range ev.Headers {
		r.Header.Set(k, v)
	}
	if len(ev.Cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	r.Header.Del("Content-Length")
	r.ContentLength = int64(len(body))
	r.RemoteAddr = ev.RequestContext.HTTP.SourceIP
	r.RequestURI = r.URL.RequestURI()
	return r, nil
}

// eventWriter is the http.ResponseWriter of one event. gzip: the client accepts gzip.
type eventWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	gzip   bool
	// made is the response of what was written, and size its size as Lambda counts it
	// (payloadSize), once asked for.
	made *events.APIGatewayV2HTTPResponse
	size int
}

func (w *eventWriter) Header() http.Header { return w.header }

func (w *eventWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *eventWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.made = nil
	return w.body.Write(b)
}

func (w *eventWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// reset forgets what was written, but for a Location header (a write's result stays named).
func (w *eventWriter) reset() {
	loc := w.header.Get("Location")
	*w = eventWriter{header: http.Header{}, gzip: w.gzip}
	if loc != "" {
		w.header.Set("Location", loc)
	}
}

// oversize is the size of the response as Lambda counts it, and whether it is more than
// MaxLambdaResponse.
func (w *eventWriter) oversize() (int, bool) {
	w.response()
	return w.size, w.size > MaxLambdaResponse
}

func (w *eventWriter) response() events.APIGatewayV2HTTPResponse {
	if w.made != nil {
		return *w.made
	}
	resp := events.APIGatewayV2HTTPResponse{StatusCode: w.statusCode(), Headers: map[string]string{}}
	b := w.body.Bytes()
	if len(b) > 0 && w.header.Get("Content-Encoding") == "" {
		if !strings.Contains(strings.ToLower(strings.Join(w.header.Values("Vary"), ",")), "accept-encoding") {
			w.header.Add("Vary", "Accept-Encoding")
		}
		if w.gzip && len(b) >= gzipMinSize {
			var z bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
			_, _ = zw.Write(b)
			if zw.Close() == nil {
				b = z.Bytes()
				w.header.Set("Content-Encoding", "gzip")
				w.header.Del("Content-Length")
			}
		}
	}
	for k, v := range w.header {
		if k == "Set-Cookie" {
			resp.Cookies = v
			continue
		}
		resp.Headers[k] = strings.Join(v, ", ")
	}
	if w.header.Get("Content-Encoding") != "" || !utf8.Valid(b) {
		resp.Body, resp.IsBase64Encoded = base64.StdEncoding.EncodeToString(b), true
	} else {
		resp.Body = string(b)
	}
	w.made, w.size = &resp, payloadSize(resp)
	return resp
}

// payloadSize is the size of resp as the Lambda runtime sends it (aws-lambda-go: JSON, HTML
// characters not escaped, and a newline). A response that cannot be too large however escaped
// (at most 6 bytes a byte, \u00XX) is not encoded to be counted.
func payloadSize(resp events.APIGatewayV2HTTPResponse) int {
	bound := 512 + len(resp.Body)
	for k, v := range resp.Headers {
		bound += 8 + len(k) + len(v)
	}
	for _, c := range resp.Cookies {
		bound += 4 + len(c)
	}
	if 6*bound <= MaxLambdaResponse {
		return 6 * bound // (an upper bound: all that matters is that it fits)
	}
	var n countingWriter
	enc := json.NewEncoder(&n)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		return bound * 6
	}
	return int(n)
}

type countingWriter int

func (n *countingWriter) Write(b []byte) (int, error) {
	*n += countingWriter(len(b))
	return len(b), nil
}

// problemResponse is the response of err, a *Problem (asProblem).
func problemResponse(err error) events.APIGatewayV2HTTPResponse {
	w := &eventWriter{header: http.Header{}}
	writeProblem(w, asProblem(err))
	return w.response()
}

// routeOf is the route that serves r (false when s is nil — a handler that is not New's — or
// when none does).
func (s *server) routeOf(r *http.Request) (route, bool) {
	if s == nil {
		return route{}, false
	}
	_, pattern := s.mux.Handler(r)
	for _, rt := range s.routes {
		if rt.method+" "+rt.pattern == pattern {
			return rt, true
		}
	}
	return route{}, false
}

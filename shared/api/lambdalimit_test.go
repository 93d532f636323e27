package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/audit"
)

// lambdaPayload is resp as the Lambda runtime returns it (aws-lambda-go: JSON, HTML characters
// not escaped): what Lambda holds to MaxLambdaResponse.
func lambdaPayload(t *testing.T, resp events.APIGatewayV2HTTPResponse) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// eventBody is the body of resp, decoded from base64 and gzip as a client of API Gateway gets it.
func eventBody(t *testing.T, resp events.APIGatewayV2HTTPResponse) []byte {
	t.Helper()
	b := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if b, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	if resp.Headers["Content-Encoding"] == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func eventProblem(t *testing.T, resp events.APIGatewayV2HTTPResponse) Problem {
	t.Helper()
	if resp.Headers["Content-Type"] != "application/problem+json" {
		t.Fatalf("%d, Content-Type %q, want a problem document (%d bytes of body)", resp.StatusCode, resp.Headers["Content-Type"], len(resp.Body))
	}
	var p Problem
	if err := json.Unmarshal(eventBody(t, resp), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != resp.StatusCode {
		t.Errorf("problem status %d, response %d", p.Status, resp.StatusCode)
	}
	return p
}

// A response more than Lambda returns (6 MB) was handed to Lambda as it was: Lambda refused it
// and API Gateway answered a bare 500 naming nothing. It is now compressed for a client that
// accepts gzip, and what is still too large — counted as Lambda counts it, escapes and base64
// included — is a 500 problem document naming its size and the way out.
func TestLambdaResponseOverTheLimitIsAProblem(t *testing.T) {
	t.Parallel()
	compressible := []byte(`{"components":[` + strings.Repeat(`{"id":"prod/vpc/core","type":"vpc"},`, 7<<20/36) + `{}]}` + "\n")
	noise := make([]byte, 5<<20)
	rand.Read(noise)
	incompressible := []byte(`{"noise":"` + base64.StdEncoding.EncodeToString(noise) + `"}`) // 6.7 MB, gzip to ~5 MB, base64 ~6.7 MB
	quotes := []byte(`{"q":"` + strings.Repeat(`\"`, 2<<20) + `"}`)                          // 4 MB of text, 8 MB as a JSON string

	serve := func(body []byte, acceptEncoding string) events.APIGatewayV2HTTPResponse {
		t.Helper()
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		})
		ev := event(t, "apigw-v2-iam-get-graph.json")
		if acceptEncoding != "" {
			ev.Headers["accept-encoding"] = acceptEncoding
		}
		resp, err := LambdaHandler(h)(t.Context(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(lambdaPayload(t, resp)); n > MaxLambdaResponse {
			t.Errorf("the response is %d bytes as Lambda counts it: more than %d", n, MaxLambdaResponse)
		}
		return resp
	}

	for name, body := range map[string][]byte{"7 MB": compressible, "4 MB of quotes": quotes} {
		p := eventProblem(t, serve(body, ""))
		if p.Status != http.StatusInternalServerError || p.Type != ProblemBase+TypeResponseTooLarge ||
			!strings.Contains(p.Detail, "GET /graph?env=prod&type=vpc") || !strings.Contains(p.Detail, "Accept-Encoding: gzip") ||
			!strings.Contains(p.Detail, fmt.Sprint(MaxLambdaResponse)) {
			t.Errorf("%s without gzip: %+v", name, p)
		}
	}

	resp := serve(compressible, "gzip, deflate, br")
	if resp.StatusCode != http.StatusOK || resp.Headers["Content-Encoding"] != "gzip" || !resp.IsBase64Encoded ||
		!strings.Contains(resp.Headers["Vary"], "Accept-Encoding") || !bytes.Equal(eventBody(t, resp), compressible) {
		t.Errorf("7 MB with gzip accepted: %d %v, %d bytes", resp.StatusCode, resp.Headers, len(resp.Body))
	}
	if resp := serve(compressible, "gzip;q=0"); resp.StatusCode != http.StatusInternalServerError || resp.Headers["Content-Encoding"] != "" {
		t.Errorf("7 MB with gzip refused (q=0): %d %v", resp.StatusCode, resp.Headers)
	}

	p := eventProblem(t, serve(incompressible, "gzip"))
	if p.Status != http.StatusInternalServerError || p.Type != ProblemBase+TypeResponseTooLarge || strings.Contains(p.Detail, "Accept-Encoding") {
		t.Errorf("incompressible, gzip accepted: %+v", p)
	}

	// Small bodies are sent as they are, and a body that fits is sent whole.
	small := []byte(`{"ok":true}` + "\n")
	if resp := serve(small, "gzip"); resp.StatusCode != http.StatusOK || resp.IsBase64Encoded || resp.Body != string(small) {
		t.Errorf("small body: %d %v %q", resp.StatusCode, resp.Headers, resp.Body)
	}
	fits := compressible[:4<<20] // (5.1 MB as a JSON string)
	if resp := serve(fits, ""); resp.StatusCode != http.StatusOK || resp.Body != string(fits) {
		t.Errorf("4 MB: %d %v", resp.StatusCode, resp.Headers)
	}
}

// A page of GET /log too large for Lambda is a problem document conforming to openapi.json that
// names the page size asked for and the filters; a smaller page, or gzip, is served.
func TestLambdaLogPageTooLargeNamesTheWayOut(t *testing.T) {
	t.Parallel()
	h, call := serverless(t)
	pad := strings.Repeat("karma ", 100<<10/6)
	base := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	var recs []audit.Record
	for i := range 70 { // 70 records of 100 KB: 7 MB
		id := fmt.Sprintf("msg-big-%02d", i)
		recs = append(recs, audit.Record{MessageID: id, Type: "parameter.changed", Version: 1, Env: "prod", Chain: "prod/vpc/core",
			Component: "prod/vpc/core", CorrelationID: id, ActorKind: "system", Actor: "test", OccurredAt: base.Add(time.Duration(i) * time.Second),
			Body: json.RawMessage(`{"id":"` + id + `","pad":"` + pad + `"}`)})
	}
	if _, err := h.audit.Append(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	logEvent := func(query, acceptEncoding string) events.APIGatewayV2HTTPRequest {
		ev := event(t, "apigw-v2-iam-get-graph.json")
		ev.RawPath, ev.RequestContext.HTTP.Path, ev.RawQueryString, ev.QueryStringParameters = "/log", "/log", query, nil
		ev.RouteKey, ev.RequestContext.RouteKey = "GET /log", "GET /log"
		if acceptEncoding != "" {
			ev.Headers["accept-encoding"] = acceptEncoding
		}
		return ev
	}

	resp := call(logEvent("", ""))
	p := eventProblem(t, resp)
	if p.Status != http.StatusInternalServerError || p.Type != ProblemBase+TypeResponseTooLarge ||
		!strings.Contains(p.Detail, "?limit= below 100") || !strings.Contains(p.Detail, "?since=") || !strings.Contains(p.Detail, "Accept-Encoding: gzip") {
		t.Fatalf("GET /log of 7 MB: %+v", p)
	}
	resp = call(logEvent("component=prod%2Fvpc%2Fcore&limit=80", ""))
	if p := eventProblem(t, resp); !strings.Contains(p.Detail, "?limit= below 80") {
		t.Errorf("GET /log?limit=80: %+v", p)
	}

	resp = call(logEvent("limit=10", ""))
	var page LogPage
	if err := json.Unmarshal(eventBody(t, resp), &page); resp.StatusCode != http.StatusOK || err != nil || len(page.Records) != 10 || page.NextCursor == "" {
		t.Errorf("GET /log?limit=10: %d, %d records, %v", resp.StatusCode, len(page.Records), err)
	}
	resp = call(logEvent("", "gzip"))
	page = LogPage{}
	if err := json.Unmarshal(eventBody(t, resp), &page); resp.StatusCode != http.StatusOK || err != nil || len(page.Records) != 70 {
		t.Errorf("GET /log with gzip: %d, %d records, %v", resp.StatusCode, len(page.Records), err)
	}
}

// A write whose response is too large was done all the same: the problem says so, that it is not
// to be sent again (not even with gzip, which would do it again), and where its result is.
func TestLambdaWriteDoneWithATooLargeResponseSaysSo(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	handler, err := New(h.config())
	if err != nil {
		t.Fatal(err)
	}
	s := handler.(*server)
	big := []byte(`{"x":"` + strings.Repeat("0123456789", 7<<20/10) + `"}`)
	rt := route{method: "POST", pattern: "/request-change", handle: func(w http.ResponseWriter, r *http.Request, _ Caller) error {
		w.Header().Set("Location", "/changes/01a2")
		return writeJSON(w, http.StatusCreated, json.RawMessage(big))
	}}
	r, err := http.NewRequest("POST", "https://api.example/request-change", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	w := &eventWriter{header: http.Header{}}
	s.wrap(rt).ServeHTTP(w, r)
	resp := w.response()
	p := eventProblem(t, resp)
	if p.Status != http.StatusInternalServerError || p.Type != ProblemBase+TypeResponseTooLarge || resp.Headers["Location"] != "/changes/01a2" ||
		!strings.Contains(p.Detail, "was done (201 Created)") || !strings.Contains(p.Detail, "do not send it again") ||
		!strings.Contains(p.Detail, "GET /changes/01a2") || strings.Contains(p.Detail, "send Accept-Encoding") {
		t.Errorf("%v %+v", resp.Headers, p)
	}
}

// A request body API Gateway marks base64-encoded that is not base64 is a 400 naming the mark
// (it said the event was not a request); one over the API's limit is the 413 of `karma serve`.
func TestLambdaRequestBodiesAreRefusedByName(t *testing.T) {
	t.Parallel()
	_, call := serverless(t)
	ev := event(t, "apigw-v2-iam-request-change.json")
	ev.IsBase64Encoded, ev.Body = true, "{not base64}"
	resp, err := LambdaHandler(http.NotFoundHandler())(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if p := eventProblem(t, resp); p.Status != http.StatusBadRequest || !strings.Contains(p.Detail, "isBase64Encoded") || !strings.Contains(p.Detail, "not base64") {
		t.Errorf("bad base64: %+v", p)
	}

	ev = event(t, "apigw-v2-iam-request-change.json")
	big := `{"component":"prod/vpc/core","proposed_change":{"pad":"` + strings.Repeat("x", DefaultMaxBody) + `"}}`
	ev.IsBase64Encoded, ev.Body = true, base64.StdEncoding.EncodeToString([]byte(big))
	delete(ev.Headers, "content-length")
	if p := eventProblem(t, call(ev)); p.Status != http.StatusRequestEntityTooLarge || p.Type != ProblemBase+TypeTooLarge || !strings.Contains(p.Detail, fmt.Sprint(DefaultMaxBody)) {
		t.Errorf("a body over %d bytes: %+v", DefaultMaxBody, p)
	}
}

// A handler that panics made the invocation fail: API Gateway answered a bare 500 naming
// nothing. It is now a 500 problem document naming the request id the function's log holds it
// under.
func TestLambdaPanicIsAProblemNamingTheRequest(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"partial":`))
		panic("boom")
	})
	ev := event(t, "apigw-v2-iam-get-graph.json")
	resp, err := LambdaHandler(h)(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	p := eventProblem(t, resp)
	if p.Status != http.StatusInternalServerError || p.Type != ProblemBase+TypeInternal || !strings.Contains(p.Detail, ev.RequestContext.RequestID) ||
		strings.Contains(p.Detail, "boom") {
		t.Errorf("%+v", p)
	}
}

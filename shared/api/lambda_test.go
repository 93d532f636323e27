package api

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
)

func event(t *testing.T, file string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// serverless is the harness's stores behind the Lambda adapter, in serverless mode (IAM).
func serverless(t *testing.T) (*harness, func(events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse) {
	t.Helper()
	h := newHarness(t)
	cfg := h.config()
	cfg.Auth = IAM{}
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lambda := LambdaHandler(handler)
	return h, func(ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
		t.Helper()
		resp, err := lambda(t.Context(), ev)
		if err != nil {
			t.Fatalf("the handler returned an error to Lambda: %v", err)
		}
		eventConforms(t, ev, resp)
		return resp
	}
}

// eventConforms checks that resp, the Lambda adapter's response to ev, conforms to openapi.json,
// as the same request's response over HTTP would.
func eventConforms(t *testing.T, ev events.APIGatewayV2HTTPRequest, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	r, err := lambdaRequest(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		body, _ = base64.StdEncoding.DecodeString(resp.Body)
	}
	var rd io.Reader = bytes.NewReader(body)
	if resp.Headers["Content-Encoding"] == "gzip" {
		if rd, err = gzip.NewReader(rd); err != nil {
			t.Fatal(err)
		}
	}
	hr := &http.Response{StatusCode: resp.StatusCode, Header: http.Header{}, Body: io.NopCloser(rd), Request: r}
	for k, v := range resp.Headers {
		hr.Header.Set(k, v)
	}
	conforms(t, r, hr)
}

func TestLambdaIAMCallerReadsTheGraph(t *testing.T) {
	t.Parallel()
	_, call := serverless(t)
	resp := call(event(t, "apigw-v2-iam-get-graph.json"))
	if resp.StatusCode != http.StatusOK || resp.IsBase64Encoded || resp.Headers["Etag"] == "" {
		t.Fatalf("GET /graph: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	var d graph.Document
	if err := json.Unmarshal([]byte(resp.Body), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Components) != 1 || d.Components[0].ID != "prod/vpc/core" {
		t.Errorf("env=prod&type=vpc: %+v", d.Components)
	}
	// Gzip when the client accepts it: the body is then base64.
	ev := event(t, "apigw-v2-iam-get-graph.json")
	ev.Headers["accept-encoding"] = "gzip, deflate"
	if resp := call(ev); !resp.IsBase64Encoded || resp.Headers["Content-Encoding"] != "gzip" {
		t.Errorf("gzip: base64 %v, headers %v", resp.IsBase64Encoded, resp.Headers)
	}
}

// A write through API Gateway is the IAM principal's: the message's actor and the audit
// entry name its ARN. The stage's name is not part of the route.
func TestLambdaIAMCallerRequestsAChange(t *testing.T) {
	t.Parallel()
	h, call := serverless(t)
	resp := call(event(t, "apigw-v2-iam-request-change.json"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /live/request-change: %d %s", resp.StatusCode, resp.Body)
	}
	var created ChangeCreated
	if err := json.Unmarshal([]byte(resp.Body), &created); err != nil {
		t.Fatal(err)
	}
	if resp.Headers["Location"] != "/changes/"+created.ChangeID {
		t.Errorf("Location %q", resp.Headers["Location"])
	}
	const arn = "arn:aws:iam::210987654321:user/grace"
	recs, err := h.audit.Query(t.Context(), audit.Query{Correlation: created.ChangeID})
	if err != nil || len(recs) != 1 || recs[0].Type != EntryRequested || recs[0].ActorKind != "iam" || recs[0].Actor != arn {
		t.Fatalf("audit entry of the request: %+v %v", recs, err)
	}
	h.runUntilIdle()
	cs, err := h.changeSets.Get(t.Context(), created.ChangeID)
	if err != nil || cs.Actor != (message.Actor{Kind: "iam", Name: arn}) {
		t.Errorf("the change's actor: %+v %v", cs, err)
	}
}

// Without IAM authorization (no authorizer, or another kind) there is no caller: 401, whatever
// headers the client sends.
func TestLambdaWithoutIAMIsUnauthorized(t *testing.T) {
	t.Parallel()
	_, call := serverless(t)
	for _, file := range []string{"apigw-v2-no-authorizer.json", "apigw-v2-jwt-authorizer.json"} {
		resp := call(event(t, file))
		if resp.StatusCode != http.StatusUnauthorized || resp.Headers["Content-Type"] != "application/problem+json" ||
			!strings.Contains(resp.Body, "IAM") {
			t.Errorf("%s: %d %v %s", file, resp.StatusCode, resp.Headers, resp.Body)
		}
	}
	// Health needs no caller.
	ev := event(t, "apigw-v2-no-authorizer.json")
	ev.RawPath, ev.RequestContext.HTTP.Path = "/healthz", "/healthz"
	if resp := call(ev); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d %s", resp.StatusCode, resp.Body)
	}
	// A body that is not base64 as it claims is refused as a bad request.
	ev.IsBase64Encoded, ev.Body = true, "%%%"
	resp, _ := LambdaHandler(http.NotFoundHandler())(t.Context(), ev)
	if resp.StatusCode != http.StatusBadRequest || resp.Headers["Content-Type"] != "application/problem+json" {
		t.Errorf("bad base64: %d %s", resp.StatusCode, resp.Body)
	}
}

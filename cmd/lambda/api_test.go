package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

func apiEvent(t testing.TB, withIAM bool) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "api", "testdata", "apigw-v2-iam-get-graph.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if !withIAM {
		ev.RequestContext.Authorizer = nil
	}
	return ev
}

// KARMA_STAGE=api serves the HTTP API behind API Gateway: the IAM caller is let in, an event
// without IAM authorization is refused.
func TestAPIStage(t *testing.T) {
	examples, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	origin := gittest.OriginFrom(t, "config.git", examples)
	vars := map[string]string{"KARMA_STAGE": "api", "KARMA_BACKEND": "embedded", "KARMA_HOME": t.TempDir(), "KARMA_GIT_URL": origin.Bare,
		"KARMA_CACHE_DIR": t.TempDir(), "KARMA_EVENT_BUS": "karma"}
	a := lambdaApp(t, vars, awsConfig("http://127.0.0.1:1"))
	h, err := lambdaHandler(t.Context(), a, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	serve, ok := h.(apiGatewayHandler)
	if !ok {
		t.Fatalf("handler %T, want an API Gateway handler", h)
	}
	resp, err := serve(t.Context(), apiEvent(t, true))
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /graph as an IAM caller: %d %v %.300s", resp.StatusCode, err, resp.Body)
	}
	resp, err = serve(t.Context(), apiEvent(t, false))
	if err != nil || resp.StatusCode != 401 {
		t.Errorf("GET /graph without IAM authorization: %d %v, want 401", resp.StatusCode, err)
	}
}

// BenchmarkAPIColdStart is the API function's init, measured in process: the configuration, the
// composition root and the handler over every store (the stand-ins when they run: DynamoDB
// clients, the Neptune connection, the repository cache opened without fetching). Target
// (docs/performance.md): <= 300 ms.
func BenchmarkAPIColdStart(b *testing.B) {
	examples, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	origin := gittest.OriginFrom(b, "config.git", examples)
	vars := map[string]string{"KARMA_STAGE": "api", "KARMA_BACKEND": "embedded", "KARMA_HOME": b.TempDir(), "KARMA_GIT_URL": origin.Bare,
		"KARMA_EVENT_BUS": "karma"}
	if moto, ddb, gremlin := os.Getenv("KARMA_TEST_MOTO_ENDPOINT"), os.Getenv("KARMA_TEST_DYNAMODB"), os.Getenv("KARMA_TEST_GREMLIN"); moto != "" && ddb != "" && gremlin != "" {
		b.Setenv("AWS_ENDPOINT_URL", moto)
		b.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb)
		b.Setenv("AWS_REGION", "us-east-1")
		b.Setenv("AWS_ACCESS_KEY_ID", "test")
		b.Setenv("AWS_SECRET_ACCESS_KEY", "test")
		vars["KARMA_BACKEND"], vars["KARMA_NEPTUNE_ENDPOINT"] = "aws", gremlin
	}
	for b.Loop() {
		vars["KARMA_CACHE_DIR"] = b.TempDir()
		a, err := newApp(env(vars), nil, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := lambdaHandler(b.Context(), a, env(vars)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		a.Close()
		b.StartTimer()
	}
}

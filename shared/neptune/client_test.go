package neptune

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// isTransient is isTransient's test, without importing the pipeline: the error (or one
// it wraps) says Transient() true.
func isTransient(err error) bool {
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err             string
		transient, conn bool
		status          int
	}{
		{"dial tcp 127.0.0.1:8182: connect: connection refused", true, true, 0},
		{"websocket: close 1006 (abnormal closure): unexpected EOF", true, true, 0},
		{"E0104: no successful connections could be made: dial tcp: i/o timeout", true, true, 0},
		{"E0102: cannot write to connection that has already been closed or has not been connected", true, true, 0},
		{"E0502: error in read loop, error message '{code:598 message:A timeout occurred during traversal evaluation attributes:map[]}'. statusCode: 86", true, false, 598},
		{"E0502: error in read loop, error message '{code:500 message:{\"code\":\"ConcurrentModificationException\"} attributes:map[]}'. statusCode: 244", true, false, 500},
		{"E0502: error in read loop, error message '{code:500 message:{\"code\":\"ReadOnlyViolationException\"} attributes:map[]}'. statusCode: 244", true, false, 500},
		{"E0502: error in read loop, error message '{code:597 message:The provided traverser does not map to a value attributes:map[stackTrace:...]}'. statusCode: 85", false, false, 597},
		{"E0502: error in read loop, error message '{code:499 message:Invalid OpProcessor requested attributes:map[]}'. statusCode: 243", false, false, 499},
		{"E1201: Request size cannot exceed the configured WriteBufferSize.", false, false, 0},
		{"E0407: unknown data type to serialize chan int", false, false, 0},
	}
	for _, tt := range tests {
		e := classify("op", errors.New(tt.err))
		if e.Transient() != tt.transient || e.conn != tt.conn || e.Status != tt.status {
			t.Errorf("%s: transient %v conn %v status %d, want %v %v %d", tt.err, e.Transient(), e.conn, e.Status, tt.transient, tt.conn, tt.status)
		}
		if isTransient(e) != tt.transient {
			t.Errorf("%s: isTransient = %v", tt.err, !tt.transient)
		}
	}
	e := classify("read", errors.New("E0502: error in read loop, error message '{code:597 message:Vertex with id already exists: x attributes:map[stackTrace:java.lang.IllegalStateException at ...]}'. statusCode: 85"))
	if got := e.Error(); got != "neptune: read: status 597: Vertex with id already exists: x" {
		t.Errorf("message without the stack trace: %s", got)
	}
}

func TestOpenValidates(t *testing.T) {
	ctx := context.Background()
	for _, ep := range []string{"", "http://h:8182/gremlin", "127.0.0.1:8182", "ws:///gremlin"} {
		if _, err := Open(ctx, Options{Endpoint: ep}); err == nil || isTransient(err) {
			t.Errorf("Open(%q): %v, want a permanent error", ep, err)
		}
	}
	if _, err := Open(ctx, Options{Endpoint: "wss://h:8182/gremlin", IAM: true}); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("IAM without a region: %v", err)
	}
}

func TestOpenUnreachableIsTransient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = Open(context.Background(), Options{Endpoint: "ws://" + addr + "/gremlin", DialTimeout: 2 * time.Second})
	if err == nil || !isTransient(err) {
		t.Errorf("Open of a closed port: %v, want a transient error", err)
	}
}

// The handshake the driver sends carries the SigV4 headers, signed for the host it dials.
func TestIAMHandshakeHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		got = append(got, h)
		mu.Unlock()
		http.Error(w, "no websocket here", http.StatusForbidden)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	creds := aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", SessionToken: "token"}
	_, err := Open(context.Background(), Options{Endpoint: "ws://" + host + "/gremlin", IAM: true, Region: "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)})
	if err == nil || !isTransient(err) {
		t.Fatalf("Open against a refusing server: %v, want a transient error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no handshake arrived")
	}
	h := got[0]
	date := h.Get("X-Amz-Date")
	now, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		t.Fatalf("X-Amz-Date %q: %v", date, err)
	}
	want := expectedAuthorization(host, "/gremlin", map[string]string{"host": host, "x-amz-date": date, "x-amz-security-token": "token"}, creds, "eu-west-1", now)
	if h.Get("Authorization") != want {
		t.Errorf("Authorization\n got %s\nwant %s", h.Get("Authorization"), want)
	}
	if h.Get("X-Amz-Security-Token") != "token" || h.Get("Host") != host {
		t.Errorf("headers %v", h)
	}
}

// A signed handshake is still a valid websocket handshake (Gremlin Server ignores the
// signature; Neptune checks it).
func TestIAMClientAgainstServer(t *testing.T) {
	ep := testEndpoint(t)
	c, err := Open(context.Background(), Options{Endpoint: ep, IAM: true, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "token")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Run(context.Background(), "count", func(g *Source) *Traversal { return g.Inject(1, 2, 3).Count() })
	if err != nil || len(res) != 1 || toInt(res[0]) != 3 {
		t.Errorf("count over a signed connection: %v %v", res, err)
	}
}

// A traversal the server rejects is a permanent error with the real status code (the driver
// delivers only its low byte) and the server's message.
func TestServerErrorStatus(t *testing.T) {
	c := testClient(t)
	_, err := c.Run(context.Background(), "fail", func(g *Source) *Traversal { return g.Inject(1).Fail("karma test failure") })
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v", err)
	}
	if e.Status < 400 || isTransient(err) || !strings.Contains(err.Error(), "karma test failure") || strings.Contains(err.Error(), "stackTrace") {
		t.Errorf("status %d transient %v: %v", e.Status, isTransient(err), err)
	}
	t.Log(err)
	// The connection survives a server error.
	if res, err := c.Run(context.Background(), "count", func(g *Source) *Traversal { return g.Inject(1).Count() }); err != nil || toInt(res[0]) != 1 {
		t.Errorf("after a server error: %v %v", res, err)
	}
}

// Observe sees every request sent, by its operation, failed ones included (shared/awscount
// counts Neptune requests with it).
func TestObserveSeesEveryRequest(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	c, err := Open(context.Background(), Options{Endpoint: testEndpoint(t), Observe: func(op string) {
		mu.Lock()
		seen[op]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if _, err := c.Run(t.Context(), "count", func(g *Source) *Traversal { return g.Inject(1).Count() }); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.Run(t.Context(), "fail", func(g *Source) *Traversal { return g.Inject(1).Fail("observed") })
	if _, err := c.Submit(t.Context(), "g.inject(1)"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["count"] != 2 || seen["fail"] != 1 || seen["query"] != 1 || len(seen) != 3 {
		t.Errorf("observed %v, want count 2, fail 1, query 1", seen)
	}
}

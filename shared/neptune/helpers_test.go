package neptune

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"
)

// testEndpoint is the Gremlin Server the tests use (make test starts one and sets it).
func testEndpoint(tb testing.TB) string {
	tb.Helper()
	ep := os.Getenv("KARMA_TEST_GREMLIN")
	if ep == "" {
		tb.Skip("KARMA_TEST_GREMLIN is not set: no Gremlin Server to test against (make test starts one; or eval $(scripts/peers.sh start))")
	}
	return ep
}

func testClient(tb testing.TB) *Client {
	tb.Helper()
	c, err := Open(context.Background(), Options{Endpoint: testEndpoint(tb)})
	if err != nil {
		tb.Fatalf("connecting to %s: %v", testEndpoint(tb), err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// testNamespace is a namespace of the test's own on the shared server; its vertices (and so
// their edges) are dropped when the test ends. Never the whole graph: other tests share it.
func testNamespace(tb testing.TB, c *Client) string {
	tb.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	ns := "test-" + hex.EncodeToString(b)
	tb.Cleanup(func() { dropNamespace(tb, c, ns) })
	return ns
}

func dropNamespace(tb testing.TB, c *Client, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Run(ctx, "drop namespace", func(g *Source) *Traversal { return g.V().Has("ns", ns).Drop() }); err != nil {
		tb.Logf("dropping namespace %s: %v", ns, err)
	}
}

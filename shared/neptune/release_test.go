package neptune

import (
	"testing"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
)

// A connection dropped (another request on it failed) or closed (Client.Close) while a request
// still runs on it stays open until that request is done: gremlin-go panics ("send on closed
// channel") when a request writes to a connection closed under it, as a full test run saw.
func TestConnectionClosedOnlyAfterItsLastRequest(t *testing.T) {
	c := testClient(t)
	count := func(drc *gremlingo.DriverRemoteConnection) []*gremlingo.Result {
		t.Helper()
		rs, err := gremlingo.Traversal_().WithRemote(drc).Inject(1).ToList()
		if err != nil {
			t.Fatalf("a request on a connection still in use: %v", err)
		}
		return rs
	}
	drc, err := c.conn() // a request running on it
	if err != nil {
		t.Fatal(err)
	}
	c.drop(drc) // another request on it failed
	if rs := count(drc); len(rs) != 1 {
		t.Fatalf("%d results", len(rs))
	}
	c.release(drc)
	if len(c.users) != 0 || len(c.retired) != 0 || c.running != 0 {
		t.Fatalf("after the last request: users %v, retired %v, running %d", c.users, c.retired, c.running)
	}

	drc, err = c.conn() // a new connection, in use while the client closes
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	count(drc)
	c.release(drc)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.conn(); err == nil {
		t.Fatal("a closed client handed out a connection")
	}
}

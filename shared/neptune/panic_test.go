package neptune

import (
	"context"
	"errors"
	"testing"
	"time"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
)

// A request on which gremlin-go panics (it writes to a connection its read loop has closed) is a
// broken connection, transient and retried, not a panic that ends the process (a CI run crashed
// with "send on closed channel" in gorillaTransporter.Write).
func TestDriverPanicIsABrokenConnection(t *testing.T) {
	drc := &gremlingo.DriverRemoteConnection{}
	c := &Client{opts: Options{RequestTimeout: 10 * time.Second}, drc: &gremlingo.DriverRemoteConnection{},
		users: map[*gremlingo.DriverRemoteConnection]int{drc: 1}, retired: map[*gremlingo.DriverRemoteConnection]bool{}, running: 1}
	_, err := c.await(context.Background(), "test", drc, func() ([]*gremlingo.Result, error) { panic("send on closed channel") })
	var e *Error
	if !errors.As(err, &e) || !e.transient || !e.conn {
		t.Fatalf("await = %v, want a transient broken-connection error", err)
	}
}

package neptune

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gremlingo "github.com/apache/tinkerpop/gremlin-go/v3/driver"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Options say how to reach Neptune.
type Options struct {
	// Endpoint is the websocket URL: wss://<cluster endpoint>:8182/gremlin for Neptune,
	// ws://127.0.0.1:8182/gremlin for a local Gremlin Server.
	Endpoint string
	// IAM signs the websocket handshake with SigV4 (Neptune IAM database authentication).
	IAM bool
	// Region of the cluster (required with IAM).
	Region string
	// Credentials sign the handshake; nil loads the default chain (environment, profile, role).
	Credentials aws.CredentialsProvider

	// TraversalSource is the server's traversal source name ("g").
	TraversalSource string
	// RequestTimeout bounds every request, reading all results included (default 2 minutes).
	RequestTimeout time.Duration
	// DialTimeout bounds the websocket handshake (default 10 seconds).
	DialTimeout time.Duration
	// MaxConnections is the most concurrent websockets the client opens (default 4).
	MaxConnections int
	// Observe, when set, is called with the operation of every request sent (Run's op; "query"
	// for Submit), before it is sent: shared/awscount counts them.
	Observe func(op string)
}

// writeBufferSize is the largest request gremlin-go sends (it refuses bigger ones); batches stay
// well under it (maxBatchBytes).
const writeBufferSize = 8 << 20

// Client is a connection to one Neptune cluster (or Gremlin Server), safe for concurrent use. It
// dials again on the call after a connection broke.
type Client struct {
	opts    Options
	httpURL string // the endpoint as http(s), for signing
	creds   aws.CredentialsProvider
	mu      sync.Mutex
	drc     *gremlingo.DriverRemoteConnection
	closed  bool
	authMu  sync.Mutex
	authErr error // last failure to sign a handshake
	// users counts, per connection, the requests still running on it in the driver, including
	// those whose caller gave up (context cancelled, timeout); running is their sum. A
	// connection dropped (drop) or closed (Close) while in use is retired and closed by the last
	// request on it to finish (release): the driver panics when a request writes to a
	// connection closed under it. drained, when set, is closed once nothing runs (Close waits).
	users   map[*gremlingo.DriverRemoteConnection]int
	retired map[*gremlingo.DriverRemoteConnection]bool
	running int
	drained chan struct{}
}

// Open validates the options and connects. A failure to connect is transient: the caller may
// retry, and a Client that did open reconnects by itself.
func Open(ctx context.Context, o Options) (*Client, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("neptune: endpoint %q: want ws://host:port/gremlin or wss://host:port/gremlin", o.Endpoint)
	}
	if o.TraversalSource == "" {
		o.TraversalSource = "g"
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 2 * time.Minute
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 4
	}
	hu := *u
	hu.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	c := &Client{opts: o, httpURL: hu.String(), users: map[*gremlingo.DriverRemoteConnection]int{},
		retired: map[*gremlingo.DriverRemoteConnection]bool{}}
	if o.IAM {
		if o.Region == "" {
			return nil, errors.New("neptune: IAM authentication needs a region")
		}
		c.creds = o.Credentials
		if c.creds == nil {
			cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(o.Region))
			if err != nil {
				return nil, fmt.Errorf("neptune: loading AWS credentials: %w", err)
			}
			c.creds = cfg.Credentials
		}
		if _, cached := c.creds.(*aws.CredentialsCache); !cached {
			c.creds = aws.NewCredentialsCache(c.creds)
		}
		if _, err := c.creds.Retrieve(ctx); err != nil {
			return nil, fmt.Errorf("neptune: retrieving AWS credentials: %w", err)
		}
	}
	drc, err := c.conn()
	if err != nil {
		return nil, err
	}
	c.release(drc)
	return c, nil
}

// Close closes the connections; the Client is unusable afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cur := c.drc
	c.drc = nil
	if cur != nil && !c.retire(cur) {
		cur = nil // in use: closed by its last request
	}
	var drained chan struct{}
	if c.running > 0 {
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		drained = c.drained
	}
	c.mu.Unlock()
	if cur != nil {
		cur.Close()
	}
	if drained != nil { // wait for the requests still running, as long as one may take
		select {
		case <-drained:
		case <-time.After(c.opts.RequestTimeout):
		}
	}
	return nil
}

// retire marks drc, no longer handed out, to be closed; it reports whether it may be closed now
// (nothing runs on it), else its last request closes it (release). Called with c.mu held.
func (c *Client) retire(drc *gremlingo.DriverRemoteConnection) bool {
	if c.users[drc] == 0 {
		return true
	}
	c.retired[drc] = true
	return false
}

// release ends a request on drc (taken by conn), closing drc if it was retired and this was its
// last request.
func (c *Client) release(drc *gremlingo.DriverRemoteConnection) {
	c.mu.Lock()
	c.running--
	c.users[drc]--
	last := c.users[drc] == 0
	if last {
		delete(c.users, drc)
	}
	closeIt := last && c.retired[drc]
	if closeIt {
		delete(c.retired, drc)
	}
	if c.running == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	c.mu.Unlock()
	if closeIt {
		drc.Close()
	}
}

// Endpoint is the URL the client connects to.
func (c *Client) Endpoint() string { return c.opts.Endpoint }

// conn returns the live connection, dialling when there is none, for one request: the caller
// releases it (release) when the driver is done with it.
func (c *Client) conn() (*gremlingo.DriverRemoteConnection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &Error{Op: "connect", Err: errors.New("client closed")}
	}
	if c.drc != nil {
		c.users[c.drc]++
		c.running++
		return c.drc, nil
	}
	drc, err := gremlingo.NewDriverRemoteConnection(c.opts.Endpoint, func(s *gremlingo.DriverRemoteConnectionSettings) {
		s.TraversalSource = c.opts.TraversalSource
		s.LogVerbosity = gremlingo.Off
		s.ConnectionTimeout = c.opts.DialTimeout
		s.WriteBufferSize = writeBufferSize
		s.MaximumConcurrentConnections = c.opts.MaxConnections
		if c.opts.IAM {
			s.AuthInfo = gremlingo.NewDynamicAuth(c.signedAuth)
		}
	})
	if err != nil {
		if aerr := c.lastAuthErr(); aerr != nil {
			err = fmt.Errorf("%w (signing the handshake: %v)", err, aerr)
		}
		return nil, &Error{Op: "connect " + c.opts.Endpoint, Err: err, transient: true}
	}
	c.drc = drc
	c.users[drc]++
	c.running++
	return drc, nil
}

// drop forgets a broken connection so that the next call dials again; it is closed once no
// request runs on it.
func (c *Client) drop(drc *gremlingo.DriverRemoteConnection) {
	c.mu.Lock()
	if c.drc != drc {
		c.mu.Unlock()
		return
	}
	c.drc = nil
	now := c.retire(drc)
	c.mu.Unlock()
	if now {
		drc.Close()
	}
}

// signedAuth is called by the driver for every new websocket: a fresh SigV4 handshake.
func (c *Client) signedAuth() gremlingo.AuthInfoProvider {
	h, err := c.handshakeHeader()
	c.authMu.Lock()
	c.authErr = err
	c.authMu.Unlock()
	if err != nil {
		return &gremlingo.AuthInfo{}
	}
	return gremlingo.HeaderAuthInfo(h)
}

func (c *Client) lastAuthErr() error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	return c.authErr
}

func (c *Client) handshakeHeader() (http.Header, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
	defer cancel()
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodGet, c.httpURL, nil)
	if err != nil {
		return nil, err
	}
	if err := SignHandshake(req, creds, c.opts.Region, time.Now()); err != nil {
		return nil, err
	}
	return req.Header, nil
}

// Source is a traversal source bound to the client: build a traversal on it and pass it to
// Run. Each Source is for one traversal.
type Source = gremlingo.GraphTraversalSource

// Traversal is a traversal built on a Source.
type Traversal = gremlingo.GraphTraversal

// Run sends the traversal build makes (bytecode) and returns all its results, within ctx and
// the request timeout. op names the operation in errors.
func (c *Client) Run(ctx context.Context, op string, build func(g *Source) *Traversal) ([]any, error) {
	drc, err := c.conn()
	if err != nil {
		return nil, err
	}
	t := build(gremlingo.Traversal_().WithRemote(drc))
	c.observe(op)
	return c.await(ctx, op, drc, func() ([]*gremlingo.Result, error) { return t.ToList() })
}

// Submit sends a Gremlin string (script submission). Karma sends scripts only for the read-only
// query command; Neptune evaluates them without Groovy, so lambdas fail there.
func (c *Client) Submit(ctx context.Context, script string) ([]any, error) {
	drc, err := c.conn()
	if err != nil {
		return nil, err
	}
	c.observe("query")
	return c.await(ctx, "query", drc, func() ([]*gremlingo.Result, error) {
		rs, err := drc.Submit(script)
		if err != nil {
			return nil, err
		}
		return rs.All()
	})
}

func (c *Client) observe(op string) {
	if c.opts.Observe != nil {
		c.opts.Observe(op)
	}
}

func (c *Client) await(ctx context.Context, op string, drc *gremlingo.DriverRemoteConnection, do func() ([]*gremlingo.Result, error)) ([]any, error) {
	type outcome struct {
		rs  []*gremlingo.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		defer c.release(drc)
		defer func() {
			// gremlin-go 3.7.3 panics ("send on closed channel") when a request writes to a
			// connection its read loop closed meanwhile (the server went away under load): the
			// request was not sent. Unrecovered, the panic ends the whole process; recovered, it
			// is a broken connection, dropped and retried like any other.
			if p := recover(); p != nil {
				done <- outcome{nil, fmt.Errorf("gremlin-go panicked on a closed connection: %v", p)}
			}
		}()
		rs, err := do()
		done <- outcome{rs, err}
	}()
	timer := time.NewTimer(c.opts.RequestTimeout)
	defer timer.Stop()
	select {
	case o := <-done:
		if o.err != nil {
			e := classify(op, o.err)
			if e.conn {
				c.drop(drc)
			}
			return nil, e
		}
		out := make([]any, len(o.rs))
		for i, r := range o.rs {
			out[i] = r.GetInterface()
		}
		return out, nil
	case <-ctx.Done():
		return nil, &Error{Op: op, Err: ctx.Err(), transient: errors.Is(ctx.Err(), context.DeadlineExceeded)}
	case <-timer.C:
		return nil, &Error{Op: op, Err: fmt.Errorf("no answer in %s: %w", c.opts.RequestTimeout, context.DeadlineExceeded), transient: true}
	}
}

// Error is a failed request. Transient reports whether trying again may succeed (lost
// connection, timeout, throttling, concurrent modification); the pipeline retries those.
type Error struct {
	Op     string
	Status int // Gremlin response status code, 0 when the request got no answer
	Err    error

	transient bool
	conn      bool // the connection is broken
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("neptune: %s: status %d: %v", e.Op, e.Status, e.Err)
	}
	return fmt.Sprintf("neptune: %s: %v", e.Op, e.Err)
}

func (e *Error) Unwrap() error   { return e.Err }
func (e *Error) Transient() bool { return e.transient }

// transientServerErrors are the Neptune (and Gremlin Server) error names worth a retry.
var transientServerErrors = []string{
	"ConcurrentModificationException", "ThrottlingException", "TimeLimitExceededException",
	"MemoryLimitExceededException", "ReadOnlyViolationException", "TooManyRequestsException",
	"InternalFailureException", "QueryLimitExceededException", "ServerShutdownException",
	"TimeoutException", "timed out",
}

// classify turns a driver error into an *Error: a status answer from the server (transient only
// for the retryable kinds), or no answer, which means the connection is gone.
func classify(op string, err error) *Error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "statusCode: "); strings.HasPrefix(msg, "E0502") && i >= 0 {
		wire, _ := strconv.Atoi(strings.TrimSpace(msg[i+len("statusCode: "):]))
		status := statusCode(wire)
		e := &Error{Op: op, Status: status, Err: errors.New(serverMessage(msg))}
		switch status {
		case 598: // SERVER_TIMEOUT
			e.transient = true
		default:
			for _, s := range transientServerErrors {
				if strings.Contains(msg, s) {
					e.transient = true
				}
			}
		}
		return e
	}
	code := ""
	if len(msg) >= 5 && msg[0] == 'E' && msg[4] >= '0' && msg[4] <= '9' {
		code = msg[:3]
	}
	switch code {
	case "E01", "E02", "E05", "":
		// Pool, closed connection, read loop, or a transport error (EOF, reset, refused).
		return &Error{Op: op, Err: err, transient: true, conn: true}
	}
	return &Error{Op: op, Err: err} // serialisation, request too large: retrying will not help
}

// gremlinStatuses are the response status codes of the Gremlin Server protocol.
var gremlinStatuses = []int{200, 204, 206, 401, 403, 407, 498, 499, 500, 595, 596, 597, 598, 599}

// statusCode undoes gremlin-go 3.7.3's truncation of the response status to its low byte
// (597 arrives as 85, 500 as 244).
func statusCode(wire int) int {
	for _, s := range gremlinStatuses {
		if s&0xFF == wire {
			return s
		}
	}
	return wire
}

// serverMessage extracts the message of a status answer, without the Java stack trace.
func serverMessage(msg string) string {
	if i := strings.Index(msg, "message:"); i >= 0 {
		rest := msg[i+len("message:"):]
		if j := strings.Index(rest, " attributes:"); j >= 0 {
			rest = rest[:j]
		}
		return strings.TrimSpace(rest)
	}
	return msg
}

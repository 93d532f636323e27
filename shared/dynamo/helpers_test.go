package dynamo_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/usekarma/karma/shared/dynamo"
)

// endpointEnv names the DynamoDB endpoint the tests run against: DynamoDB Local, started by
// scripts/peers.sh (make test sets it), or a real endpoint.
const endpointEnv = "KARMA_TEST_DYNAMODB"

func endpoint(t testing.TB) string {
	t.Helper()
	e := os.Getenv(endpointEnv)
	if e == "" {
		t.Skipf("%s is not set: start DynamoDB Local with `scripts/peers.sh start` and set "+
			"%s=http://127.0.0.1:18000 (make test does) to run the DynamoDB stores against it", endpointEnv, endpointEnv)
	}
	return e
}

// counter counts a client's work two ways: operations (ops: one per API call, by an SDK
// middleware) and HTTP round trips (all, retries included, by the HTTP client), with the time
// spent per operation.
type counter struct {
	next aws.HTTPClient
	mu   sync.Mutex
	ops  map[string]int
	dur  map[string]time.Duration
	all  atomic.Int64 // HTTP round trips
	bad  atomic.Int64 // round trips that failed or answered >= 400 (the SDK may retry them)
}

func (c *counter) Do(r *http.Request) (*http.Response, error) {
	c.all.Add(1)
	resp, err := c.next.Do(r)
	if err != nil || resp.StatusCode >= 400 {
		c.bad.Add(1)
	}
	return resp, err
}

// count is the middleware counting operations and timing them (retries included).
func (c *counter) count(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("karmaTestCount",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			start := time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			c.mu.Lock()
			c.ops[op]++
			c.dur[op] += time.Since(start)
			c.mu.Unlock()
			return out, md, err
		}), middleware.After)
}

// durations describes the operations since the last reset: count and mean time of each.
func (c *counter) durations() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for op, n := range c.ops {
		parts = append(parts, fmt.Sprintf("%s %d x %v", op, n, (c.dur[op]/time.Duration(n)).Round(10*time.Microsecond)))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ") + fmt.Sprintf("; %d HTTP round trips, %d failed or refused", c.all.Load(), c.bad.Load())
}

// total is the number of operations since the last reset.
func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.ops {
		n += v
	}
	return n
}

// reset zeroes the counts and returns the operations counted.
func (c *counter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.ops
	c.ops = map[string]int{}
	c.dur = map[string]time.Duration{}
	c.all.Store(0)
	c.bad.Store(0)
	return old
}

// newClient returns a client of the test endpoint counting its requests.
func newClient(t testing.TB) (*dynamodb.Client, *counter) {
	t.Helper()
	ep := endpoint(t)
	c := &counter{ops: map[string]int{}, dur: map[string]time.Duration{}, next: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
	})}
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ep),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   c,
		APIOptions:   []func(*middleware.Stack) error{c.count},
	})
	return client, c
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// newTables creates uniquely named tables for t and deletes them when t ends.
func newTables(t testing.TB, client *dynamodb.Client) dynamo.TableNames {
	t.Helper()
	name := unsafe.ReplaceAllString(t.Name(), "-")
	if len(name) > 60 {
		name = name[:60]
	}
	names := dynamo.DefaultTableNames(fmt.Sprintf("karma-test-%s-%08x", name, rand.Uint32()))
	t.Cleanup(func() { // registered first: a half-done CreateTables is cleaned up too
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dynamo.DeleteTables(ctx, client, names); err != nil {
			t.Errorf("DeleteTables: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := dynamo.CreateTables(ctx, client, names); err != nil {
		t.Fatalf("CreateTables: %v", err)
	}
	return names
}

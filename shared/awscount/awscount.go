// Package awscount counts the requests Karma makes to AWS, by service and operation, so that
// what a deployment costs can be measured instead of guessed (docs/performance.md, "AWS: requests
// and cost").
//
// A Counter is fed from three places:
//
//   - the AWS SDK: Middleware, added to an aws.Config's APIOptions (shared/app does so when
//     app.Options.Count is set), counts every attempt of every call of every client built from
//     that configuration — retries included, since each attempt is a request AWS bills — by the
//     SDK's service id ("SQS", "DynamoDB", "EventBridge", "SSM", ...) and operation name; it also
//     counts what the bill is really per: the events of a PutEvents (EventBridge bills each
//     event), the empty receives of SQS apart from the others, and, with Options.Capacity, the
//     read and write request units DynamoDB reports it consumed (and how many of them its
//     global secondary indexes did);
//   - Neptune: the Gremlin client (shared/neptune) reports each request it submits (Observe);
//   - Lambda, which nothing here can intercept (it invokes the functions): whoever plays its part
//     adds the invocations (Invoke) and how long they ran (Seconds), e.g. the tests' event
//     source mapping, one invocation per SQS batch handed to a stage's handler; likewise the
//     SendMessage requests EventBridge's rules make to deliver to the queues
//     (DeliveredByRule) and the bytes the functions log (LogBytes).
//
// cost.go prices counts at list prices (Bill).
//
// Counts are plain numbers by Key; Sub, Per and Table turn two snapshots into what a run cost.
package awscount

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Service names used by this package (the SDK's service ids for the SDK's clients).
const (
	Lambda      = "Lambda"
	Neptune     = "Neptune"
	SQS         = "SQS"
	DynamoDB    = "DynamoDB"
	EventBridge = "EventBridge"
	SSM         = "SSM"
	// Logs is CloudWatch Logs: what the functions log (LogBytes).
	Logs = "CloudWatch Logs"
)

// Operations that are not an API's own operation name.
const (
	// EmptyReceive is an SQS ReceiveMessage that returned no message.
	EmptyReceive = "ReceiveMessage (empty)"
	// PutEventsEntries counts the events of PutEvents calls: EventBridge bills per event.
	PutEventsEntries = "PutEvents (events)"
	// ReadUnits and WriteUnits are DynamoDB's consumed capacity (Options.Capacity).
	ReadUnits  = "read request units"
	WriteUnits = "write request units"
	// IndexReadUnits and IndexWriteUnits are the part of ReadUnits and WriteUnits that DynamoDB
	// says its global secondary indexes consumed (already in the totals).
	IndexReadUnits  = "read request units (of which indexes)"
	IndexWriteUnits = "write request units (of which indexes)"
	// DeliveredByRule counts the SendMessage requests an EventBridge rule makes to deliver an
	// event to its SQS target: SQS bills them to the queue's owner like any other request.
	DeliveredByRule = "SendMessage (EventBridge rule target)"
	// LogBytes are the bytes the functions write to their logs (CloudWatch Logs ingests them).
	LogBytes = "bytes ingested"
)

// Invoke is the Lambda operation counting the invocations of function (Add it once per
// invocation: whoever invokes, e.g. an event source mapping, counts).
func Invoke(function string) string { return "Invoke " + function }

// Seconds is the Lambda "operation" summing how long function's invocations ran, in seconds:
// a duration, not requests (Lambda bills it as GB-seconds with the function's memory).
func Seconds(function string) string { return secondsPrefix + function }

const secondsPrefix = "seconds "

// SecondsOf is the function a Seconds operation is of, and whether op is one.
func SecondsOf(op string) (string, bool) { return strings.CutPrefix(op, secondsPrefix) }

// Key is a service and one of its operations.
type Key struct {
	Service   string
	Operation string
}

func (k Key) String() string { return k.Service + " " + k.Operation }

// Counts are numbers by Key: requests, or units where the operation says so.
type Counts map[Key]float64

// Counter counts; safe for concurrent use. The zero value is not usable: use New.
type Counter struct {
	opts Options
	mu   sync.Mutex
	n    Counts
}

// Options say what the SDK middleware counts besides requests.
type Options struct {
	// Capacity asks DynamoDB for the capacity each request consumed (ReturnConsumedCapacity
	// INDEXES on every input that has it) and counts it as ReadUnits and WriteUnits (and the
	// indexes' share as IndexReadUnits and IndexWriteUnits). It changes
	// the requests sent, slightly: meant for measurements, not for production.
	Capacity bool
}

// New returns an empty Counter.
func New(opts Options) *Counter { return &Counter{opts: opts, n: Counts{}} }

// Add adds n to service's operation.
func (c *Counter) Add(service, operation string, n float64) {
	c.mu.Lock()
	c.n[Key{service, operation}] += n
	c.mu.Unlock()
}

// Observe returns the function shared/neptune calls for each Gremlin request (its operation).
func (c *Counter) Observe(service string) func(operation string) {
	return func(op string) { c.Add(service, op, 1) }
}

// Snapshot is a copy of the counts so far.
func (c *Counter) Snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// Sub is what happened between then and c: c - then, zero counts left out.
func (c Counts) Sub(then Counts) Counts {
	out := Counts{}
	for k, v := range c {
		if d := v - then[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Per divides every count by n (e.g. the number of deployments).
func (c Counts) Per(n float64) Counts {
	out := Counts{}
	for k, v := range c {
		out[k] = v / n
	}
	return out
}

// Plus is c + o.
func (c Counts) Plus(o Counts) Counts {
	out := maps.Clone(c)
	if out == nil {
		out = Counts{}
	}
	for k, v := range o {
		out[k] += v
	}
	return out
}

// Service is the sum of service's requests (units and event counts left out).
func (c Counts) Service(service string) float64 {
	var sum float64
	for k, v := range c {
		if k.Service == service && IsRequest(k) {
			sum += v
		}
	}
	return sum
}

// Services are the services that appear in c, sorted.
func (c Counts) Services() []string {
	seen := map[string]bool{}
	for k := range c {
		seen[k.Service] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// IsRequest reports whether k counts requests (rather than units, events, bytes or seconds).
func IsRequest(k Key) bool {
	switch k.Operation {
	case ReadUnits, WriteUnits, IndexReadUnits, IndexWriteUnits, PutEventsEntries, LogBytes:
		return false
	}
	_, isSeconds := SecondsOf(k.Operation)
	return !isSeconds
}

// Keys are c's keys, sorted by service and operation.
func (c Counts) Keys() []Key {
	return slices.SortedFunc(maps.Keys(c), func(a, b Key) int {
		if a.Service != b.Service {
			return strings.Compare(a.Service, b.Service)
		}
		return strings.Compare(a.Operation, b.Operation)
	})
}

// Table is c as a Markdown table, one row per service and operation, with each service's
// total of requests.
func (c Counts) Table() string {
	var b strings.Builder
	b.WriteString("| service | operation | count |\n|---|---|---:|\n")
	for _, s := range c.Services() {
		requests := false
		for _, k := range c.Keys() {
			if k.Service == s {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", s, k.Operation, Format(c[k]))
				requests = requests || IsRequest(k)
			}
		}
		if requests {
			fmt.Fprintf(&b, "| %s | **requests** | **%s** |\n", s, Format(c.Service(s)))
		}
	}
	return b.String()
}

// Format prints a count with at most two decimals, without trailing zeros.
func Format(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Package eventbridge publishes Karma's messages to an Amazon EventBridge bus (aws-sdk-go-v2),
// whose rules route them to the stages' SQS queues and to the audit queue, and unwraps what
// EventBridge delivers into those queues.
//
// Contract:
//   - Publisher.Publish sends each message as one event: Source "karma", DetailType the message
//     type (e.g. "deployment.applied"), Detail the encoded envelope, Time the envelope's
//     OccurredAt. PutEvents takes at most 10 entries and 256 KiB per request (entry sizes as AWS
//     counts them: Source, DetailType, Detail, Resources, 14 bytes for Time); a single message
//     over 256 KiB is an error, and so is one whose event, as a rule delivers it to a stage
//     queue (EventBridge's fields around the entry), would be over SQS's 256 KiB
//     (MaxDeliveredBytes): PutEvents would accept it and the queue refuse it. Failed entries (FailedEntryCount, per-entry ErrorCode) are retried
//     alone with exponential backoff for at most MaxElapsed; an entry failing with a code that
//     cannot succeed on retry (InvalidArgument, MalformedDetail, access denied...) fails at once.
//     An error after some events were accepted means those are published: the caller retries the
//     whole message and consumers deduplicate (idempotency keys), as with any at-least-once send.
//   - Rules derives the routing from pipeline.Routes: one rule per destination stage matching
//     {"source":["karma"],"detail-type":[the types routed to it]}, and one rule for the audit
//     queue matching every event from "karma". EnsureRules creates the bus, the rules and their
//     SQS targets.
//   - EventBridge puts its whole event ({"version","id","detail-type","source","account","time",
//     "region","resources","detail"}) into the SQS message body; Unwrap returns the Karma
//     envelope from such a body or from a raw envelope (queues fed by QueuePublisher).
//   - FIFO: an EventBridge SQS target takes a fixed MessageGroupId only (SqsParameters); it cannot
//     be taken from the event. A FIFO stage queue behind EventBridge is therefore one ordered
//     group per stage (Rules sets "karma-<stage>"), which serialises the stage. The layout
//     intended for AWS is standard queues for every stage, plan and apply included, with
//     Terraform's per-workspace state lock (one workspace per env/type/nickname) serialising
//     work on one component and the Idempotency middleware deduplicating. moto delivers to a FIFO
//     target only when the queue has content-based deduplication (it passes no deduplication id).
package eventbridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/cenkalti/backoff/v4"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

var _ pipeline.Publisher = (*Publisher)(nil)

// Source is the source of every event Karma publishes.
const Source = "karma"

// PutEvents limits.
const (
	MaxEntries      = 10
	MaxRequestBytes = 256 * 1024
	timeEntryBytes  = 14
)

// PublisherOptions tune a Publisher; the zero value means the defaults.
type PublisherOptions struct {
	// MaxElapsed bounds the retries of failed entries (0 = 10 s).
	MaxElapsed time.Duration
	// InitialInterval is the first backoff (0 = 100 ms).
	InitialInterval time.Duration
}

// Publisher is pipeline.Publisher on an EventBridge bus.
type Publisher struct {
	client *awseb.Client
	bus    string
	opts   PublisherOptions
}

// NewPublisher publishes to bus ("default" or a custom bus name or ARN) with client.
func NewPublisher(client *awseb.Client, bus string, opts PublisherOptions) *Publisher {
	if opts.MaxElapsed <= 0 {
		opts.MaxElapsed = 10 * time.Second
	}
	if opts.InitialInterval <= 0 {
		opts.InitialInterval = 100 * time.Millisecond
	}
	return &Publisher{client: client, bus: bus, opts: opts}
}

// NewClient loads the default AWS configuration (optFns adjust it) and returns an EventBridge
// client. A non-empty endpoint overrides the endpoint; when it is empty the SDK applies
// AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_ENDPOINT_URL and the shared config's endpoint_url itself.
func NewClient(ctx context.Context, endpoint string, optFns ...func(*config.LoadOptions) error) (*awseb.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("eventbridge: load AWS config: %w", err)
	}
	return awseb.NewFromConfig(cfg, func(o *awseb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// MaxDeliveredBytes is the largest SQS message body: a rule delivers the whole event (the entry
// with EventBridge's own fields around it) to a stage queue, so an event PutEvents accepts may
// still be too large for the queue, and would land in the targets' dead-letter queue instead.
const MaxDeliveredBytes = 256 * 1024

// deliveryOverhead bounds what EventBridge adds around an entry's source, detail-type and detail
// in the event it delivers: {"version":"0","id":"<uuid>","detail-type":…,"source":…,"account":
// "<12 digits>","time":"<RFC 3339>","region":"<region>","resources":[],"detail":…} is 112 bytes
// of JSON and about 90 of values; the rest is margin.
const deliveryOverhead = 256

// deliveredSize bounds the size of the event a rule delivers for e (an SQS message body).
func deliveredSize(e types.PutEventsRequestEntry) int {
	n := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail)) + deliveryOverhead
	for _, r := range e.Resources {
		n += len(r) + 3 // quoted, and a comma
	}
	return n
}

// entrySize is an entry's size as PutEvents counts it.
func entrySize(e types.PutEventsRequestEntry) int {
	n := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail))
	for _, r := range e.Resources {
		n += len(r)
	}
	if e.Time != nil {
		n += timeEntryBytes
	}
	return n
}

// Publish sends msgs as events, in requests of at most 10 entries and 256 KiB.
func (p *Publisher) Publish(ctx context.Context, msgs ...message.Envelope) error {
	entries := make([]types.PutEventsRequestEntry, 0, len(msgs))
	for _, m := range msgs {
		body, err := message.Encode(m)
		if err != nil {
			return fmt.Errorf("eventbridge: encode %s %s: %w", m.Type, m.ID, err)
		}
		e := types.PutEventsRequestEntry{
			EventBusName: aws.String(p.bus),
			Source:       aws.String(Source),
			DetailType:   aws.String(m.Type),
			Detail:       aws.String(string(body)),
		}
		if !m.OccurredAt.IsZero() {
			e.Time = aws.Time(m.OccurredAt)
		}
		if size := entrySize(e); size > MaxRequestBytes {
			return permanent(fmt.Errorf("eventbridge: message %s (%s) is %d bytes, over EventBridge's %d", m.ID, m.Type, size, MaxRequestBytes))
		}
		if size := deliveredSize(e); size > MaxDeliveredBytes {
			return permanent(fmt.Errorf("eventbridge: message %s (%s) is %d bytes as the event a rule delivers to a stage queue, over SQS's %d",
				m.ID, m.Type, size, MaxDeliveredBytes))
		}
		entries = append(entries, e)
	}
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < MaxEntries && size+entrySize(entries[n]) <= MaxRequestBytes {
			size += entrySize(entries[n])
			n++
		}
		if err := p.put(ctx, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// permanentCodes are per-entry error codes that no retry can fix.
var permanentCodes = map[string]bool{
	"InvalidArgument":                     true,
	"MalformedDetail":                     true,
	"ValidationException":                 true,
	"AccessDeniedException":               true,
	"NotAuthorizedForSourceException":     true,
	"NotAuthorizedForDetailTypeException": true,
	"ResourceNotFoundException":           true,
}

// put sends one request's entries, retrying the ones that failed.
func (p *Publisher) put(ctx context.Context, entries []types.PutEventsRequestEntry) error {
	pending := entries
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.opts.InitialInterval
	b.MaxElapsedTime = p.opts.MaxElapsed
	err := backoff.Retry(func() error {
		out, err := p.client.PutEvents(ctx, &awseb.PutEventsInput{Entries: pending})
		if err != nil {
			err = fmt.Errorf("eventbridge put events on %s: %w", p.bus, err)
			if isTransient(err) {
				return transient(err)
			}
			return backoff.Permanent(err)
		}
		if out.FailedEntryCount == 0 {
			return nil
		}
		if len(out.Entries) != len(pending) {
			return backoff.Permanent(fmt.Errorf("eventbridge put events on %s: %d failed, and %d results for %d entries",
				p.bus, out.FailedEntryCount, len(out.Entries), len(pending)))
		}
		var retry []types.PutEventsRequestEntry
		var problems []string
		permanent := false
		for i, r := range out.Entries {
			code := aws.ToString(r.ErrorCode)
			if code == "" {
				continue
			}
			problems = append(problems, fmt.Sprintf("%s: %s: %s", aws.ToString(pending[i].DetailType), code, aws.ToString(r.ErrorMessage)))
			permanent = permanent || permanentCodes[code]
			retry = append(retry, pending[i])
		}
		err = fmt.Errorf("eventbridge put events on %s: %d of %d entries failed: %s", p.bus, len(retry), len(pending), strings.Join(problems, "; "))
		if permanent {
			return backoff.Permanent(err)
		}
		pending = retry
		return transient(err)
	}, backoff.WithContext(b, ctx))
	return err
}
